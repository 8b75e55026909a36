//! The API server as a process: apps split, base_url, health, metrics, limits, signals,
//! and rolling refresh under load.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{Method, TempHome, TestServer, agent, get, get_json, request, wait_until};

const WAIT: Duration = Duration::from_secs(30);

fn health(srv: &TestServer) -> Value {
    let (status, body) = get_json(&format!("{}/api/v2/monitor/health", srv.base));
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
fn apps_split_serves_only_its_routes() {
    let home = TempHome::new();
    let core = TestServer::start(&home, &["api-server", "--apps", "core"], &[]);
    assert_eq!(get(&format!("{}/api/v2/monitor/health", core.base)).0, 200);
    assert_eq!(get(&format!("{}/openapi.json", core.base)).0, 200);
    assert_eq!(get(&format!("{}/", core.base)).0, 200);
    let (status, body) = get_json(&format!("{}/execution/health", core.base));
    assert_eq!(status, 404);
    assert!(
        body["detail"].as_str().unwrap().contains("--apps core"),
        "{body}"
    );
    // The JSON 404 holds for any path below /execution, never the UI's page.
    let (status, body) = get_json(&format!("{}/execution/task-instances/x/run", core.base));
    assert_eq!(status, 404, "{body}");

    let exec = TestServer::start(&home, &["api-server", "--apps", "execution"], &[]);
    let (status, body) = get_json(&format!("{}/execution/health", exec.base));
    assert_eq!((status, body["status"].as_str()), (200, Some("healthy")));
    for path in [
        "/api/v2/monitor/health",
        "/openapi.json",
        "/",
        "/dags/x",
        "/app.js",
    ] {
        let (status, body) = get_json(&format!("{}{path}", exec.base));
        assert_eq!(status, 404, "{path}: {body}");
    }
    assert_eq!(get(&format!("{}/metrics", exec.base)).0, 200);

    let all = TestServer::start(&home, &["api-server"], &[]);
    assert_eq!(get(&format!("{}/execution/health", all.base)).0, 200);
    assert_eq!(get(&format!("{}/api/v2/monitor/health", all.base)).0, 200);
}

#[test]
fn base_url_moves_everything_under_the_prefix() {
    for prefix in ["/d12345", "/a/b"] {
        let home = TempHome::new();
        // With and without a trailing slash, as a full URL.
        let base_url = format!("http://localhost:28080{prefix}/");
        let srv = TestServer::start(
            &home,
            &["api-server"],
            &[("UPDRAFT__API__BASE_URL", &base_url)],
        );
        assert!(srv.base.ends_with(prefix), "{}", srv.base);
        let origin = srv.origin();
        for path in [
            "/api/v2/monitor/health",
            "/api/v2/version",
            "/openapi.json",
            "/execution/health",
            "/metrics",
            "/app.js",
            "/app.css",
            "/favicon.svg",
            "/docs",
        ] {
            assert_eq!(
                get(&format!("{origin}{prefix}{path}")).0,
                200,
                "{prefix}{path}"
            );
            let (status, _) = get(&format!("{origin}{path}"));
            assert_eq!(status, 404, "{path} outside the prefix");
        }
        // index.html and a deep link both carry the prefix in <base> and in the config.
        for page in ["/", "/dags/example/grid"] {
            let (status, html) = get(&format!("{origin}{prefix}{page}"));
            assert_eq!(status, 200);
            assert!(
                html.contains(&format!("<base href=\"{prefix}/\">")),
                "{html}"
            );
            assert!(html.contains(&format!("\"base\": \"{prefix}/\"")), "{html}");
            // The only absolute URL left is the <base> itself.
            assert_eq!(html.matches("href=\"/").count(), 1, "{html}");
            assert!(!html.contains("src=\"/"), "absolute URL left in {html}");
        }
        // The OpenAPI servers entry carries the prefix.
        let (_, doc) = get_json(&format!("{origin}{prefix}/openapi.json"));
        assert_eq!(doc["servers"][0]["url"], prefix);
        // Unknown API paths are JSON 404s, files with an extension too; "/" redirects in.
        let (status, body) = get_json(&format!("{origin}{prefix}/api/v2/nope"));
        assert_eq!(
            (status, body["detail"].as_str()),
            (404, Some("API route not found"))
        );
        assert_eq!(get_json(&format!("{origin}{prefix}/nope.js")).0, 404);
        let res = request(Method::Get, &format!("{origin}/"))
            .no_redirects()
            .send();
        assert_eq!(res.status, 307);
        assert_eq!(res.header("location").unwrap(), format!("{prefix}/"));
        // The derived execution URL carries the prefix and is checked (it points at
        // port 28080, where nothing listens, so the check fails, plainly).
        let probe = health(&srv)["execution_api"].clone();
        assert_eq!(
            probe["url"],
            format!("http://localhost:28080{prefix}/execution/")
        );
    }
}

#[test]
fn proxy_prefix_is_trusted_only_when_asked() {
    let home = TempHome::new();
    let page = |srv: &TestServer| {
        srv.request(Method::Get, "/")
            .header("X-Forwarded-Prefix", "/proxy")
            .send()
            .text
    };
    let plain = TestServer::start(&home, &["api-server"], &[]);
    assert!(page(&plain).contains("<base href=\"/\">"));
    let trusting = TestServer::start(&home, &["api-server", "--proxy-headers"], &[]);
    assert!(page(&trusting).contains("<base href=\"/proxy/\">"));
}

#[test]
fn a_wrong_execution_url_is_reported_plainly() {
    let home = TempHome::new();
    // A core-only server derives /execution/ on itself, which it does not serve.
    let srv = TestServer::start(&home, &["api-server", "--apps", "core"], &[]);
    assert!(wait_until(WAIT, || health(&srv)["execution_api"]["status"]
        == "unhealthy"));
    let probe = health(&srv)["execution_api"].clone();
    let detail = probe["detail"].as_str().unwrap();
    assert!(detail.contains("execution_api_server_url"), "{detail}");
    assert!(srv.log().contains("NOT reachable"), "{}", srv.log());
    // Strict health is for probes: 503 when anything is unhealthy.
    let (status, _) = get_json(&format!("{}/api/v2/monitor/health?strict=true", srv.base));
    assert_eq!(status, 503);

    // Pointing it at a server that runs the execution app makes it healthy.
    let exec = TestServer::start(&home, &["api-server", "--apps", "execution"], &[]);
    let url = format!("{}/execution/", exec.base);
    let srv = TestServer::start(
        &home,
        &["api-server", "--apps", "core"],
        &[("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", &url)],
    );
    assert!(wait_until(WAIT, || health(&srv)["execution_api"]["status"]
        == "healthy"));
}

#[test]
fn health_shape_and_legacy_routes() {
    let home = TempHome::new();
    let srv = TestServer::start(&home, &["api-server", "--workers", "3"], &[]);
    let h = health(&srv);
    assert_eq!(h["metadatabase"]["status"], "healthy");
    // No scheduler has ever run: unhealthy, no heartbeat, as Airflow reports it.
    assert_eq!(h["scheduler"]["status"], "unhealthy");
    assert_eq!(h["scheduler"]["latest_scheduler_heartbeat"], Value::Null);
    assert_eq!(h["triggerer"]["status"], Value::Null);
    assert_eq!(h["api_server"]["workers_alive"], 3);
    let (status, body) = get_json(&format!("{}/health", srv.base));
    assert_eq!(status, 404);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("/api/v2/monitor/health")
    );
    let (status, body) = get_json(&format!("{}/api/v1/dags", srv.base));
    assert_eq!(status, 404);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("/api/v1 has been removed")
    );
    // `version` is the Airflow version updraft implements, as Airflow's clients read it;
    // updraft's own version is a separate field and header.
    let (status, body) = get_json(&format!("{}/api/v2/version", srv.base));
    assert_eq!(status, 200);
    assert_eq!(body["version"], "3.3.2", "{body}");
    assert_eq!(body["git_version"], Value::Null);
    assert_eq!(body["updraft_version"], env!("CARGO_PKG_VERSION"), "{body}");
    let raw = raw_get(&srv.origin(), "/api/v2/version");
    assert!(
        raw.lines().any(|l| l
            .to_ascii_lowercase()
            .starts_with(&format!("x-updraft-version: {}", env!("CARGO_PKG_VERSION")))),
        "{raw}"
    );
}

