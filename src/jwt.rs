//! JSON Web Tokens, HS512, as Airflow signs them: for API users (`/auth/token`) and for
//! task instances (the Execution API). The signing secret is kept in the home.
//!
//! Verification accepts exactly one header algorithm, HS512: `alg: none` and every other
//! algorithm are refused before the signature is looked at.
//!
//! Every Execution API call checks a token, so a token's parts are not read into
//! `serde_json::Value`s: each member of the payload is handed to the caller's [`Claims`]
//! as a [`Claim`] (borrowed from the decoded bytes where it can be), while the JSON is
//! parsed exactly as strictly as a `Value` would parse it.

use std::borrow::Cow;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
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

/// The header of every token updraft signs, `{"alg":"HS512","typ":"JWT"}`, encoded.
const HEADER: &str = "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9";

/// Signs `claims` (anything that serializes to a JSON object: a `Value`, or a struct
/// serialized straight into the token).
pub fn sign(secret: &[u8], claims: &impl Serialize) -> String {
    let payload = serde_json::to_vec(claims).expect("claims serialize to JSON");
    let mut token = String::with_capacity(HEADER.len() + payload.len() * 4 / 3 + 96);
    token.push_str(HEADER);
    token.push('.');
    B64.encode_string(&payload, &mut token);
    let mut m = keyed(secret);
    m.update(token.as_bytes());
    let sig = m.finalize().into_bytes();
    token.push('.');
    B64.encode_string(sig, &mut token);
    token
}

/// One claim of a token, as much of it as a check reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim<'a> {
    Str(Cow<'a, str>),
    /// An integer of zero or more.
    Unsigned(u64),
    /// A negative integer.
    Negative(i64),
    /// An array: its string members (what an audience list is searched for).
    Strings(Vec<Cow<'a, str>>),
    /// An object, a float, a boolean or null.
    Other,
}

impl Claim<'_> {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Claim::Str(s) => Some(s),
            _ => None,
        }
    }

    /// An integer that fits in an `i64`, as `serde_json::Value::as_i64` reads one.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Claim::Unsigned(n) => i64::try_from(n).ok(),
            Claim::Negative(n) => Some(n),
            _ => None,
        }
    }

    /// An integer of zero or more, as `serde_json::Value::as_u64` reads one.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Claim::Unsigned(n) => Some(n),
            _ => None,
        }
    }
}

/// What a caller reads from a token's claims. It is handed every member of the payload
/// object in order; a name given twice is handed twice, so the last value wins, as it
/// does in a JSON object read whole.
pub trait Claims: Default {
    fn claim(&mut self, name: &str, value: Claim<'_>);
}

/// Checks a token's algorithm, signature, expiry (`exp`, with `leeway` seconds) and
/// audience; returns its claims as `C` reads them.
pub fn verify<C: Claims>(
    secret: &[u8],
    token: &str,
    audience: &str,
    now: i64,
    leeway: i64,
) -> Result<C, Invalid> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Invalid::Malformed);
    };
    // The header updraft signs says HS512; any other one is read.
    if h != HEADER {
        let mut alg: Option<String> = None;
        read(h, &mut |name, value| {
            if name == "alg" {
                alg = value.as_str().map(str::to_string);
            }
        })?;
        if alg.as_deref() != Some("HS512") {
            return Err(Invalid::Algorithm(alg.unwrap_or_default()));
        }
    }
    let sig = B64.decode(s).map_err(|_| Invalid::Malformed)?;
    let mut m = keyed(secret);
    m.update(h.as_bytes());
    m.update(b".");
    m.update(p.as_bytes());
    m.verify_slice(&sig).map_err(|_| Invalid::Signature)?;
    let mut claims = C::default();
    let (mut exp, mut aud_ok) = (None, false);
    read(p, &mut |name, value| {
        match name {
            "exp" => exp = value.as_i64(),
            "aud" => {
                aud_ok = match &value {
                    Claim::Str(a) => a == audience,
                    Claim::Strings(list) => list.iter().any(|a| a == audience),
                    _ => false,
                }
            }
            _ => {}
        }
        claims.claim(name, value);
    })?;
    let exp = exp.ok_or(Invalid::Malformed)?;
    if exp + leeway < now {
        return Err(Invalid::Expired);
    }
    if !aud_ok {
        return Err(Invalid::Audience);
    }
    Ok(claims)
}

