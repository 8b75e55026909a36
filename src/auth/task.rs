//! Task tokens: the JWTs a task's supervisor shows the Execution API. The scheduler mints
//! them when it hands a try to the executor; the Execution API checks them and re-issues
//! them near expiry. Both come here, so neither depends on the other.

use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use crate::jwt;

/// The audience of task tokens, as Airflow sets it.
pub const AUDIENCE: &str = "urn:airflow.apache.org:task";
/// Seconds past `exp` a task token is still accepted.
const LEEWAY_SECS: i64 = 10;
/// updraft's claim naming the try a token was minted for. Airflow gives every try a new
/// task instance id; updraft keeps the id across tries, so the token names its try.
const TRY_CLAIM: &str = "try_number";

/// Mints a task token for one try of one task instance.
pub fn mint(
    secret: &[u8],
    ti_id: &str,
    try_number: u32,
    lifetime_secs: f64,
    now: DateTime<Utc>,
) -> String {
    mint_in(&CHECKED, secret, ti_id, try_number, lifetime_secs, now)
}

fn mint_in(
    checked: &Checked,
    secret: &[u8],
    ti_id: &str,
    try_number: u32,
    lifetime_secs: f64,
    now: DateTime<Utc>,
) -> String {
    let iat = now.timestamp();
    let exp = iat + lifetime_secs as i64;
    let token = jwt::sign(
        secret,
        &TaskClaims {
            sub: ti_id,
            aud: AUDIENCE,
            iat,
            nbf: iat,
            exp,
            scope: "execution",
            try_number,
        },
    );
    // What `verify` reads from it: the try's claim is called first by the process that
    // minted its token when the API runs in it (standalone, `dags test`).
    checked.remember(
        secret,
        &token,
        Claims {
            execution: true,
            ti_id: ti_id.to_string(),
            try_number: Some(try_number),
            dag_callback: None,
            iat,
            exp,
        },
    );
    token
}

/// A task token's claims as minted (serialized straight into the token).
#[derive(Serialize)]
struct TaskClaims<'a> {
    sub: &'a str,
    aud: &'static str,
    iat: i64,
    nbf: i64,
    exp: i64,
    scope: &'static str,
    /// [`TRY_CLAIM`].
    try_number: u32,
}

/// updraft's claim naming the DAG callback request a token was minted for: such a token
/// reaches that request's own routes and, while it runs, reads what a callback may read.
const DAG_CALLBACK_CLAIM: &str = "dag_callback";

/// Mints a token for running one DAG callback request (`store::DagCallbackRow`).
pub fn mint_dag_callback(
    secret: &[u8],
    callback_id: i64,
    lifetime_secs: f64,
    now: DateTime<Utc>,
) -> String {
    let iat = now.timestamp();
    jwt::sign(
        secret,
        &json!({"sub": format!("dag_callback:{callback_id}"), "aud": AUDIENCE, "iat": iat, "nbf": iat,
                "exp": iat + lifetime_secs as i64, "scope": "execution", DAG_CALLBACK_CLAIM: callback_id}),
    )
}

/// What a checked task token says.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    /// Whether its scope is `execution` (a token of another scope is refused by callers).
    pub execution: bool,
    /// The task instance it names (`sub`); empty when missing.
    pub ti_id: String,
    /// The try it was minted for; `None` for a token without the claim.
    pub try_number: Option<u32>,
    /// The DAG callback request a callback token names (its `sub` is then no task
    /// instance).
    pub dag_callback: Option<i64>,
    /// Issued-at and expiry (seconds since the epoch); `now` when missing.
    pub iat: i64,
    pub exp: i64,
}

/// Checks a task token's algorithm, signature, audience and expiry (with a little leeway)
/// at `now` (seconds since the epoch), and reads its claims.
///
/// A token this process checked (or minted) before with the same secret is not checked
/// again: its text is compared in constant time with the one remembered, its expiry is
/// checked at `now`, and its claims are the ones read then.
pub fn verify(secret: &[u8], token: &str, now: i64) -> Result<Claims, jwt::Invalid> {
    verify_in(&CHECKED, secret, token, now)
}

fn verify_in(
    checked: &Checked,
    secret: &[u8],
    token: &str,
    now: i64,
) -> Result<Claims, jwt::Invalid> {
    if let Some(claims) = checked.recall(secret, token) {
        if claims.exp + LEEWAY_SECS < now {
            return Err(jwt::Invalid::Expired);
        }
        return Ok(claims);
    }
    let claims = verify_text(secret, token, now)?;
    checked.remember(secret, token, claims.clone());
    Ok(claims)
}

