//! Logging in as Airflow's SimpleAuthManager does it: passwords, tokens, roles, limits.

use base64::Engine;
use serde_json::json;

use crate::util::{Method, TempHome, TestServer, USERS};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

#[test]
fn login_gives_a_token_that_opens_guarded_routes() {
    let home = TempHome::new();
    let srv = TestServer::start(&home, &["api-server"], &[USERS]);
    assert_eq!(srv.passwords.len(), 4, "{:?}", srv.passwords);
    for (_, p) in &srv.passwords {
        assert_eq!(p.len(), 16);
        assert!(
            p.chars()
                .all(|c| "abcdefghkmnpqrstuvwxyzABCDEFGHKMNPQRSTUVWXYZ23456789".contains(c)),
            "{p}"
        );
    }
    let file = home
        .path
        .join("simple_auth_manager_passwords.json.generated");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(saved.as_object().unwrap().len(), 4);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let token = srv.login("viewer");
    let (status, me) = srv.call(&token, Method::Get, "/ui/auth/me", None);
    assert_eq!(
        (status, me["username"].as_str(), me["role"].as_str()),
        (200, Some("viewer"), Some("viewer"))
    );
    // The JWT carries Airflow's claims.
    let claims: serde_json::Value =
        serde_json::from_slice(&B64.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(
        (
            claims["sub"].as_str(),
            claims["role"].as_str(),
            claims["aud"].as_str()
        ),
        (Some("viewer"), Some("viewer"), Some("apache-airflow"))
    );
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        86400
    );
    // A form body works too.
    let pass = srv
        .passwords
        .iter()
        .find(|(u, _)| u == "op")
        .unwrap()
        .1
        .clone();
    let reply = srv
        .request(Method::Post, "/auth/token")
        .content_type("application/x-www-form-urlencoded")
        .raw(format!("username=op&password={pass}"))
        .send();
    assert_eq!(reply.status, 201);
    // A second start keeps the same passwords and prints none.
    drop(srv);
    let again = TestServer::start(&home, &["api-server"], &[USERS]);
    assert!(again.passwords.is_empty());
    let (status, _) = again.call(
        "",
        Method::Post,
        "/auth/token",
        Some(json!({"username": "op", "password": pass})),
    );
    assert_eq!(status, 201);
}

