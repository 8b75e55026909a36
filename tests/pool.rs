//! The worker pool in-process, with a dispatch that wraps the real one to add a route
//! that panics, one that is slow and one that blocks: panic recovery, graceful shutdown,
//! and the workers the Execution API keeps.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use updraft::api::{Apps, Ctx, Reply, Req};
use updraft::config::Config;
use updraft::server;
use updraft::store::Store;

use crate::util::{TempHome, get, get_json, wait_until};

static SLOW_STARTED: AtomicBool = AtomicBool::new(false);
/// `/api/v2/block` holds its worker until this is set (or a minute passes).
static UNBLOCK: AtomicBool = AtomicBool::new(false);
static BLOCKED: AtomicUsize = AtomicUsize::new(0);
static UNBLOCKED: AtomicUsize = AtomicUsize::new(0);

fn dispatch(ctx: &Ctx, store: &mut Store, req: &Req) -> (Reply, &'static str) {
    match req.path.as_str() {
        "/boom" => panic!("a handler bug"),
        "/slow" => {
            SLOW_STARTED.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(1500));
            (
                Reply::json(200, &serde_json::json!({"slow": true})),
                "/slow",
            )
        }
        "/api/v2/block" => {
            BLOCKED.fetch_add(1, Ordering::SeqCst);
            let deadline = Instant::now() + Duration::from_secs(60);
            while !UNBLOCK.load(Ordering::SeqCst) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            UNBLOCKED.fetch_add(1, Ordering::SeqCst);
            (Reply::json(200, &serde_json::json!({})), "/block")
        }
        _ => server::dispatch(ctx, store, req),
    }
}

fn start(home: &TempHome) -> server::Running {
    let env: Vec<(String, String)> = [("UPDRAFT__API__PORT", "0"), ("UPDRAFT__API__WORKERS", "2")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let cfg = Config::load(&home.path, &env).unwrap();
    Store::open(&cfg.database.path).unwrap();
    server::start(cfg, Apps::ALL, dispatch, updraft::clock::Clock::System).unwrap()
}

#[test]
fn a_panicking_handler_costs_one_500_and_one_worker() {
    let home = TempHome::new();
    let srv = start(&home);
    let base = format!("http://{}", srv.addr);
    let (status, body) = get_json(&format!("{base}/boom"));
    assert_eq!(status, 500);
    assert!(
        body["detail"].as_str().unwrap().contains("panicked"),
        "{body}"
    );
    // The worker is replaced and the server keeps serving.
    assert!(wait_until(Duration::from_secs(30), || {
        get_json(&format!("{base}/api/v2/monitor/health")).1["api_server"]["workers_alive"] == 2
    }));
    for _ in 0..10 {
        assert_eq!(get(&format!("{base}/api/v2/version")).0, 200);
    }
    let (_, metrics) = get(&format!("{base}/metrics"));
    assert!(
        metrics.contains("updraft_api_handler_panics_total 1"),
        "{metrics}"
    );
    srv.shutdown(Duration::from_secs(5));
}

#[test]
fn shutdown_lets_in_flight_requests_finish() {
    let home = TempHome::new();
    let srv = start(&home);
    let url = format!("http://{}/slow", srv.addr);
    let client = std::thread::spawn(move || get(&url));
    assert!(wait_until(Duration::from_secs(30), || SLOW_STARTED
        .load(Ordering::SeqCst)));
    srv.shutdown(Duration::from_secs(30));
    let (status, body) = client.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("slow"));
}

// See: issue 12, item 2.
#[test]
fn the_execution_api_answers_while_other_requests_fill_the_pool() {
    let home = TempHome::new();
    let srv = start(&home);
    let base = format!("http://{}", srv.addr);
    // More blocking Core API requests than the pool (two workers) has.
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let url = format!("{base}/api/v2/block");
            std::thread::spawn(move || get(&url).0)
        })
        .collect();
    assert!(wait_until(Duration::from_secs(30), || BLOCKED
        .load(Ordering::SeqCst)
        >= 1));
    // The Execution API answers while they are all still held.
    let (status, body) = get_json(&format!("{base}/execution/health"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        UNBLOCKED.load(Ordering::SeqCst),
        0,
        "answered only after a release"
    );
    // Only one worker took a blocking request: the other is the Execution API's.
    assert_eq!(BLOCKED.load(Ordering::SeqCst), 1);
    UNBLOCK.store(true, Ordering::SeqCst);
    for c in clients {
        assert_eq!(c.join().unwrap(), 200);
    }
    srv.shutdown(Duration::from_secs(5));
}