/// [`verify`] from the token's text: algorithm, signature, expiry and audience.
fn verify_text(secret: &[u8], token: &str, now: i64) -> Result<Claims, jwt::Invalid> {
    let claims: Read = jwt::verify(secret, token, AUDIENCE, now, LEEWAY_SECS)?;
    Ok(Claims {
        execution: claims.execution,
        ti_id: claims.sub.unwrap_or_default(),
        try_number: claims.try_number,
        dag_callback: claims.dag_callback,
        iat: claims.iat.unwrap_or(now),
        exp: claims.exp.unwrap_or(now),
    })
}

/// How many checked task tokens the process remembers (a few hundred bytes each): more
/// than the tries one executor runs at once, so a try's claim, heartbeats and report
/// find theirs; the oldest is forgotten first.
const REMEMBERED: usize = 64;

/// Task tokens whose signature and audience were checked (or that were minted here),
/// with the claims read from them. Checking a token costs two SHA-512 passes and a JSON
/// parse on every Execution API call of a try (its claim, heartbeats and report show
/// one token); a token's text signed with one secret always checks the same way, so
/// once is enough. Only the expiry depends on the time: `verify` checks it every time.
static CHECKED: Checked = Checked::new();

struct Checked(Mutex<Option<Remembered>>);

struct Remembered {
    /// The secret the tokens were checked with; another one forgets them all.
    secret: Vec<u8>,
    hasher: RandomState,
    /// Oldest first: each token's hash (to skip the others cheaply), text and claims.
    tokens: VecDeque<(u64, Box<str>, Claims)>,
}

impl Checked {
    const fn new() -> Checked {
        Checked(Mutex::new(None))
    }

    fn recall(&self, secret: &[u8], token: &str) -> Option<Claims> {
        let guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let r = guard.as_ref().filter(|r| r.secret == secret)?;
        let hash = r.hasher.hash_one(token);
        r.tokens
            .iter()
            .find(|(h, text, _)| *h == hash && same_text(text.as_bytes(), token.as_bytes()))
            .map(|(_, _, claims)| claims.clone())
    }

    fn remember(&self, secret: &[u8], token: &str, claims: Claims) {
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let r = match guard.as_mut() {
            Some(r) if r.secret == secret => r,
            _ => guard.insert(Remembered {
                secret: secret.to_vec(),
                hasher: RandomState::new(),
                tokens: VecDeque::with_capacity(REMEMBERED),
            }),
        };
        let hash = r.hasher.hash_one(token);
        if r.tokens
            .iter()
            .any(|(h, text, _)| *h == hash && same_text(text.as_bytes(), token.as_bytes()))
        {
            return;
        }
        if r.tokens.len() == REMEMBERED {
            r.tokens.pop_front();
        }
        r.tokens.push_back((hash, token.into(), claims));
    }
}

/// Whether two texts are the same, in a time that does not depend on where they
/// differ (a token's signature must not be guessable byte by byte from how long a
/// refusal took).
fn same_text(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && std::hint::black_box(a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y))) == 0
}

/// The claims [`Claims`] is made of, as a token's payload gives them.
#[derive(Default)]
struct Read {
    execution: bool,
    sub: Option<String>,
    try_number: Option<u32>,
    dag_callback: Option<i64>,
    iat: Option<i64>,
    exp: Option<i64>,
}

