//! Signed tokens the Core API hands out and takes back: DAG files' tokens (the
//! `file_token` of `/dags`, read by `/dagSources`) and log continuation tokens. Both are
//! HMAC-SHA512 keyed with the server secret, cut short, and checked with the MAC crate's
//! constant-time verify, never by comparing bytes by hand.

use std::collections::HashMap;
use std::sync::RwLock;

use base64::Engine;
use base64::alphabet;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha512;

use crate::api::http::ApiError;

/// Signs and checks DAG files' tokens with the server secret. A token is shaped as
/// Airflow's (itsdangerous's `payload.signature`): the payload is `{"bundle_name",
/// "relative_fileloc"}` as compact JSON in base64url, the signature a keyed hash of it,
/// so a token names only files the server itself handed out.
///
/// A page of the DAG list shows a token per DAG, the same files request after request,
/// and a token costs four SHA-512 block compressions and some JSON: each file's token is
/// signed once and kept (a server's secret never changes), and the key is set up once.
pub struct FileTokens {
    key: Hmac<Sha512>,
    /// Tokens by bundle, then file. Forgotten wholesale past [`MAX_KEPT_TOKENS`].
    signed: RwLock<HashMap<String, HashMap<String, String>>>,
}

/// How many file tokens [`FileTokens`] keeps before it starts over: far more files than
/// a DAG folder holds, so only a server that has seen many renames ever forgets them.
const MAX_KEPT_TOKENS: usize = 100_000;

impl FileTokens {
    pub fn new(secret: &[u8]) -> FileTokens {
        let mut key = keyed(secret);
        key.update(b"file_token.");
        FileTokens {
            key,
            signed: RwLock::default(),
        }
    }

    /// The token of a DAG file.
    pub fn sign(&self, bundle_name: &str, relative_fileloc: &str) -> String {
        let kept = self.signed.read().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = kept.get(bundle_name).and_then(|b| b.get(relative_fileloc)) {
            return t.clone();
        }
        drop(kept);
        let token = self.signed_anew(bundle_name, relative_fileloc);
        let mut kept = self.signed.write().unwrap_or_else(|p| p.into_inner());
        if kept.values().map(HashMap::len).sum::<usize>() >= MAX_KEPT_TOKENS {
            kept.clear();
        }
        kept.entry(bundle_name.to_string())
            .or_default()
            .insert(relative_fileloc.to_string(), token.clone());
        token
    }

    fn signed_anew(&self, bundle_name: &str, relative_fileloc: &str) -> String {
        let payload = B64.encode(
            json!({"bundle_name": bundle_name, "relative_fileloc": relative_fileloc}).to_string(),
        );
        let sig = B64.encode(self.mac(&payload).finalize().into_bytes());
        let sig = &sig[..TOKEN_SIG_CHARS.min(sig.len())];
        format!("{payload}.{sig}")
    }

    /// (bundle_name, relative_fileloc) from a token [`FileTokens::sign`] made with this
    /// secret.
    pub fn open(&self, token: &str) -> Option<(String, String)> {
        let (payload, sig) = token.split_once('.')?;
        if sig.len() != TOKEN_SIG_CHARS {
            return None;
        }
        // 27 characters carry the MAC's first 20 bytes and two bits of the 21st: the bytes
        // are checked in constant time, then (with 160 bits already right) the last
        // character in the clear.
        let head = B64_LOOSE.decode(sig).ok()?;
        let mac = self.mac(payload);
        let full = mac.clone().finalize().into_bytes();
        if !verify_prefix(mac, &head) || B64.encode(full).get(..TOKEN_SIG_CHARS)? != sig {
            return None;
        }
        let v: Value = serde_json::from_slice(&B64.decode(payload).ok()?).ok()?;
        Some((
            v["bundle_name"].as_str()?.to_string(),
            v["relative_fileloc"].as_str()?.to_string(),
        ))
    }

    fn mac(&self, payload: &str) -> Hmac<Sha512> {
        let mut m = self.key.clone();
        m.update(payload.as_bytes());
        m
    }
}

/// itsdangerous signatures are 20 bytes, 27 base64url characters; these are as long.
const TOKEN_SIG_CHARS: usize = 27;

/// How long a continuation token's signature is, in bytes.
const TOKEN_MAC_LEN: usize = 16;

/// The log a continuation token belongs to: a try of a task instance.
pub struct LogId<'a> {
    pub dag_id: &'a str,
    pub run_id: &'a str,
    pub task_id: &'a str,
    pub try_number: u32,
}

/// What a continuation token signs: the log it belongs to and the offset read.
fn token_payload(log: &LogId, offset: u64) -> String {
    format!(
        "updraft-log\0{}\0{}\0{}\0{}\0{offset}",
        log.dag_id, log.run_id, log.task_id, log.try_number
    )
}