#[test]
fn metrics_count_requests() {
    let home = TempHome::new();
    let srv = TestServer::start(&home, &["api-server"], &[]);
    let count = || -> u64 {
        let (_, text) = get(&format!("{}/metrics", srv.base));
        text.lines()
            .find(|l| l.starts_with("updraft_http_requests_total{method=\"GET\",route=\"/api/v2/version\",status=\"200\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    };
    let before = count();
    for _ in 0..3 {
        get(&format!("{}/api/v2/version", srv.base));
    }
    assert_eq!(count(), before + 3);
    let (_, text) = get(&format!("{}/metrics", srv.base));
    for name in [
        "updraft_http_request_duration_seconds_bucket",
        "updraft_api_workers_alive 4",
        "updraft_api_worker_generation 1",
        "updraft_api_handler_panics_total 0",
    ] {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }
}

#[test]
fn oversized_bodies_and_bad_paths_are_refused() {
    let home = TempHome::new();
    let srv = TestServer::start(
        &home,
        &["api-server"],
        &[("UPDRAFT__API__MAX_BODY_SIZE", "1000")],
    );
    let res = srv
        .request(Method::Post, "/api/v2/version")
        .raw(vec![b'x'; 5000])
        .send();
    assert_eq!(res.status, 413);
    // Traversal in every spelling stays inside the embedded files.
    for path in [
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/%2E%2E%2FCargo.toml",
        "/..%5CCargo.toml",
        "/static/..%2f..%2fCargo.toml",
        "/.git/config",
    ] {
        let raw = raw_get(&srv.origin(), path);
        assert!(raw.starts_with("HTTP/1.1 4"), "{path}: {raw}");
        assert!(!raw.contains("[package]"), "{path} leaked a file");
    }
    let raw = raw_get(&srv.origin(), "/%ff%fe");
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
}

/// Sends a request line as given, with no client-side normalising.
fn raw_get(origin: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let addr = origin.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[cfg(unix)]
#[test]
fn ctrl_c_and_sigterm_stop_gracefully_with_exit_0() {
    for signal in ["INT", "TERM"] {
        let home = TempHome::new();
        let mut srv = TestServer::start(&home, &["api-server"], &[]);
        assert_eq!(get(&format!("{}/api/v2/version", srv.base)).0, 200);
        srv.signal(signal);
        assert_eq!(srv.wait_exit(WAIT), Some(0), "{signal}: {}", srv.log());
        assert!(srv.log().contains("api-server stopped"));
    }
}

#[cfg(unix)]
#[test]
fn ttin_ttou_and_hup_steer_the_pool() {
    let home = TempHome::new();
    let srv = TestServer::start(&home, &["api-server", "--workers", "2"], &[]);
    let pool = |srv: &TestServer| health(srv)["api_server"].clone();
    srv.signal("TTIN");
    assert!(
        wait_until(WAIT, || pool(&srv)["workers_alive"] == 3),
        "{}",
        pool(&srv)
    );
    srv.signal("TTOU");
    srv.signal("TTOU");
    assert!(
        wait_until(WAIT, || pool(&srv)["workers_configured"] == 1),
        "{}",
        pool(&srv)
    );
    assert!(
        wait_until(WAIT, || pool(&srv)["workers_alive"] == 1),
        "{}",
        pool(&srv)
    );
    // Never below one.
    srv.signal("TTOU");
    srv.signal("HUP");
    assert!(
        wait_until(WAIT, || pool(&srv)["refreshes_completed"] == 1),
        "{}",
        pool(&srv)
    );
    let p = pool(&srv);
    assert_eq!(
        (p["workers_alive"].as_u64(), p["generation"].as_u64()),
        (Some(1), Some(2)),
        "{p}"
    );
    assert!(
        srv.log().contains("not retiring the last worker"),
        "{}",
        srv.log()
    );
}

#[test]
fn refresh_under_load_drops_nothing() {
    refresh_under_load("uvicorn");
}

// See: issue 21, item 1: the same test against worker processes.
#[cfg(unix)]
#[test]
fn refresh_under_load_drops_nothing_with_worker_processes() {
    refresh_under_load("gunicorn");
}

fn refresh_under_load(server_type: &str) {
    let home = TempHome::new();
    let srv = TestServer::start(
        &home,
        &["api-server", "--workers", "3"],
        &[
            ("UPDRAFT__API__WORKER_REFRESH_INTERVAL", "0.5"),
            ("UPDRAFT__API__WORKER_REFRESH_BATCH_SIZE", "9"),
            ("UPDRAFT__API__SERVER_TYPE", server_type),
        ],
    );
    assert_eq!(health(&srv)["api_server"]["server_type"], server_type);
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let clients: Vec<_> = (0..6)
        .map(|i| {
            let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
            let url = format!("{}/api/v2/monitor/health", srv.base);
            // Half the clients keep their connection alive across the refreshes.
            let agent = agent(i % 2 == 0);
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(60);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    match request(Method::Get, &url).try_send_on(&agent) {
                        Ok(res) if res.status == 200 => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(res) => failures
                            .lock()
                            .unwrap()
                            .push(format!("status {}", res.status)),
                        Err(e) => failures.lock().unwrap().push(e.to_string()),
                    }
                }
            })
        })
        .collect();
    let refreshed = wait_until(Duration::from_secs(60), || {
        health(&srv)["api_server"]["refreshes_completed"].as_u64() >= Some(4)
    });
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    assert!(
        refreshed,
        "fewer than 4 refresh cycles; log:\n{}",
        srv.log()
    );
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed requests: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        ok.load(Ordering::Relaxed) > 50,
        "too little load: {}",
        ok.load(Ordering::Relaxed)
    );
    let log = srv.log();
    assert!(
        log.contains("is larger than the pool"),
        "batch size not clamped:\n{log}"
    );
    assert!(log.contains("cycle done"), "{log}");
    assert!(health(&srv)["api_server"]["generation"].as_u64() >= Some(5));
    if server_type == "gunicorn" {
        // Every worker the clients reached was a process of the newest generations.
        let h = health(&srv);
        let workers = h["api_server"]["workers"].as_array().unwrap();
        assert!(workers.len() >= 3, "{h}");
        for w in workers {
            assert!(w["pid"].as_u64() != Some(u64::from(srv.pid())), "{h}");
            assert!(w["generation"].as_u64() >= Some(4), "{h}");
        }
    }
}

