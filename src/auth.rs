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

pub mod task;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::{ids, jwt};

/// The audience of user tokens, as Airflow sets it.
pub const AUDIENCE: &str = "apache-airflow";
/// Airflow's password alphabet: no 0/O, 1/l/I, i/j.
const ALPHABET: &[u8] = b"abcdefghkmnpqrstuvwxyzABCDEFGHKMNPQRSTUVWXYZ23456789";
const PASSWORD_LEN: usize = 16;
/// Wrong passwords allowed for one user name within [`WINDOW`] before its logins get 429s.
pub const MAX_USER_FAILURES: u32 = 10;
/// Wrong passwords allowed from one client address within [`WINDOW`], whatever the user
/// names: more than one user's allowance, so one user's typos never lock out the others
/// who share an address (every local user is 127.0.0.1), while spraying names is slowed.
pub const MAX_CLIENT_FAILURES: u32 = 50;
/// How long a count lasts, from its first failure: the longest a right password waits.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Entries kept before expired ones are swept, so a scan of names or addresses cannot
/// grow the maps without bound.
const SWEEP_AT: usize = 10_000;

/// SimpleAuthManager's roles, in order: each can do what the ones before it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    User,
    Op,
    Admin,
}

impl Role {
    /// A role by its exact name: tokens and the parsed config carry it in lowercase, and
    /// `ADMIN` in a token is not `admin`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
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
    let claims: UserClaims = jwt::verify(secret, token, AUDIENCE, now.timestamp(), 0)?;
    let name = claims.sub.ok_or(jwt::Invalid::Malformed)?;
    let role = claims.role.ok_or(jwt::Invalid::Malformed)?;
    Ok(User { name, role })
}

/// A user token's subject and role, when they are a string and a role's name.
#[derive(Default)]
struct UserClaims {
    sub: Option<String>,
    role: Option<Role>,
}

impl jwt::Claims for UserClaims {
    fn claim(&mut self, name: &str, value: jwt::Claim<'_>) {
        match name {
            "sub" => self.sub = value.as_str().map(str::to_string),
            "role" => self.role = value.as_str().and_then(Role::parse),
            _ => {}
        }
    }
}

/// Whether a token's user is still configured with the token's role. A user dropped from
/// `[core] simple_auth_manager_users`, or given another role, must log in again rather
/// than keep the old role until the token expires.
pub fn still_configured(user: &User, users: &[(String, String)]) -> bool {
    users
        .iter()
        .any(|(name, role)| *name == user.name && Role::parse(role) == Some(user.role))
}

/// Counts failed logins per user name and per client address, to slow down guessing.
///
/// A count starts at its first failure and lasts [`WINDOW`]; while a user name has
/// [`MAX_USER_FAILURES`] or its client [`MAX_CLIENT_FAILURES`], logins get 429 whatever
/// the password (a right one must not be told apart from a wrong one). A right password
/// clears only its own user name's count: another account's login must not buy an
/// attacker more guesses, so the client's count only expires. Callers count names that
/// are no configured user under one name, so the map of names stays small.
#[derive(Default)]
pub struct Limiter {
    by_user: Mutex<HashMap<String, Count>>,
    by_client: Mutex<HashMap<IpAddr, Count>>,
}

#[derive(Clone, Copy)]
struct Count {
    failures: u32,
    since: Instant,
}

impl Count {
    fn live(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.since) <= WINDOW
    }
}

fn blocked<K: std::hash::Hash + Eq>(
    map: &Mutex<HashMap<K, Count>>,
    key: &K,
    max: u32,
    now: Instant,
) -> bool {
    let map = map.lock().unwrap_or_else(|p| p.into_inner());
    map.get(key)
        .is_some_and(|c| c.failures >= max && c.live(now))
}

fn count<K: std::hash::Hash + Eq>(map: &Mutex<HashMap<K, Count>>, key: K, now: Instant) {
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    let c = map.entry(key).or_insert(Count {
        failures: 0,
        since: now,
    });
    if !c.live(now) {
        *c = Count {
            failures: 0,
            since: now,
        };
    }
    c.failures = c.failures.saturating_add(1);
    if map.len() > SWEEP_AT {
        map.retain(|_, c| c.live(now));
    }
}

impl Limiter {
    /// Whether `user` may try to log in from `ip` now.
    pub fn allowed(&self, ip: Option<IpAddr>, user: &str) -> bool {
        self.allowed_at(ip, user, Instant::now())
    }

    pub fn failed(&self, ip: Option<IpAddr>, user: &str) {
        self.failed_at(ip, user, Instant::now());
    }

    /// A right password for `user`: forgets that name's failures, nothing else.
    pub fn succeeded(&self, user: &str) {
        self.by_user
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(user);
    }

    fn allowed_at(&self, ip: Option<IpAddr>, user: &str, now: Instant) -> bool {
        !blocked(&self.by_user, &user.to_string(), MAX_USER_FAILURES, now)
            && !ip.is_some_and(|ip| blocked(&self.by_client, &ip, MAX_CLIENT_FAILURES, now))
    }

    fn failed_at(&self, ip: Option<IpAddr>, user: &str, now: Instant) {
        count(&self.by_user, user.to_string(), now);
        if let Some(ip) = ip {
            count(&self.by_client, ip, now);
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
    fn the_limiter_counts_per_user_and_per_client() {
        let l = Limiter::default();
        let t0 = Instant::now();
        let ip = Some("10.0.0.1".parse().unwrap());
        for _ in 0..MAX_USER_FAILURES - 1 {
            assert!(l.allowed_at(ip, "admin", t0));
            l.failed_at(ip, "admin", t0);
        }
        // Another account's right password clears nothing of admin's.
        l.succeeded("viewer");
        l.failed_at(ip, "admin", t0);
        assert!(!l.allowed_at(ip, "admin", t0));
        // Other users on the same address are not locked out by admin's failures...
        assert!(l.allowed_at(ip, "viewer", t0));
        // ...nor admin from anywhere once the window has passed.
        let later = t0 + WINDOW + Duration::from_secs(1);
        assert!(l.allowed_at(ip, "admin", later));
        // Spraying names from one address stops at the client's allowance.
        let spray = Some("10.0.0.2".parse().unwrap());
        for i in 0..MAX_CLIENT_FAILURES {
            assert!(l.allowed_at(spray, &format!("u{i}"), t0));
            l.failed_at(spray, &format!("u{i}"), t0);
        }
        assert!(!l.allowed_at(spray, "fresh", t0));
        assert!(l.allowed_at(Some("10.0.0.3".parse().unwrap()), "fresh", t0));
        assert!(l.allowed_at(spray, "fresh", later));
        // A right password for admin clears admin's count only.
        l.succeeded("admin");
        assert!(l.allowed_at(ip, "admin", t0));
    }

    #[test]
    fn roles_are_exact_and_tokens_need_a_configured_user() {
        assert_eq!(Role::parse("admin"), Some(Role::Admin));
        assert_eq!(Role::parse("ADMIN"), None);
        assert_eq!(Role::parse("Admin"), None);
        let users = vec![("alice".to_string(), "op".to_string())];
        let alice = |role| User {
            name: "alice".into(),
            role,
        };
        assert!(still_configured(&alice(Role::Op), &users));
        assert!(!still_configured(&alice(Role::Admin), &users));
        assert!(!still_configured(
            &User {
                name: "bob".into(),
                role: Role::Op
            },
            &users
        ));
    }
}