fn token_mac(secret: &[u8], payload: &str) -> Hmac<Sha512> {
    let mut m = keyed(secret);
    m.update(payload.as_bytes());
    m
}

/// A continuation token: where the next read of `log` starts, signed with `secret`.
pub fn make_token(secret: &[u8], log: &LogId, offset: u64) -> String {
    let mac = token_mac(secret, &token_payload(log, offset)).finalize();
    format!(
        "{}.{}",
        B64.encode(offset.to_string()),
        B64.encode(&mac.into_bytes()[..TOKEN_MAC_LEN])
    )
}

/// The offset a token carries, if this server signed it for this log.
pub fn read_token(secret: &[u8], log: &LogId, token: &str) -> Result<u64, ApiError> {
    let bad =
        || ApiError::bad_request("Bad Signature. Please use only the tokens provided by the API.");
    let (offset, mac) = token.split_once('.').ok_or_else(bad)?;
    let offset: u64 = B64
        .decode(offset)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let mac = B64.decode(mac).map_err(|_| bad())?;
    let want = token_mac(secret, &token_payload(log, offset));
    if mac.len() == TOKEN_MAC_LEN && verify_prefix(want, &mac) {
        Ok(offset)
    } else {
        Err(bad())
    }
}

/// An HMAC-SHA512 keyed with `secret`.
fn keyed(secret: &[u8]) -> Hmac<Sha512> {
    <Hmac<Sha512> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length")
}

/// Whether `tag` is the start of `mac`'s output, checked by the MAC crate in constant time
/// (an empty tag never is).
fn verify_prefix(mac: Hmac<Sha512>, tag: &[u8]) -> bool {
    mac.verify_truncated_left(tag).is_ok()
}

/// Whether two secrets (a stored password and a given one) are the same, in a time that
/// does not depend on where they differ: both are MACed under one key and the MACs
/// compared by the MAC crate's constant-time verify.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let key = keyed(b"updraft-same-secret");
    let mut given = key.clone();
    given.update(b);
    let mut stored = key;
    stored.update(a);
    stored.verify_slice(&given.finalize().into_bytes()).is_ok()
}

/// base64url that takes the 27-character signatures, whose last character carries bits
/// beyond the 20th byte.
const B64_LOOSE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_tokens_round_trip_and_resist_tampering() {
        let (k, other) = (FileTokens::new(b"k"), FileTokens::new(b"other"));
        let t = k.sign("dags-folder", "sample_abc.py");
        // The payload is exactly Airflow's (see samples/GET_dags_limit2.json).
        assert!(
            t.starts_with("eyJidW5kbGVfbmFtZSI6ImRhZ3MtZm9sZGVyIiwicmVsYXRpdmVfZmlsZWxvYyI6InNhbXBsZV9hYmMucHkifQ."),
            "{t}"
        );
        assert_eq!(t.split('.').nth(1).unwrap().len(), 27);
        // The signature: HMAC-SHA512 keyed with the secret over `file_token.` and the
        // payload, cut to 27 characters; the same when kept.
        let (payload, sig) = t.split_once('.').unwrap();
        let mut m = <Hmac<Sha512> as KeyInit>::new_from_slice(b"k").unwrap();
        m.update(format!("file_token.{payload}").as_bytes());
        assert_eq!(sig, &B64.encode(m.finalize().into_bytes())[..27]);
        assert_eq!(k.sign("dags-folder", "sample_abc.py"), t);
        assert_eq!(
            k.open(&t),
            Some(("dags-folder".into(), "sample_abc.py".into()))
        );
        assert_eq!(other.open(&t), None);
        let forged = format!(
            "{}.{}",
            B64.encode(r#"{"bundle_name":"x","relative_fileloc":"y"}"#),
            t.split('.').nth(1).unwrap()
        );
        assert_eq!(k.open(&forged), None);
        // The last character carries two bits of the MAC too: another one is refused.
        // Flip the lowest bit of the last character: only a MAC bit past the 20th byte.
        let abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = abc.find(sig.chars().last().unwrap()).unwrap();
        let other_last = abc.chars().nth(last ^ 1).unwrap();
        let tampered = format!("{payload}.{}{other_last}", &sig[..26]);
        assert_eq!(k.open(&tampered), None);
        assert_eq!(k.open(&format!("{payload}.{}", &sig[..26])), None);
        assert_eq!(k.open(&format!("{payload}.")), None);
    }

    #[test]
    fn same_secret_compares_whole_secrets() {
        assert!(same_secret(b"hunter2", b"hunter2"));
        assert!(!same_secret(b"hunter2", b"hunter3"));
        assert!(!same_secret(b"hunter2", b"hunter"));
        assert!(!same_secret(b"", b"x"));
        assert!(same_secret(b"", b""));
    }
}