impl jwt::Claims for Read {
    fn claim(&mut self, name: &str, value: jwt::Claim<'_>) {
        match name {
            "scope" => self.execution = value.as_str() == Some("execution"),
            "sub" => self.sub = value.as_str().map(str::to_string),
            TRY_CLAIM => {
                self.try_number = value.as_u64().map(|t| u32::try_from(t).unwrap_or(u32::MAX))
            }
            DAG_CALLBACK_CLAIM => self.dag_callback = value.as_i64(),
            "iat" => self.iat = value.as_i64(),
            "exp" => self.exp = value.as_i64(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token checked once (or minted here) is not checked again, but its expiry is,
    /// and only its own text under its own secret finds it: another secret, another
    /// signature, a token cut or extended are checked from their text (and refused).
    #[test]
    fn a_remembered_token_is_still_refused_when_expired_or_not_the_same() {
        let checked = Checked::new();
        let now = Utc::now();
        let t = mint_in(&checked, b"secret", "ti-1", 3, 60.0, now);
        let claims = checked
            .recall(b"secret", &t)
            .expect("a minted token is remembered");
        assert_eq!(
            Ok(claims.clone()),
            verify_text(b"secret", &t, now.timestamp())
        );
        assert_eq!(
            verify_in(&checked, b"secret", &t, now.timestamp()),
            Ok(claims)
        );
        let late = now.timestamp() + 60 + LEEWAY_SECS + 1;
        assert_eq!(
            verify_in(&checked, b"secret", &t, late),
            Err(jwt::Invalid::Expired)
        );
        assert_eq!(
            verify_in(&checked, b"other", &t, now.timestamp()),
            Err(jwt::Invalid::Signature)
        );
        assert!(checked.recall(b"other", &t).is_none());
        // The last signature byte changed, the token cut or extended.
        let last = t.as_bytes()[t.len() - 1];
        let flipped = format!(
            "{}{}",
            &t[..t.len() - 1],
            if last == b'A' { 'B' } else { 'A' }
        );
        for forged in [flipped, t[..t.len() - 1].to_string(), format!("{t}A")] {
            assert!(checked.recall(b"secret", &forged).is_none());
            assert!(verify_in(&checked, b"secret", &forged, now.timestamp()).is_err());
        }
        // A token checked from its text is remembered with what its text says.
        let other = jwt::sign(
            b"secret",
            &json!({"sub": "ti-2", "aud": AUDIENCE, "iat": 5, "exp": now.timestamp() + 60,
                    "scope": "execution", "dag_callback": 9}),
        );
        assert!(checked.recall(b"secret", &other).is_none());
        let read = verify_in(&checked, b"secret", &other, now.timestamp()).unwrap();
        assert_eq!(checked.recall(b"secret", &other), Some(read.clone()));
        assert_eq!(
            (read.ti_id.as_str(), read.dag_callback, read.iat),
            ("ti-2", Some(9), 5)
        );
        // Another secret forgets every token of the former one.
        mint_in(&checked, b"new", "ti-3", 1, 60.0, now);
        assert!(checked.recall(b"secret", &other).is_none());
    }

    /// Only the last `REMEMBERED` tokens are kept.
    #[test]
    fn the_oldest_remembered_token_is_forgotten_first() {
        let checked = Checked::new();
        let now = Utc::now();
        let tokens: Vec<String> = (0..=REMEMBERED)
            .map(|i| mint_in(&checked, b"s", &format!("ti-{i}"), 1, 60.0, now))
            .collect();
        assert!(checked.recall(b"s", &tokens[0]).is_none());
        assert!(
            tokens[1..]
                .iter()
                .all(|t| checked.recall(b"s", t).is_some())
        );
    }

    /// The typed claims are the JSON the `json!` object of them was: same keys, same
    /// order, so the same token.
    #[test]
    fn a_task_tokens_claims_are_the_json_they_were() {
        let now = Utc::now();
        let iat = now.timestamp();
        let was = jwt::sign(
            b"secret",
            &json!({"sub": "ti-1", "aud": AUDIENCE, "iat": iat, "nbf": iat, "exp": iat + 60,
                    "scope": "execution", TRY_CLAIM: 3}),
        );
        assert_eq!(mint(b"secret", "ti-1", 3, 60.5, now), was);
    }

    #[test]
    fn a_minted_token_reads_back_and_expires_after_the_leeway() {
        let now = Utc::now();
        let t = mint(b"secret", "ti-1", 3, 60.0, now);
        let c = verify(b"secret", &t, now.timestamp()).unwrap();
        assert!(c.execution);
        assert_eq!((c.ti_id.as_str(), c.try_number), ("ti-1", Some(3)));
        assert_eq!(c.exp - c.iat, 60);
        assert_eq!(c.dag_callback, None);
        let cb = mint_dag_callback(b"secret", 7, 60.0, now);
        let c = verify(b"secret", &cb, now.timestamp()).unwrap();
        assert_eq!(
            (c.dag_callback, c.ti_id.as_str()),
            (Some(7), "dag_callback:7")
        );
        let late = now.timestamp() + 60 + LEEWAY_SECS + 1;
        assert_eq!(verify(b"secret", &t, late), Err(jwt::Invalid::Expired));
        assert_eq!(
            verify(b"other", &t, now.timestamp()),
            Err(jwt::Invalid::Signature)
        );
        // A user token (another audience) is not a task token.
        let user = jwt::sign(
            b"secret",
            &json!({"sub": "u", "aud": "apache-airflow", "exp": now.timestamp() + 60}),
        );
        assert_eq!(
            verify(b"secret", &user, now.timestamp()),
            Err(jwt::Invalid::Audience)
        );
    }
}
