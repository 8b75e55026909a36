//! Counters and a latency histogram, rendered in Prometheus' text format.
//!
//! Cheap enough for every request: one short lock per request for the labelled counter,
//! atomics for the rest. Other parts of the program (scheduler, executor) add their own
//! named counters with [`Metrics::incr`].

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
pub struct Metrics {
    /// (method, route template, status) -> count.
    requests: Mutex<BTreeMap<(&'static str, &'static str, u16), u64>>,
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
    pub panics: AtomicU64,
    /// Named counters: `updraft_<name>_total`.
    counters: Mutex<BTreeMap<&'static str, u64>>,
    /// Route template -> requests of those made in this process, without a socket (the
    /// supervisors' calls in `standalone`, `dags test`, `tasks test`); each is counted
    /// in `requests` too.
    in_process: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    pub fn observe(&self, method: &'static str, route: &'static str, status: u16, took: Duration) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((method, route, status))
            .or_default() += 1;
        let secs = took.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// Counts a request (already [`Metrics::observe`]d) that came in process.
    pub fn observe_in_process(&self, route: &'static str) {
        *self
            .in_process
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(route)
            .or_default() += 1;
    }

    pub fn incr(&self, name: &'static str, by: u64) {
        *self
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name)
            .or_default() += by;
    }

    /// The text exposition, with `gauges` (name, help, value) appended.
    pub fn render(&self, gauges: &[(&str, &str, u64)]) -> String {
        let mut out = String::new();
        out.push_str("# HELP updraft_http_requests_total HTTP requests by method, route template and status.\n");
        out.push_str("# TYPE updraft_http_requests_total counter\n");
        for ((method, route, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "updraft_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP updraft_http_in_process_requests_total Requests of updraft_http_requests_total made in this process, without a connection, by route template.\n");
        out.push_str("# TYPE updraft_http_in_process_requests_total counter\n");
        for (route, n) in self
            .in_process
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "updraft_http_in_process_requests_total{{route=\"{route}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP updraft_http_request_duration_seconds Time from request read to reply built.\n",
        );
        out.push_str("# TYPE updraft_http_request_duration_seconds histogram\n");
        for (i, le) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "updraft_http_request_duration_seconds_bucket{{le=\"{le}\"}} {}",
                self.buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "updraft_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "updraft_http_request_duration_seconds_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "updraft_http_request_duration_seconds_count {count}");
        out.push_str("# HELP updraft_api_handler_panics_total Handler panics caught (each cost one 500 and one worker).\n");
        out.push_str("# TYPE updraft_api_handler_panics_total counter\n");
        let _ = writeln!(
            out,
            "updraft_api_handler_panics_total {}",
            self.panics.load(Ordering::Relaxed)
        );
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP updraft_{name} {help}\n# TYPE updraft_{name} gauge\nupdraft_{name} {value}"
            );
        }
        for (name, n) in self
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "# TYPE updraft_{name}_total counter\nupdraft_{name}_total {n}"
            );
        }
        out
    }
}
