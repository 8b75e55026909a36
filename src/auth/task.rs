//! Task tokens: the JWTs a task's supervisor shows the Execution API. The scheduler mints
//! them when it hands a try to the executor; the Execution API checks them and re-issues
//! them near expiry. Both come here, so neither depends on the other.

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
    let iat = now.timestamp();
    jwt::sign(
        secret,
        &TaskClaims {
            sub: ti_id,
            aud: AUDIENCE,
            iat,
            nbf: iat,
            exp: iat + lifetime_secs as i64,
            scope: "execution",
            try_number,
        },
    )
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
pub fn verify(secret: &[u8], token: &str, now: i64) -> Result<Claims, jwt::Invalid> {
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