/// The worker processes of an api-server with `server_type = gunicorn`, from its health.
#[cfg(unix)]
fn processes(srv: &TestServer) -> Vec<(u64, u64)> {
    let h = health(srv);
    let Some(workers) = h["api_server"]["workers"].as_array() else {
        eprintln!("no workers in {h}");
        return Vec::new();
    };
    workers
        .iter()
        .filter(|w| w["ready"] == true && w["retiring"] == false)
        .map(|w| {
            (
                w["pid"].as_u64().unwrap(),
                w["generation"].as_u64().unwrap(),
            )
        })
        .collect()
}

// See: issue 21, item 1.
#[cfg(unix)]
#[test]
fn worker_processes_follow_ttin_ttou_hup_and_replace_a_killed_one() {
    let home = TempHome::new();
    let srv = TestServer::start(
        &home,
        &["api-server", "--workers", "2"],
        &[("UPDRAFT__API__SERVER_TYPE", "gunicorn")],
    );
    let h = health(&srv);
    let a = &h["api_server"];
    assert_eq!(a["server_type"], "gunicorn", "{h}");
    assert_eq!(a["arbiter_pid"].as_u64(), Some(u64::from(srv.pid())), "{h}");
    // Each worker: its own pid, an age, a generation, its RSS.
    let first = processes(&srv);
    assert_eq!(first.len(), 2, "{h}");
    for w in a["workers"].as_array().unwrap() {
        assert!(w["age_seconds"].as_f64().is_some(), "{h}");
        assert_eq!(w["generation"], 1, "{h}");
        assert!(w["pid"].as_u64() != Some(u64::from(srv.pid())), "{h}");
    }
    assert!(
        wait_until(WAIT, || {
            health(&srv)["api_server"]["workers"][0]["rss_bytes"]
                .as_u64()
                .is_some_and(|b| b > 0)
        }),
        "{}",
        health(&srv)
    );

    srv.signal("TTIN");
    assert!(
        wait_until(WAIT, || processes(&srv).len() == 3),
        "{}",
        srv.log()
    );
    // One at a time: the kernel merges a signal sent while the same one is pending.
    srv.signal("TTOU");
    assert!(
        wait_until(WAIT, || processes(&srv).len() == 2),
        "{}",
        srv.log()
    );
    srv.signal("TTOU");
    assert!(
        wait_until(WAIT, || processes(&srv).len() == 1),
        "{}",
        srv.log()
    );
    // The oldest went first: the one left is the one TTIN added.
    let left = processes(&srv);
    assert!(
        !first.iter().any(|f| f.0 == left[0].0),
        "{left:?} {first:?}"
    );
    srv.signal("TTOU");
    assert!(
        wait_until(WAIT, || srv.log().contains("not retiring the last worker")),
        "{}",
        srv.log()
    );

    // Plugins load at start and on SIGHUP (reload_on_plugin_change is off).
    let token = srv.login("admin");
    let plugins = |srv: &TestServer| {
        srv.call(&token, crate::util::Method::Get, "/api/v2/plugins", None)
            .1["total_entries"]
            .clone()
    };
    home.write("plugins/late.yml", "name: late\n");
    assert_eq!(plugins(&srv), 0);
    srv.signal("HUP");
    assert!(
        wait_until(WAIT, || health(&srv)["api_server"]["refreshes_completed"]
            == 1),
        "{}",
        srv.log()
    );
    assert_eq!(plugins(&srv), 1, "{}", srv.log());
    let after = processes(&srv);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0].1, 2, "{after:?}");
    assert_ne!(after[0].0, left[0].0, "{after:?}");

    // A worker that dies is replaced, and the server answers throughout.
    let victim = after[0].0;
    let ok = std::process::Command::new("kill")
        .args(["-KILL", &victim.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    assert!(
        wait_until(WAIT, || {
            let p = processes(&srv);
            p.len() == 1 && p[0].0 != victim
        }),
        "{}",
        srv.log()
    );
    assert!(srv.log().contains("died"), "{}", srv.log());
    assert_eq!(get(&format!("{}/api/v2/version", srv.base)).0, 200);
}

#[cfg(unix)]
#[test]
fn a_worker_that_is_not_ready_aborts_the_refresh() {
    let home = TempHome::new();
    let srv = TestServer::start(&home, &["api-server", "--workers", "2"], &[]);
    assert_eq!(health(&srv)["api_server"]["generation"], 1);
    // The database file vanishes: old workers keep their open connections; a new
    // worker cannot open it, so it is not ready and the cycle must stop.
    let db = home.path.join("updraft.db");
    std::fs::rename(&db, home.path.join("moved.db")).unwrap();
    srv.signal("HUP");
    assert!(
        wait_until(WAIT, || srv.log().contains("worker refresh aborted")),
        "{}",
        srv.log()
    );
    let h = health(&srv);
    assert_eq!(h["api_server"]["workers_alive"], 2, "{h}");
    assert_eq!(h["api_server"]["generation"], 1, "{h}");
    assert_eq!(h["api_server"]["refreshes_completed"], 0, "{h}");
}

#[test]
fn a_keep_alive_connection_is_closed_after_100_requests() {
    use std::io::Write;
    // tiny_http drops a `Connection` header given to its responses: this checks the one
    // updraft writes itself reaches the client, with the reply intact.
    let home = TempHome::new();
    let srv = TestServer::start(&home, &["api-server"], &[]);
    let addr = srv.origin().trim_start_matches("http://").to_string();
    let connect = || {
        let w = std::net::TcpStream::connect(&addr).unwrap();
        w.set_read_timeout(Some(WAIT)).unwrap();
        let r = std::io::BufReader::new(w.try_clone().unwrap());
        (w, r)
    };
    let (mut w, mut r) = connect();
    for i in 1..=100 {
        write!(w, "GET /api/v2/version HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let (head, body) = read_reply(&mut r);
        assert!(
            head[0].starts_with("http/1.1 200") && body.starts_with('{'),
            "{i}: {head:?}"
        );
        let closing = head.iter().any(|h| h == "connection: close");
        assert_eq!(closing, i == 100, "request {i}: {head:?}");
    }
    // The client closes, as HTTP/1.1 asks; the server answers the next connection.
    drop((r, w));
    assert_eq!(get(&format!("{}/api/v2/version", srv.base)).0, 200);

    // A browser's connections close after every reply.
    let (mut w, mut r) = connect();
    write!(
        w,
        "GET /api/v2/version HTTP/1.1\r\nHost: x\r\nSec-Fetch-Mode: cors\r\n\r\n"
    )
    .unwrap();
    let (head, body) = read_reply(&mut r);
    assert!(head.iter().any(|h| h == "connection: close"), "{head:?}");
    assert!(body.starts_with('{') && body.ends_with('}'), "{body}");
}

/// One reply off a kept-alive connection: its head lines (lowercase) and its body, read
/// to its Content-Length.
fn read_reply(r: &mut impl std::io::BufRead) -> (Vec<String>, String) {
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        head.push(line.trim_end().to_ascii_lowercase());
    }
    let len: usize = head
        .iter()
        .find_map(|h| h.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap();
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    (head, String::from_utf8(body).unwrap())
}

#[test]
fn idle_and_slow_clients_do_not_take_the_workers() {
    use std::io::Write;
    let home = TempHome::new();
    let srv = TestServer::start(&home, &["api-server", "--workers", "2"], &[]);
    let addr = srv.origin().trim_start_matches("http://").to_string();
    // Twenty connections, ten that say nothing and ten that stop halfway through their
    // headers, far more than the two workers; a real request after each still gets an
    // answer, because workers only ever see whole request heads. (They arrive one by
    // one: a burst of idle connections can queue behind each other inside tiny_http's
    // connection threads, which is outside what the workers control.)
    let mut held = Vec::new();
    for i in 0..20 {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        if i % 2 == 1 {
            s.write_all(b"GET /api/v2/version HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .unwrap();
        }
        held.push(s);
        assert_eq!(
            get(&format!("{}/api/v2/version", srv.base)).0,
            200,
            "after {} held",
            i + 1
        );
    }
    drop(held);
}

/// Writes `head` on a new connection, reads until the server closes it, and returns what
/// came back (lossily decoded; empty if the connection was reset).
fn raw_exchange(origin: &str, head: &[u8]) -> String {
    use std::io::{Read, Write};
    let addr = origin.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(head).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The status and the JSON body of a raw reply.
fn status_and_detail(raw: &str) -> (String, Value) {
    let status = raw.lines().next().unwrap_or("").to_string();
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

// See: issue 12, item 1.
#[test]
fn a_huge_declared_body_costs_one_413_not_the_process() {
    let home = TempHome::new();
    let srv = TestServer::start(&home, &["api-server"], &[]);
    // No body follows: tiny_http used to throw the unread body away into a buffer of the
    // declared size, and the allocation aborted the process.
    for length in ["1000000000000", "18446744073709551615"] {
        let raw = raw_exchange(
            &srv.origin(),
            format!("GET /api/v2/version HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n")
                .as_bytes(),
        );
        let (status, body) = status_and_detail(&raw);
        assert!(status.starts_with("HTTP/1.1 413"), "{length}: {raw}");
        assert!(
            body["detail"].as_str().unwrap().contains("max_body_size"),
            "{raw}"
        );
        assert!(raw.contains("Connection: close"), "{raw}");
    }
    // A length that is not a number is refused, not taken for "no body" (which read the
    // body as the next request).
    for length in ["99999999999999999999999", "12abc"] {
        let raw = raw_exchange(
            &srv.origin(),
            format!(
                "POST /api/v2/version HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\nGET /api/v2/version HTTP/1.1\r\n\r\n"
            )
            .as_bytes(),
        );
        let (status, body) = status_and_detail(&raw);
        assert!(status.starts_with("HTTP/1.1 400"), "{length}: {raw}");
        assert!(body["detail"].is_string(), "{raw}");
        assert!(!raw.contains("200 OK"), "{raw}");
    }
    // A body over the limit that does arrive is not read either; the server stays up.
    let raw = raw_exchange(
        &srv.origin(),
        format!(
            "POST /api/v2/variables HTTP/1.1\r\nHost: x\r\nContent-Length: 20000000\r\n\r\n{}",
            "x".repeat(100_000)
        )
        .as_bytes(),
    );
    assert!(raw.is_empty() || raw.starts_with("HTTP/1.1 413"), "{raw}");
    assert_eq!(health(&srv)["metadatabase"]["status"], "healthy");
}

// See: issue 12, item 2.
#[test]
fn stalled_bodies_hold_no_worker_and_time_out() {
    use std::io::{Read, Write};
    let home = TempHome::new();
    let srv = TestServer::start(
        &home,
        &["api-server", "--workers", "2"],
        &[("UPDRAFT__API__REQUEST_TIMEOUT", "3")],
    );
    let addr = srv.origin().trim_start_matches("http://").to_string();
    // Twice the workers, each announcing a body and sending none of it (or half).
    let mut stalled = Vec::new();
    for i in 0..4 {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        let path = if i % 2 == 0 {
            "/api/v2/variables"
        } else {
            "/execution/task-instances/x/heartbeat"
        };
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{}",
            if i < 2 { "" } else { "{\"key\": " }
        )
        .unwrap();
        stalled.push(s);
    }
    // Both APIs still answer at once: bodies are read before a worker sees a request.
    assert_eq!(health(&srv)["metadatabase"]["status"], "healthy");
    let (status, body) = get_json(&format!("{}/execution/health", srv.base));
    assert_eq!(status, 200, "{body}");
    // And a client that stays silent is told so after [api] request_timeout, then closed.
    for mut s in stalled {
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let raw = String::from_utf8_lossy(&out);
        let (status, body) = status_and_detail(&raw);
        assert!(status.starts_with("HTTP/1.1 408"), "{raw}");
        assert!(body["detail"].is_string(), "{raw}");
    }
}

// See: issue 12, item 3.
#[test]
fn a_head_that_is_not_ascii_gets_a_400() {
    let home = TempHome::new();
    let srv = TestServer::start(&home, &["api-server"], &[]);
    for head in [
        &b"GET /api/v2/vers\xff\xfeion HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &b"GET /api/v2/version HTTP/1.1\r\nHost: x\r\nX-Name: caf\xc3\xa9\r\n\r\n"[..],
        &b"GET /api/v2/version HTTP/1.1\r\nHost: \xc3\x28\r\n\r\n"[..],
    ] {
        let raw = raw_exchange(&srv.origin(), head);
        let (status, body) = status_and_detail(&raw);
        assert!(status.starts_with("HTTP/1.1 400"), "{raw}");
        assert!(body["detail"].as_str().unwrap().contains("ASCII"), "{raw}");
    }
    // A head larger than 64 KiB is refused too, not buffered.
    let big = format!(
        "GET /api/v2/version HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(70_000)
    );
    let raw = raw_exchange(&srv.origin(), big.as_bytes());
    assert!(raw.is_empty() || raw.starts_with("HTTP/1.1 431"), "{raw}");
    assert_eq!(get(&format!("{}/api/v2/version", srv.base)).0, 200);
}

// See: issue 12, item 10.
#[cfg(unix)]
#[test]
fn sigttin_stops_at_the_maximum_pool() {
    let home = TempHome::new();
    let srv = TestServer::start(&home, &["api-server", "--workers", "2"], &[]);
    for _ in 0..200 {
        srv.signal("TTIN");
    }
    let max = updraft::config::MAX_WORKERS;
    assert!(
        wait_until(WAIT, || srv.log().contains(&format!(
            "not adding a worker: the pool has the maximum of {max}"
        ))),
        "{}",
        srv.log()
    );
    assert!(wait_until(
        WAIT,
        || health(&srv)["api_server"]["workers_alive"] == max
    ));
    // Every signal has been handled once the refusals are logged; none went past the cap.
    let pool = health(&srv)["api_server"].clone();
    assert_eq!(pool["workers_alive"], max, "{pool}");
    assert_eq!(pool["workers_configured"], max, "{pool}");
}

// See: issue 12, item 2: the issue's own reproduction, as a test.
#[test]
fn a_chain_runs_to_success_beside_stalled_bodies_and_idle_connections() {
    use crate::engine::{Engine, dag, task};
    use std::io::Write;
    const STALLED: usize = 50;
    const IDLE: usize = 2000;
    // This process holds every client end; the server raises its own limit the same way.
    let fds = updraft::server::raise_fd_limit().unwrap_or(u64::MAX);
    assert!(
        fds > (2 * (STALLED + IDLE) + 512) as u64,
        "this test needs more open files than the hard limit of {fds}"
    );
    let tasks: String = (0..20)
        .map(|i| {
            let deps = if i == 0 {
                String::new()
            } else {
                format!("dependencies: [t{}]", i - 1)
            };
            task(&format!("t{i}"), &format!("echo {i}"), &deps)
        })
        .collect();
    // Stalled bodies stay stalled for the whole test.
    let e = Engine::start(
        &[("chain.yml", &dag("chain", "", &tasks))],
        &[("UPDRAFT__API__REQUEST_TIMEOUT", "600")],
    );
    let addr = e.srv.origin().trim_start_matches("http://").to_string();
    let mut held = Vec::new();
    for i in 0..STALLED + IDLE {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        if i < STALLED {
            let path = if i % 2 == 0 {
                "/api/v2/variables"
            } else {
                "/execution/task-instances/x/heartbeat"
            };
            write!(
                s,
                "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"
            )
            .unwrap();
        }
        held.push(s);
    }
    let run = e.trigger("chain", None);
    // Health's latency, sampled while the chain runs: the median of many calls, so one
    // call that a busy 2-core machine delays (a compile, another test) cannot fail it.
    // Health answers in a few milliseconds when nothing blocks it; blocked behind stalled
    // bodies, it did not answer at all.
    let client = agent(true);
    let url = format!("{}/api/v2/monitor/health", e.srv.base);
    let store = e.store();
    let mut took = Vec::new();
    let done = wait_until(Duration::from_secs(180), || {
        let started = Instant::now();
        let status = request(Method::Get, &url).send_on(&client).status;
        took.push(started.elapsed());
        assert_eq!(status, 200);
        let state = store
            .run("chain", &run)
            .unwrap()
            .map(|r| r.state.to_string());
        matches!(state.as_deref(), Some("success" | "failed")) && took.len() >= 21
    });
    assert!(done, "{:?}\n{}", e.states("chain", &run), e.srv.log());
    assert_eq!(
        e.wait_run("chain", &run),
        "success",
        "{:?}",
        e.states("chain", &run)
    );
    took.sort();
    let median = took[took.len() / 2];
    eprintln!("median health call {median:?} over {} calls", took.len());
    assert!(
        median < Duration::from_millis(100),
        "median health call {median:?} over {} calls",
        took.len()
    );
    // The stalled connections were held open (not answered, not closed) all along.
    for s in held.iter().take(STALLED) {
        s.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 1];
        let err = s.peek(&mut buf).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    }
    drop(held);
}
