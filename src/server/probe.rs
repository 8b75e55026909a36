//! `execution_api_server_url`: derived from the server's address when not set, and
//! checked, because a wrong value must be impossible to miss.
//!
//! In Airflow a wrong URL leaves tasks queued forever with nothing pointing at the cause
//! (apache/airflow#49725, #51163). Here the component that hands the URL to tasks probes
//! `{url}health` at startup and then now and again, and says plainly what is wrong and
//! what to set, in its log and in `/api/v2/monitor/health`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::api::{Ctx, Probe};
use crate::config::Config;

/// How often the URL is checked again after startup.
const RECHECK: Duration = Duration::from_secs(30);
/// How long one check may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The URL tasks use to reach the Execution API, always ending in `/`.
/// `[core] execution_api_server_url` if set; else `{base_url}/execution/` when base_url is
/// a full URL; else `http://{host}:{port}{prefix}/execution/` from the bound address.
pub fn execution_url(cfg: &Config, bound: SocketAddr) -> String {
    let set = cfg.core.execution_api_server_url.trim();
    if !set.is_empty() {
        return format!("{}/", set.trim_end_matches('/'));
    }
    let base = cfg.api.base_url.trim().trim_end_matches('/');
    if base.contains("://") {
        return format!("{base}/execution/");
    }
    // A wildcard bind address is not something to connect to.
    let host = match bound.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_string(),
        ip if ip.is_unspecified() => "[::1]".to_string(),
        ip if ip.is_ipv6() => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("http://{host}:{}{base}/execution/", bound.port())
}

/// Checks the URL once: `GET {url}health` must answer 200 `{"status": "healthy"}`.
pub fn check(url: &str) -> Result<(), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into();
    let target = format!("{url}health");
    let mut res = agent
        .get(&target)
        .call()
        .map_err(|e| format!("GET {target} failed: {e}"))?;
    let status = res.status().as_u16();
    let body: serde_json::Value = res.body_mut().read_json().unwrap_or_default();
    if status == 200 && body["status"] == "healthy" {
        Ok(())
    } else {
        Err(format!(
            "GET {target} answered {status} {body}; this is not updraft's Execution API"
        ))
    }
}

/// Checks now, retrying briefly (the Execution API may be a process starting beside
/// this one), then every [`RECHECK`]; logs every change of state. Stops when `stop`
/// disconnects.
pub fn watch(ctx: Arc<Ctx>, stop: Receiver<()>) {
    let url = ctx
        .execution_probe
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .url
        .clone();
    let _ = std::thread::Builder::new()
        .name("execution-probe".into())
        .spawn(move || {
            let mut last: Option<bool> = None;
            let mut attempt = 0u32;
            loop {
                let result = check(&url);
                attempt += 1;
                // Retry quietly for the first few seconds of startup.
                if result.is_err() && last.is_none() && attempt < 5 {
                    if !wait(&stop, Duration::from_secs(1)) {
                        return;
                    }
                    continue;
                }
                let ok = result.is_ok();
                let detail = match &result {
                    Ok(()) => "reachable".to_string(),
                    Err(e) => format!(
                        "{e}. Tasks will not be able to report their state. Set [core] execution_api_server_url \
                         (AIRFLOW__CORE__EXECUTION_API_SERVER_URL) to the URL of a server running --apps execution"
                    ),
                };
                if last != Some(ok) {
                    if ok {
                        log::info!("execution API at {url} is reachable");
                    } else {
                        log::error!("execution API at {url} is NOT reachable: {detail}");
                    }
                }
                last = Some(ok);
                *ctx.execution_probe.lock().unwrap_or_else(|p| p.into_inner()) = Probe {
                    url: url.clone(),
                    ok: Some(ok),
                    detail,
                };
                if !wait(&stop, RECHECK) {
                    return;
                }
            }
        });
}

/// Sleeps for `d`; false when told to stop meanwhile.
fn wait(stop: &Receiver<()>, d: Duration) -> bool {
    matches!(stop.recv_timeout(d), Err(RecvTimeoutError::Timeout))
}
