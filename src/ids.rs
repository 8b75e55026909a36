//! Identifiers and secrets: UUIDv7 for task instances (as Airflow 3 uses), random text.

use chrono::{DateTime, Utc};

/// Fills `buf` from the operating system's random source.
pub fn random_bytes(buf: &mut [u8]) {
    // The OS source failing is not something a program can work around.
    getrandom::fill(buf).expect("the operating system provides randomness");
}

/// A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits.
pub fn uuid7(now: DateTime<Utc>) -> String {
    uuid7s(now, 1).pop().expect("one asked for")
}

/// `n` UUIDv7s of the same millisecond, their random bits read from the operating system
/// at once (a mapped task's instances are made a thousand at a time).
pub fn uuid7s(now: DateTime<Utc>, n: usize) -> Vec<String> {
    const RANDOM: usize = 10;
    let mut random = vec![0u8; RANDOM * n];
    random_bytes(&mut random);
    let ms = now.timestamp_millis().max(0) as u64;
    random
        .chunks_exact(RANDOM)
        .map(|r| {
            let mut b = [0u8; 16];
            b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
            b[6..].copy_from_slice(r);
            b[6] = (b[6] & 0x0f) | 0x70;
            b[8] = (b[8] & 0x3f) | 0x80;
            let mut out = String::with_capacity(36);
            for (i, x) in b.iter().enumerate() {
                if matches!(i, 4 | 6 | 8 | 10) {
                    out.push('-');
                }
                out.push(char::from(b"0123456789abcdef"[usize::from(x >> 4)]));
                out.push(char::from(b"0123456789abcdef"[usize::from(x & 0xf)]));
            }
            out
        })
        .collect()
}

/// `n` characters drawn uniformly from `alphabet` (rejection sampling, no modulo bias).
pub fn random_string(alphabet: &[u8], n: usize) -> String {
    assert!(!alphabet.is_empty() && alphabet.len() <= 256);
    let limit = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        random_bytes(&mut buf);
        for &x in &buf {
            if (x as usize) < limit && out.len() < n {
                out.push(alphabet[x as usize % alphabet.len()] as char);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid7_shape_and_order() {
        let t = DateTime::parse_from_rfc3339("2026-11-21T08:56:37Z")
            .unwrap()
            .with_timezone(&Utc);
        let a = uuid7(t);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "7");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
        let later = uuid7(t + chrono::Duration::milliseconds(1));
        assert!(later > a);
        assert_ne!(uuid7(t), uuid7(t));
        let parts: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12]);
        let ms = format!("{:012x}", t.timestamp_millis());
        assert_eq!(a.replace('-', "")[..12], ms);
        let many = uuid7s(t, 1000);
        assert_eq!(
            many.iter().collect::<std::collections::HashSet<_>>().len(),
            1000
        );
        assert!(
            many.iter()
                .all(|u| u.len() == 36 && u.starts_with(&a[..13]))
        );
    }

    #[test]
    fn random_strings_use_the_alphabet() {
        let s = random_string(b"abc", 100);
        assert_eq!(s.len(), 100);
        assert!(s.chars().all(|c| "abc".contains(c)));
    }
}
