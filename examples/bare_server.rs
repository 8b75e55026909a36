//! The baseline for `make bench`'s API figures: a bare tiny_http server, the same crate
//! and version updraft serves with, answering every request with a copy of updraft's
//! `/api/v2/monitor/health` body and headers. No routing, no database, no logging: what
//! is left is the cost of tiny_http and the socket, which updraft cannot beat.
//!
//! Usage: `bare_server [PORT] [THREADS]`; port 0 (the default) picks a free one. It
//! prints `bare_server listening on http://127.0.0.1:PORT/` and serves until killed.

use std::sync::Arc;

/// Worker threads taking requests off the one listener: `[api] workers`' default.
const DEFAULT_THREADS: usize = 4;

/// A body taken once from a live `updraft standalone` (`GET /api/v2/monitor/health`),
/// so both servers write the same number of bytes per reply.
const HEALTH: &str = r#"{"metadatabase":{"status":"healthy"},"scheduler":{"status":"healthy","latest_scheduler_heartbeat":"2026-11-21T10:05:34.547956+00:00"},"triggerer":{"status":null,"latest_triggerer_heartbeat":null},"dag_processor":{"status":null,"latest_dag_processor_heartbeat":null},"api_server":{"status":"healthy","apps":["core","execution"],"workers_alive":4,"workers_configured":4,"generation":1,"refreshes_completed":0,"uptime_seconds":0.972618108},"execution_api":{"status":"healthy","url":"http://127.0.0.1:35673/execution/","detail":"reachable"}}"#;

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args
        .next()
        .map_or(0, |p| p.parse().expect("PORT is a number"));
    let threads: usize = args
        .next()
        .map_or(DEFAULT_THREADS, |n| n.parse().expect("THREADS is a number"));
    let server = Arc::new(tiny_http::Server::http(("127.0.0.1", port)).expect("the port is free"));
    let addr = server.server_addr().to_ip().expect("an IP listener");
    println!("bare_server listening on http://{addr}/");
    let headers = [
        tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap(),
        tiny_http::Header::from_bytes("X-Content-Type-Options", "nosniff").unwrap(),
    ];
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let server = server.clone();
            let headers = headers.clone();
            std::thread::spawn(move || {
                for rq in server.incoming_requests() {
                    let mut reply = tiny_http::Response::from_data(HEALTH.as_bytes());
                    for h in &headers {
                        reply.add_header(h.clone());
                    }
                    // The client may be gone; that is its business.
                    let _ = rq.respond(reply);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
}
