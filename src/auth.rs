//! Users, passwords and API tokens, as Airflow's SimpleAuthManager does them.
//!
//! Users and roles come from `[core] simple_auth_manager_users` (`name:role,...`). A user
//! without a password gets one generated on first start (16 characters from an
//! unambiguous alphabet), printed once and saved in
//! `simple_auth_manager_passwords.json.generated` (owner-only); users no longer in the
//! config are dropped from it. Tokens are HS512 JWTs with `sub` and `role`, audience
//! `apache-airflow`, as Airflow issues them.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::{ids, jwt};

/// The audience of user tokens, as Airflow sets it.
pub const AUDIENCE: &str = "apache-airflow";
/// Airflow's password alphabet: no 0/O, 1/l/I, i/j.
const ALPHABET: &[u8] = b"abcdefghkmnpqrstuvwxyzABCDEFGHKMNPQRSTUVWXYZ23456789";
const PASSWORD_LEN: usize = 16;
/// Wrong passwords allowed per client address within [`WINDOW`] before 429s.
const MAX_FAILURES: u32 = 10;
const WINDOW: Duration = Duration::from_secs(60);

/// SimpleAuthManager's roles, in order: each can do what the ones before it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    User,
    Op,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s.to_ascii_lowercase().as_str() {
            "viewer" => Some(Role::Viewer),
            "user" => Some(Role::User),
            "op" => Some(Role::Op),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::User => "user",
            Role::Op => "op",
            Role::Admin => "admin",
        }
    }
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub name: String,
    pub role: Role,
}

/// Reads, completes and rewrites the passwords file; returns `(user, password)` pairs for
/// the configured users and prints the ones it generated.
pub fn init_passwords(cfg: &Config) -> Result<BTreeMap<String, String>> {
    if cfg.auth.all_admins {
        return Ok(BTreeMap::new());
    }
    let path = &cfg.auth.passwords_file;
    let mut saved: BTreeMap<String, String> = match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            Error::Failed(format!(
                "{} is not a JSON object of user -> password: {e}",
                path.display()
            ))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(e) => return Err(Error::io(path, e)),
    };
    let before = saved.clone();
    saved.retain(|user, _| cfg.auth.users.iter().any(|(u, _)| u == user));
    for (user, _) in &cfg.auth.users {
        if !saved.contains_key(user) {
            let password = ids::random_string(ALPHABET, PASSWORD_LEN);
            println!("Simple auth manager | Password for user '{user}': {password}");
            saved.insert(user.clone(), password);
        }
    }
    if saved != before {
        write_passwords(path, &saved)?;
    }
    Ok(saved)
}

fn write_passwords(path: &Path, saved: &BTreeMap<String, String>) -> Result<()> {
    let text = format!(
        "{}\n",
        serde_json::to_string(saved).expect("strings serialize")
    );
    crate::home::write_private(path, &text)
}

/// `updraft users reset-password USER`: a new password, saved and returned.
pub fn reset_password(cfg: &Config, user: &str) -> Result<String> {
    if !cfg.auth.users.iter().any(|(u, _)| u == user) {
        return Err(Error::NotFound(format!(
            "no user {user:?} in [core] simple_auth_manager_users"
        )));
    }
    let mut saved = init_passwords(cfg)?;
    let password = ids::random_string(ALPHABET, PASSWORD_LEN);
    saved.insert(user.to_string(), password.clone());
    write_passwords(&cfg.auth.passwords_file, &saved)?;
    Ok(password)
}

/// Signs a token for a user.
pub fn issue(secret: &[u8], user: &User, lifetime_secs: f64, now: DateTime<Utc>) -> String {
    let iat = now.timestamp();
    let mut jti = [0u8; 16];
    ids::random_bytes(&mut jti);
    jwt::sign(
        secret,
        &json!({
            "sub": user.name, "role": user.role.as_str(), "teams": [],
            "jti": jti.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "aud": AUDIENCE, "nbf": iat, "iat": iat, "exp": iat + lifetime_secs as i64,
        }),
    )
}

/// Checks a user token; the role comes from the token, as in Airflow.
pub fn verify(
    secret: &[u8],
    token: &str,
    now: DateTime<Utc>,
) -> std::result::Result<User, jwt::Invalid> {
    let claims = jwt::verify(secret, token, AUDIENCE, now.timestamp(), 0)?;
    let name = claims["sub"]
        .as_str()
        .ok_or(jwt::Invalid::Malformed)?
        .to_string();
    let role = claims["role"]
        .as_str()
        .and_then(Role::parse)
        .ok_or(jwt::Invalid::Malformed)?;
    Ok(User { name, role })
}

/// Counts failed logins per client address, to slow down guessing.
#[derive(Default)]
pub struct Limiter {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Limiter {
    /// Whether this address may try now.
    pub fn allowed(&self, ip: Option<IpAddr>) -> bool {
        let Some(ip) = ip else { return true };
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&ip)
            .is_none_or(|(n, since)| *n < MAX_FAILURES || since.elapsed() > WINDOW)
    }

    pub fn failed(&self, ip: Option<IpAddr>) {
        let Some(ip) = ip else { return };
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(ip).or_insert((0, Instant::now()));
        if entry.1.elapsed() > WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
        // Forget old entries so a scan of many addresses cannot grow this forever.
        if map.len() > 10_000 {
            map.retain(|_, (_, since)| since.elapsed() <= WINDOW);
        }
    }

    pub fn succeeded(&self, ip: Option<IpAddr>) {
        if let Some(ip) = ip {
            self.failures
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_user_and_role() {
        let now = Utc::now();
        let t = issue(
            b"s",
            &User {
                name: "alice".into(),
                role: Role::Op,
            },
            60.0,
            now,
        );
        assert_eq!(
            verify(b"s", &t, now).unwrap(),
            User {
                name: "alice".into(),
                role: Role::Op
            }
        );
        assert_eq!(
            verify(b"s", &t, now + chrono::Duration::seconds(120)),
            Err(jwt::Invalid::Expired)
        );
        assert!(Role::Viewer < Role::User && Role::User < Role::Op && Role::Op < Role::Admin);
    }

    #[test]
    fn the_limiter_blocks_after_repeated_failures() {
        let l = Limiter::default();
        let ip = Some("10.0.0.1".parse().unwrap());
        for _ in 0..MAX_FAILURES {
            assert!(l.allowed(ip));
            l.failed(ip);
        }
        assert!(!l.allowed(ip));
        assert!(l.allowed(Some("10.0.0.2".parse().unwrap())));
        l.succeeded(ip);
        assert!(l.allowed(ip));
    }
}
