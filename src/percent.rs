//! Percent-encoding, both directions, in its two flavours: a path segment (`/` is
//! escaped, `+` is a plain character) and a query-string component (`+` and `&`, `=`,
//! `#` are escaped, since a query decoder reads `+` as a space). One module, so a value
//! is never encoded as one and read as the other.

/// Escapes `s` for one path segment: everything but RFC 3986's unreserved characters
/// and `:`, `@`, `+` (plain characters in a path).
pub fn encode_segment(s: &str) -> String {
    encode(s, b":@+")
}

/// Escapes `s` for a query-string name or value: everything but the unreserved
/// characters and `:`, `@`. `+` is escaped: a query decoder reads a raw one as a space.
pub fn encode_query(s: &str) -> String {
    encode(s, b":@")
}

fn encode(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes a path segment's `%XX` escapes (`+` stays `+`). `None` on a bad escape or on
/// bytes that are not UTF-8.
pub fn decode_segment(s: &str) -> Option<String> {
    decode(s, false)
}

/// Decodes a query-string component: `%XX` escapes, and `+` as a space. `None` on a bad
/// escape or on bytes that are not UTF-8.
pub fn decode_query(s: &str) -> Option<String> {
    decode(s, true)
}

fn decode(s: &str, plus_is_space: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Splits `a=1&b=2` into decoded pairs.
pub fn parse_query(q: &str) -> Option<Vec<(String, String)>> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((decode_query(k)?, decode_query(v)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes() {
        assert_eq!(decode_segment("a%20b+c").unwrap(), "a b+c");
        assert_eq!(decode_query("a%20b+c").unwrap(), "a b c");
        assert_eq!(decode_segment("%2e%2E").unwrap(), "..");
        assert!(decode_segment("%zz").is_none());
        assert!(decode_segment("%ff").is_none());
        assert!(decode_segment("%4").is_none());
    }

    #[test]
    fn each_flavour_reads_back_what_it_wrote() {
        let id = "manual__2024-01-01T00:00:00+00:00/a b&c=d#e%f é";
        assert_eq!(
            encode_segment(id),
            "manual__2024-01-01T00:00:00+00:00%2Fa%20b%26c%3Dd%23e%25f%20%C3%A9"
        );
        assert_eq!(decode_segment(&encode_segment(id)).unwrap(), id);
        assert_eq!(
            encode_query(id),
            "manual__2024-01-01T00:00:00%2B00:00%2Fa%20b%26c%3Dd%23e%25f%20%C3%A9"
        );
        assert_eq!(decode_query(&encode_query(id)).unwrap(), id);
        let q = format!("next={}&x=1", encode_query(id));
        assert_eq!(
            parse_query(&q).unwrap(),
            [
                ("next".to_string(), id.to_string()),
                ("x".into(), "1".into())
            ]
        );
    }
}
