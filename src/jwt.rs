//! JSON Web Tokens, HS512, as Airflow signs them: for API users (`/auth/token`) and for
//! task instances (the Execution API). The signing secret is kept in the home.
//!
//! Verification accepts exactly one header algorithm, HS512: `alg: none` and every other
//! algorithm are refused before the signature is looked at.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha512;

use crate::error::{Error, Result};

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Invalid {
    Malformed,
    Algorithm(String),
    Signature,
    Expired,
    Audience,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Invalid::Malformed => f.write_str("malformed token"),
            Invalid::Algorithm(a) => write!(f, "algorithm {a:?} is not accepted"),
            Invalid::Signature => f.write_str("signature verification failed"),
            Invalid::Expired => f.write_str("token has expired"),
            Invalid::Audience => f.write_str("invalid audience"),
        }
    }
}

/// Signs `claims` (a JSON object).
pub fn sign(secret: &[u8], claims: &Value) -> String {
    let header = B64.encode(json!({"alg": "HS512", "typ": "JWT"}).to_string());
    let payload = B64.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    let sig = B64.encode(mac(secret, signing_input.as_bytes()));
    format!("{signing_input}.{sig}")
}

/// Checks a token's algorithm, signature, expiry (`exp`, with `leeway` seconds) and
/// audience; returns its claims.
pub fn verify(
    secret: &[u8],
    token: &str,
    audience: &str,
    now: i64,
    leeway: i64,
) -> Result<Value, Invalid> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Invalid::Malformed);
    };
    let header: Value = decode(h)?;
    match header["alg"].as_str() {
        Some("HS512") => {}
        other => return Err(Invalid::Algorithm(other.unwrap_or("").to_string())),
    }
    let sig = B64.decode(s).map_err(|_| Invalid::Malformed)?;
    let mut m = keyed(secret);
    m.update(h.as_bytes());
    m.update(b".");
    m.update(p.as_bytes());
    m.verify_slice(&sig).map_err(|_| Invalid::Signature)?;
    let claims: Value = decode(p)?;
    let exp = claims["exp"].as_i64().ok_or(Invalid::Malformed)?;
    if exp + leeway < now {
        return Err(Invalid::Expired);
    }
    let aud_ok = match &claims["aud"] {
        Value::String(a) => a == audience,
        Value::Array(list) => list.iter().any(|a| a == audience),
        _ => false,
    };
    if !aud_ok {
        return Err(Invalid::Audience);
    }
    Ok(claims)
}

fn decode(part: &str) -> Result<Value, Invalid> {
    let bytes = B64.decode(part).map_err(|_| Invalid::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| Invalid::Malformed)
}

fn mac(secret: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = keyed(secret);
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// An HMAC keyed with `secret`. Keying hashes the padded key twice (two SHA-512
/// blocks, about a third of signing or checking a task token), so each thread keeps
/// its last keyed state and copies it while the secret is the same one.
fn keyed(secret: &[u8]) -> Hmac<Sha512> {
    thread_local! {
        static KEYED: std::cell::RefCell<Option<(Vec<u8>, Hmac<Sha512>)>> =
            const { std::cell::RefCell::new(None) };
    }
    KEYED.with_borrow_mut(|last| match last {
        Some((key, mac)) if key.as_slice() == secret => mac.clone(),
        _ => {
            let mac = <Hmac<Sha512> as KeyInit>::new_from_slice(secret)
                .expect("HMAC takes any key length");
            *last = Some((secret.to_vec(), mac.clone()));
            mac
        }
    })
}

/// The signing secret: `[api_auth] jwt_secret` if set, else the file `jwt_secret` in the
/// home, created (readable by the owner only) on first use. Every process on one home
/// signs and checks with the same secret.
pub fn secret(configured: &str, home: &Path) -> Result<Vec<u8>> {
    if !configured.is_empty() {
        return Ok(configured.as_bytes().to_vec());
    }
    let path = home.join("jwt_secret");
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().as_bytes().to_vec()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&path, e)),
    }
    let fresh = crate::ids::random_string(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        64,
    );
    // Processes (a pool's worker processes) and threads may race to create it: each
    // writes its own file whole, and only the first link to `path` takes (a link never
    // replaces a file), so every one of them reads the same secret back. Where the file
    // system has no hard links, a rename puts it in place.
    let tmp = home.join(format!(
        "jwt_secret.{}.{}.tmp",
        std::process::id(),
        crate::ids::random_string(b"abcdefghijklmnopqrstuvwxyz", 8)
    ));
    crate::home::write_private(&tmp, &fresh)?;
    let placed = match std::fs::hard_link(&tmp, &path) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => std::fs::rename(&tmp, &path),
        _ => Ok(()),
    };
    let _ = std::fs::remove_file(&tmp);
    placed.map_err(|e| Error::io(&path, e))?;
    let s = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    Ok(s.trim().as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUD: &str = "urn:airflow.apache.org:task";

    /// Issue 22's CI: two worker processes started at once each made a secret, and the
    /// one that read its own back before the other overwrote it signed tokens the other
    /// refused ("Invalid JWT token"). Everyone racing on a fresh home gets one secret.
    #[test]
    fn racing_creators_of_the_secret_all_get_the_same_one() {
        for round in 0..20 {
            let home = std::env::temp_dir()
                .join(format!("updraft-jwt-race-{}-{round}", std::process::id()));
            let _ = std::fs::remove_dir_all(&home);
            std::fs::create_dir_all(&home).unwrap();
            let start = std::sync::Barrier::new(8);
            let got: Vec<Vec<u8>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..8)
                    .map(|_| {
                        s.spawn(|| {
                            start.wait();
                            secret("", &home).unwrap()
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            assert!(got.iter().all(|g| g == &got[0]), "round {round}: {got:?}");
            let left: Vec<_> = std::fs::read_dir(&home).unwrap().collect();
            assert_eq!(left.len(), 1, "only jwt_secret is left: {left:?}");
            std::fs::remove_dir_all(&home).unwrap();
        }
    }

    #[test]
    fn round_trip_and_refusals() {
        let key = b"k";
        let tok = sign(key, &json!({"sub": "ti", "aud": AUD, "exp": 100}));
        assert_eq!(verify(key, &tok, AUD, 50, 0).unwrap()["sub"], "ti");
        assert_eq!(verify(key, &tok, AUD, 200, 0), Err(Invalid::Expired));
        assert_eq!(verify(key, &tok, AUD, 105, 10).unwrap()["sub"], "ti");
        assert_eq!(verify(b"other", &tok, AUD, 50, 0), Err(Invalid::Signature));
        assert_eq!(
            verify(key, &tok, "apache-airflow", 50, 0),
            Err(Invalid::Audience)
        );
        // Tampered claims.
        let mut parts: Vec<&str> = tok.split('.').collect();
        let forged = B64.encode(json!({"sub": "other", "aud": AUD, "exp": 100}).to_string());
        parts[1] = &forged;
        assert_eq!(
            verify(key, &parts.join("."), AUD, 50, 0),
            Err(Invalid::Signature)
        );
        // alg none, with or without a signature.
        let none = format!(
            "{}.{}.",
            B64.encode(r#"{"alg":"none"}"#),
            B64.encode(json!({"sub": "ti", "aud": AUD, "exp": 100}).to_string())
        );
        assert_eq!(
            verify(key, &none, AUD, 50, 0),
            Err(Invalid::Algorithm("none".into()))
        );
        assert_eq!(verify(key, "a.b", AUD, 50, 0), Err(Invalid::Malformed));
    }
}