/// Decodes one part of a token and parses it as one JSON value, handing each member of
/// it, when it is an object, to `sink`.
fn read(part: &str, sink: &mut Sink<'_>) -> Result<(), Invalid> {
    let bytes = B64.decode(part).map_err(|_| Invalid::Malformed)?;
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    Read(Some(sink))
        .deserialize(&mut de)
        .and_then(|_| de.end())
        .map_err(|_| Invalid::Malformed)
}

/// Reads one JSON value into a [`Claim`]. With a sink (the top level), the members of
/// an object go to it; without one (a nested value), they are parsed and dropped. Every
/// value goes through `deserialize_any`, as into a `Value`: strings are checked text,
/// numbers in range, nesting within serde_json's limit.
struct Read<'s, 'f>(Option<&'s mut Sink<'f>>);

/// Where the members of a token part's object go.
type Sink<'f> = dyn FnMut(&str, Claim<'_>) + 'f;

impl<'de> DeserializeSeed<'de> for Read<'_, '_> {
    type Value = Claim<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Claim<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Read<'_, '_> {
    type Value = Claim<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> std::result::Result<Claim<'de>, E> {
        Ok(Claim::Other)
    }

    fn visit_unit<E>(self) -> std::result::Result<Claim<'de>, E> {
        Ok(Claim::Other)
    }

    fn visit_f64<E>(self, _: f64) -> std::result::Result<Claim<'de>, E> {
        Ok(Claim::Other)
    }

    fn visit_u64<E>(self, n: u64) -> std::result::Result<Claim<'de>, E> {
        Ok(Claim::Unsigned(n))
    }

    /// serde_json gives negative integers here; a `Value` keeps any other as unsigned.
    fn visit_i64<E>(self, n: i64) -> std::result::Result<Claim<'de>, E> {
        Ok(u64::try_from(n).map_or(Claim::Negative(n), Claim::Unsigned))
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> std::result::Result<Claim<'de>, E> {
        Ok(Claim::Str(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> std::result::Result<Claim<'de>, E> {
        Ok(Claim::Str(Cow::Owned(s.to_string())))
    }

    fn visit_string<E>(self, s: String) -> std::result::Result<Claim<'de>, E> {
        Ok(Claim::Str(Cow::Owned(s)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Claim<'de>, A::Error> {
        let mut strings = Vec::new();
        while let Some(item) = seq.next_element_seed(Read(None))? {
            if let Claim::Str(s) = item {
                strings.push(s);
            }
        }
        Ok(Claim::Strings(strings))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Claim<'de>, A::Error> {
        let mut sink = self.0;
        while let Some(key) = map.next_key_seed(Read(None))? {
            let value = map.next_value_seed(Read(None))?;
            if let (Some(sink), Some(name)) = (sink.as_mut(), key.as_str()) {
                sink(name, value);
            }
        }
        Ok(Claim::Other)
    }
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
    use serde_json::json;

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

    /// Every claim by name, with the last value of a name given twice.
    #[derive(Default, Debug, PartialEq)]
    struct All(Vec<(String, Claim<'static>)>);

    impl Claims for All {
        fn claim(&mut self, name: &str, value: Claim<'_>) {
            let value = match value {
                Claim::Str(s) => Claim::Str(Cow::Owned(s.into_owned())),
                Claim::Strings(l) => {
                    Claim::Strings(l.into_iter().map(|s| Cow::Owned(s.into_owned())).collect())
                }
                Claim::Unsigned(n) => Claim::Unsigned(n),
                Claim::Negative(n) => Claim::Negative(n),
                Claim::Other => Claim::Other,
            };
            self.0.retain(|(n, _)| n != name);
            self.0.push((name.to_string(), value));
        }
    }

    impl All {
        fn get(&self, name: &str) -> Option<&Claim<'static>> {
            self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
        }
    }

    /// `verify` as it was, reading both parts into `serde_json::Value`s: the oracle the
    /// typed reading is held to.
    fn verify_as_values(
        secret: &[u8],
        token: &str,
        audience: &str,
        now: i64,
        leeway: i64,
    ) -> Result<serde_json::Value, Invalid> {
        use serde_json::Value;
        fn decode(part: &str) -> Result<Value, Invalid> {
            let bytes = B64.decode(part).map_err(|_| Invalid::Malformed)?;
            serde_json::from_slice(&bytes).map_err(|_| Invalid::Malformed)
        }
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

    /// A token of raw header and payload bytes, signed with `key`.
    fn raw_token(key: &[u8], header: &[u8], payload: &[u8]) -> String {
        let input = format!("{}.{}", B64.encode(header), B64.encode(payload));
        let mut m = keyed(key);
        m.update(input.as_bytes());
        format!("{input}.{}", B64.encode(m.finalize().into_bytes()))
    }

    /// The typed reading of a token refuses and accepts exactly what reading it into
    /// `Value`s did, with the same error, and reads the same claims: odd headers (an
    /// extra field, another or no algorithm, one given twice, not an object, bad JSON
    /// or text), odd payloads (not an object, `exp` not an integer or given twice, every
    /// audience shape, nested values, numbers out of range, bad text), forged tokens.
    #[test]
    fn typed_claims_read_as_values_did() {
        let key = b"k";
        let hs = br#"{"alg":"HS512","typ":"JWT"}"#.as_slice();
        let claims = br#"{"sub":"ti","aud":"urn:airflow.apache.org:task","exp":100}"#.as_slice();
        let headers: &[&[u8]] = &[
            hs,
            br#"{"typ":"JWT","alg":"HS512"}"#,
            br#"{"alg":"HS512","kid":"x","extra":{"a":[1,2.5,null,true]}}"#,
            br#"{"alg":"HS256","typ":"JWT"}"#,
            br#"{"alg":"none"}"#,
            br#"{"alg":"hs512"}"#,
            br#"{"alg":512}"#,
            br#"{"alg":null}"#,
            br#"{"alg":["HS512"]}"#,
            br#"{"typ":"JWT"}"#,
            br#"{"alg":"none","alg":"HS512"}"#,
            br#"{"alg":"HS512","alg":"none"}"#,
            br#"["HS512"]"#,
            br#""HS512""#,
            br#"null"#,
            br#"{"alg":"HS512""#,
            br#"{"alg":"HS512"} x"#,
            br#"{"alg":"HS512","x":"\ud800"}"#,
            b"{\"alg\":\"HS512\",\"x\":\"\xff\"}",
            br#"{"alg":"HS512","x":1e400}"#,
            br#"{"alg":"HS\u0035\u0031\u0032"}"#,
            br#"{"alg":"HS512","typ":"JWT","x":"esc\"aped"}"#,
            b"",
        ];
        let payloads: &[&[u8]] = &[
            claims,
            br#"{"sub":"ti","aud":"urn:airflow.apache.org:task","exp":100,"iat":50,"nbf":50,"scope":"execution","try_number":3}"#,
            br#"{"sub":"ti","aud":["x",1,"urn:airflow.apache.org:task"],"exp":100}"#,
            br#"{"sub":"ti","aud":["x",["urn:airflow.apache.org:task"]],"exp":100}"#,
            br#"{"sub":"ti","aud":[],"exp":100}"#,
            br#"{"sub":"ti","aud":{"a":"urn:airflow.apache.org:task"},"exp":100}"#,
            br#"{"sub":"ti","aud":7,"exp":100}"#,
            br#"{"sub":"ti","exp":100}"#,
            br#"{"sub":"ti","aud":"other","exp":100}"#,
            br#"{"sub":"ti","aud":"urn:airflow.apache.org:task","exp":100.0}"#,
            br#"{"sub":"ti","aud":"urn:airflow.apache.org:task","exp":"100"}"#,
            br#"{"sub":"ti","aud":"urn:airflow.apache.org:task","exp":-5}"#,
            br#"{"sub":"ti","aud":"urn:airflow.apache.org:task","exp":9223372036854775808}"#,
            br#"{"sub":"ti","aud":"urn:airflow.apache.org:task","exp":18446744073709551616}"#,
            br#"{"sub":"ti","aud":"urn:airflow.apache.org:task","exp":1,"exp":100}"#,
            br#"{"sub":"ti","aud":"urn:airflow.apache.org:task","exp":100,"exp":1}"#,
            br#"{"sub":"ti","aud":"other","aud":"urn:airflow.apache.org:task","exp":100}"#,
            br#"{"sub":1,"sub":"ti","aud":"urn:airflow.apache.org:task","exp":100,"try_number":-1,"dag_callback":-7}"#,
            br#"{"sub":"t\u00ef","aud":"urn:airflow.apache.org:task","exp":100,"n":{"deep":[{"x":[[]]}]}}"#,
            br#"{"sub":"ti","aud":"urn:airflow.apache.org:task","exp":100,"x":1e400}"#,
            br#"{"sub":"ti","aud":"urn:airflow.apache.org:task","exp":100,"x":"\ud800"}"#,
            b"{\"sub\":\"ti\",\"aud\":\"urn:airflow.apache.org:task\",\"exp\":100,\"x\":\"\xff\"}",
            br#"{"sub":"ti","aud":"urn:airflow.apache.org:task","exp":100"#,
            br#"{"sub":"ti","aud":"urn:airflow.apache.org:task","exp":100} {}"#,
            br#"[100, "urn:airflow.apache.org:task"]"#,
            br#""urn:airflow.apache.org:task""#,
            br#"100"#,
            b"",
        ];
        let mut tokens = Vec::new();
        for h in headers {
            for p in payloads {
                tokens.push(raw_token(key, h, p));
            }
        }
        // Forged: signed with another key, signature cut or not base64, parts missing
        // or extra, a header that is not base64.
        let good = raw_token(key, hs, claims);
        let (head, _) = good.rsplit_once('.').unwrap();
        tokens.push(raw_token(b"other", hs, claims));
        tokens.push(format!("{head}."));
        tokens.push(good[..good.len() - 4].to_string());
        tokens.push(format!("{head}.!!"));
        tokens.push(format!("{good}.x"));
        tokens.push(head.to_string());
        tokens.push(format!("!!.{}", &good[HEADER.len() + 1..]));
        let mut accepted = 0;
        for (i, t) in tokens.iter().enumerate() {
            for (now, leeway) in [(50, 0), (105, 0), (105, 10)] {
                let typed: Result<All, Invalid> = verify(key, t, AUD, now, leeway);
                let values = verify_as_values(key, t, AUD, now, leeway);
                match (&typed, &values) {
                    (Ok(all), Ok(v)) => {
                        accepted += 1;
                        let obj = v.as_object().expect("claims are an object");
                        assert_eq!(all.0.len(), obj.len(), "token {i}: {t}");
                        for (name, value) in obj {
                            let c = all.get(name).expect("every claim is read");
                            assert_eq!(c.as_str(), value.as_str(), "token {i}: {name}");
                            assert_eq!(c.as_i64(), value.as_i64(), "token {i}: {name}");
                            assert_eq!(c.as_u64(), value.as_u64(), "token {i}: {name}");
                        }
                    }
                    (Err(a), Err(b)) => assert_eq!(a, b, "token {i}: {t}"),
                    _ => panic!("token {i} ({t}): typed {typed:?}, as values {values:?}"),
                }
            }
        }
        assert!(accepted > 50, "{accepted}");
    }

    /// The header updraft signs is the one `verify` knows without reading it, and a token
    /// is what signing the same claims' JSON text gives.
    #[test]
    fn the_known_header_is_the_signed_one() {
        assert_eq!(
            HEADER,
            B64.encode(json!({"alg": "HS512", "typ": "JWT"}).to_string())
        );
        let claims = json!({"sub": "ti", "aud": AUD, "exp": 100});
        assert_eq!(
            sign(b"k", &claims),
            raw_token(
                b"k",
                br#"{"alg":"HS512","typ":"JWT"}"#,
                claims.to_string().as_bytes()
            )
        );
    }

    #[test]
    fn round_trip_and_refusals() {
        let key = b"k";
        let tok = sign(key, &json!({"sub": "ti", "aud": AUD, "exp": 100}));
        let sub = |r: Result<All, Invalid>| r.map(|a| a.get("sub").cloned());
        let ti = Ok(Some(Claim::Str("ti".into())));
        assert_eq!(sub(verify(key, &tok, AUD, 50, 0)), ti);
        assert_eq!(sub(verify(key, &tok, AUD, 200, 0)), Err(Invalid::Expired));
        assert_eq!(sub(verify(key, &tok, AUD, 105, 10)), ti);
        assert_eq!(
            sub(verify(b"other", &tok, AUD, 50, 0)),
            Err(Invalid::Signature)
        );
        assert_eq!(
            sub(verify(key, &tok, "apache-airflow", 50, 0)),
            Err(Invalid::Audience)
        );
        // Tampered claims.
        let mut parts: Vec<&str> = tok.split('.').collect();
        let forged = B64.encode(json!({"sub": "other", "aud": AUD, "exp": 100}).to_string());
        parts[1] = &forged;
        assert_eq!(
            sub(verify(key, &parts.join("."), AUD, 50, 0)),
            Err(Invalid::Signature)
        );
        // alg none, with or without a signature.
        let none = format!(
            "{}.{}.",
            B64.encode(r#"{"alg":"none"}"#),
            B64.encode(json!({"sub": "ti", "aud": AUD, "exp": 100}).to_string())
        );
        assert_eq!(
            sub(verify(key, &none, AUD, 50, 0)),
            Err(Invalid::Algorithm("none".into()))
        );
        assert_eq!(sub(verify(key, "a.b", AUD, 50, 0)), Err(Invalid::Malformed));
    }
}