#[test]
fn bad_credentials_and_tokens_are_refused() {
    let home = TempHome::new();
    let srv = TestServer::start(&home, &["api-server"], &[USERS]);
    let (status, body) = srv.call(
        "",
        Method::Post,
        "/auth/token",
        Some(json!({"username": "admin", "password": "wrong"})),
    );
    assert_eq!(
        (status, body["detail"].as_str()),
        (401, Some("Invalid credentials"))
    );
    let (status, _) = srv.call(
        "",
        Method::Post,
        "/auth/token",
        Some(json!({"username": "admin"})),
    );
    assert_eq!(status, 422);
    let (status, body) = srv.call("", Method::Get, "/ui/auth/me", None);
    assert_eq!(
        (status, body["detail"].as_str()),
        (401, Some("Not authenticated"))
    );
    let good = srv.login("admin");
    let parts: Vec<&str> = good.split('.').collect();
    // Tampered: the role raised to admin in a viewer's token is caught by the signature.
    let viewer = srv.login("viewer");
    let vparts: Vec<&str> = viewer.split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&B64.decode(vparts[1]).unwrap()).unwrap();
    claims["role"] = json!("admin");
    let tampered = format!(
        "{}.{}.{}",
        vparts[0],
        B64.encode(claims.to_string()),
        vparts[2]
    );
    let none = format!(
        "{}.{}.",
        B64.encode(r#"{"alg":"none","typ":"JWT"}"#),
        parts[1]
    );
    for bad in [tampered.as_str(), none.as_str(), "garbage"] {
        let (status, body) = srv.call(bad, Method::Get, "/ui/auth/me", None);
        assert_eq!(
            (status, body["detail"].as_str()),
            (403, Some("Invalid JWT token")),
            "{bad}"
        );
    }
    // Expired: signed with the home's secret, an hour in the past.
    let secret = updraft::jwt::secret("", &home.path).unwrap();
    let user = updraft::auth::User {
        name: "admin".into(),
        role: updraft::auth::Role::Admin,
    };
    let old = updraft::auth::issue(
        &secret,
        &user,
        60.0,
        chrono::Utc::now() - chrono::Duration::hours(1),
    );
    let (status, body) = srv.call(&old, Method::Get, "/ui/auth/me", None);
    assert_eq!(
        (status, body["detail"].as_str()),
        (403, Some("Token Expired"))
    );
    // The cookie the UI keeps works like the header.
    let reply = srv
        .request(Method::Get, "/ui/auth/me")
        .header("Cookie", &format!("_token={good}"))
        .send();
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[test]
fn repeated_wrong_passwords_are_rate_limited() {
    let home = TempHome::new();
    let srv = TestServer::start(&home, &["api-server"], &[USERS]);
    let statuses: Vec<u16> = (0..12)
        .map(|_| {
            srv.call(
                "",
                Method::Post,
                "/auth/token",
                Some(json!({"username": "admin", "password": "nope"})),
            )
            .0
        })
        .collect();
    assert_eq!(&statuses[..10], &[401; 10]);
    assert_eq!(statuses[11], 429);
    // Even the right password waits out the window.
    let pass = srv
        .passwords
        .iter()
        .find(|(u, _)| u == "admin")
        .unwrap()
        .1
        .clone();
    let (status, _) = srv.call(
        "",
        Method::Post,
        "/auth/token",
        Some(json!({"username": "admin", "password": pass})),
    );
    assert_eq!(status, 429);
}

#[test]
fn reset_password_and_dropped_users() {
    let home = TempHome::new();
    let srv = TestServer::start(&home, &["api-server"], &[USERS]);
    let old = srv
        .passwords
        .iter()
        .find(|(u, _)| u == "op")
        .unwrap()
        .1
        .clone();
    let new = home
        .run(&["users", "reset-password", "op"], &[USERS])
        .expect(0)
        .stdout()
        .trim()
        .to_string();
    assert_eq!(new.len(), 16);
    assert_ne!(new, old);
    let (status, _) = srv.call(
        "",
        Method::Post,
        "/auth/token",
        Some(json!({"username": "op", "password": old})),
    );
    assert_eq!(status, 401);
    let (status, _) = srv.call(
        "",
        Method::Post,
        "/auth/token",
        Some(json!({"username": "op", "password": new})),
    );
    assert_eq!(status, 201);
    home.run(&["users", "reset-password", "nobody"], &[USERS])
        .expect(1);
    drop(srv);
    // Users no longer in the config are dropped from the file.
    let _srv = TestServer::start(
        &home,
        &["api-server"],
        &[("UPDRAFT__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin")],
    );
    let file = home
        .path
        .join("simple_auth_manager_passwords.json.generated");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    assert_eq!(
        saved.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["admin"]
    );
}

#[test]
fn all_admins_turns_login_off() {
    let home = TempHome::new();
    let srv = TestServer::start(
        &home,
        &["api-server"],
        &[("UPDRAFT__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")],
    );
    assert!(srv.passwords.is_empty());
    let (status, me) = srv.call("", Method::Get, "/ui/auth/me", None);
    assert_eq!((status, me["role"].as_str()), (200, Some("admin")));
    let (status, body) = srv.call("", Method::Get, "/auth/token", None);
    assert_eq!(status, 201, "{body}");
    let plain = TestServer::start(&home, &["api-server"], &[]);
    assert_eq!(plain.call("", Method::Get, "/auth/token", None).0, 403);
}

/// A change carried by the `_token` cookie alone: `(status, body)` of `METHOD path` with
/// `headers` and a `content_type` body, as a page of another site can send it.
fn with_cookie(
    srv: &TestServer,
    token: &str,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    content_type: &str,
    body: &str,
) -> (u16, String) {
    let reply = srv
        .request(method, path)
        .header("Cookie", &format!("_token={token}"))
        .content_type(content_type)
        .headers(headers)
        .raw(body)
        .send();
    (reply.status, reply.text)
}

#[test]
fn cookie_changes_must_come_from_the_servers_own_pages() {
    let home = TempHome::new();
    let srv = TestServer::start(&home, &["api-server"], &[USERS]);
    let token = srv.login("admin");
    let var = |key: &str| {
        srv.call(
            &token,
            Method::Get,
            &format!("/api/v2/variables/{key}"),
            None,
        )
        .0
    };
    let body = |key: &str| json!({"key": key, "value": "v"}).to_string();
    let evil = ("Origin", "https://evil.example");
    // Another site's form or fetch: every content type, with or without its headers.
    for (i, (ctype, headers)) in [
        ("text/plain", vec![evil]),
        ("application/x-www-form-urlencoded", vec![evil]),
        ("multipart/form-data; boundary=x", vec![evil]),
        ("text/plain", vec![evil, ("Sec-Fetch-Site", "cross-site")]),
        ("text/plain", vec![("Sec-Fetch-Site", "same-site")]),
        ("text/plain", vec![("Origin", "null")]),
        ("text/plain", vec![]),
    ]
    .into_iter()
    .enumerate()
    {
        let key = format!("csrf{i}");
        let (status, text) = with_cookie(
            &srv,
            &token,
            Method::Post,
            "/api/v2/variables",
            &headers,
            ctype,
            &body(&key),
        );
        assert_eq!(status, 403, "{ctype} {headers:?}: {text}");
        assert!(text.contains("_token cookie"), "{text}");
        assert_eq!(var(&key), 404, "{ctype} {headers:?}");
    }
    // Our own pages: the browser says same-origin, or the Origin is this host.
    let own = srv.origin();
    for (i, headers) in [
        vec![("Sec-Fetch-Site", "same-origin"), ("Origin", own.as_str())],
        vec![("Origin", own.as_str())],
    ]
    .into_iter()
    .enumerate()
    {
        let key = format!("own{i}");
        let (status, text) = with_cookie(
            &srv,
            &token,
            Method::Post,
            "/api/v2/variables",
            &headers,
            "application/json",
            &body(&key),
        );
        assert_eq!(status, 201, "{headers:?}: {text}");
    }
    // Reads with the cookie, and Bearer requests from anywhere, are unaffected.
    let reply = srv
        .request(Method::Get, "/api/v2/variables/own0")
        .header("Cookie", &format!("_token={token}"))
        .header("Origin", "https://evil.example")
        .send();
    assert_eq!(reply.status, 200);
    let reply = srv
        .request(Method::Post, "/api/v2/variables")
        .token(&token)
        .header("Origin", "https://evil.example")
        .content_type("application/json")
        .raw(body("bearer"))
        .send();
    assert_eq!(reply.status, 201);
    drop(srv);
    // Behind a trusted proxy, the proxy's host is the origin to match.
    let proxied = TestServer::start(
        &home,
        &["api-server"],
        &[USERS, ("UPDRAFT__API__PROXY_HEADERS", "True")],
    );
    let proxy = [
        ("Origin", "https://airflow.example.com"),
        ("X-Forwarded-Host", "airflow.example.com:443"),
    ];
    let (status, text) = with_cookie(
        &proxied,
        &token,
        Method::Post,
        "/api/v2/variables",
        &proxy,
        "application/json",
        &body("proxied"),
    );
    assert_eq!(status, 201, "{text}");
    let (status, _) = with_cookie(
        &proxied,
        &token,
        Method::Post,
        "/api/v2/variables",
        &[evil, ("X-Forwarded-Host", "airflow.example.com")],
        "application/json",
        &body("proxied2"),
    );
    assert_eq!(status, 403);
}

#[test]
fn failed_logins_count_per_user_and_client_and_another_login_resets_nothing() {
    let home = TempHome::new();
    let srv = TestServer::start(&home, &["api-server"], &[USERS]);
    let password = |user: &str| {
        srv.passwords
            .iter()
            .find(|(u, _)| u == user)
            .unwrap()
            .1
            .clone()
    };
    let login = |user: &str, password: &str| {
        srv.call(
            "",
            Method::Post,
            "/auth/token",
            Some(json!({"username": user, "password": password})),
        )
    };
    for _ in 0..9 {
        assert_eq!(login("admin", "nope").0, 401);
    }
    // The attacker's own account logs in: admin's count stands.
    assert_eq!(login("viewer", &password("viewer")).0, 201);
    assert_eq!(login("admin", "nope").0, 401);
    let (status, body) = login("admin", "nope");
    assert_eq!(status, 429, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("60 seconds"),
        "{body}"
    );
    // Admin's right password waits out the window too, but other users on the same
    // address are not locked out by admin's failures.
    assert_eq!(login("admin", &password("admin")).0, 429);
    assert_eq!(login("op", &password("op")).0, 201);
    assert_eq!(login("op", "nope").0, 401);
    // Made-up names share one count, so the limiter stays small whatever is sent.
    for i in 0..10 {
        assert_eq!(login(&format!("nobody{i}"), "nope").0, 401);
    }
    assert_eq!(login("nobody-else", "nope").0, 429);
    assert_eq!(login("user", &password("user")).0, 201);
}

#[test]
fn tokens_of_dropped_users_changed_roles_and_odd_roles_are_refused() {
    let home = TempHome::new();
    let srv = TestServer::start(&home, &["api-server"], &[USERS]);
    let (op, viewer, admin) = (srv.login("op"), srv.login("viewer"), srv.login("admin"));
    drop(srv);
    // op is now a viewer, viewer is gone.
    let srv = TestServer::start(
        &home,
        &["api-server"],
        &[(
            "UPDRAFT__CORE__SIMPLE_AUTH_MANAGER_USERS",
            "admin:admin,op:viewer",
        )],
    );
    for (who, token) in [("op", &op), ("viewer", &viewer)] {
        let (status, body) = srv.call(token, Method::Get, "/ui/auth/me", None);
        assert_eq!(status, 403, "{who}: {body}");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .starts_with("Invalid JWT token"),
            "{body}"
        );
    }
    assert_eq!(srv.call(&admin, Method::Get, "/ui/auth/me", None).0, 200);
    // A role is compared exactly: `ADMIN` is not `admin`.
    let secret = updraft::jwt::secret("", &home.path).unwrap();
    let now = chrono::Utc::now().timestamp();
    let upper = updraft::jwt::sign(
        &secret,
        &json!({"sub": "admin", "role": "ADMIN", "aud": "apache-airflow", "iat": now, "nbf": now, "exp": now + 600}),
    );
    let (status, body) = srv.call(&upper, Method::Get, "/ui/auth/me", None);
    assert_eq!(status, 403, "{body}");
}

/// `/api/v2/auth/login?next=...` sends the browser to the login page with `next` as a
/// query value: a run id's `+00:00` must stay a `+` (escaped), not turn into a space.
#[test]
fn login_redirect_keeps_a_plus_in_next() {
    use std::io::{Read, Write};
    let home = TempHome::new();
    let srv = TestServer::start(&home, &["api-server"], &[USERS]);
    let origin = srv.origin();
    let mut s = std::net::TcpStream::connect(origin.trim_start_matches("http://")).unwrap();
    let next = "/dags/d/runs/manual__2024-01-01T00:00:00%2B00:00";
    write!(
        s,
        "GET /api/v2/auth/login?next={next} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let location = raw
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("location")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no Location: {raw}"));
    assert_eq!(
        location, "/login?next=%2Fdags%2Fd%2Fruns%2Fmanual__2024-01-01T00:00:00%2B00:00",
        "{raw}"
    );
}
