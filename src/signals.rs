//! Unix signals that steer the API worker pool as they steer gunicorn: SIGTTIN adds a
//! worker, SIGTTOU retires the oldest, SIGHUP refreshes the whole pool, SIGTERM stops
//! gracefully (Ctrl-C is `ctrlc`'s, on every platform). Windows has no such signals;
//! there the pool is steered by its interval only.

use crossbeam_channel::Sender;

use crate::server::Control;

/// Forwards the pool signals to `control` from a background thread (Unix).
#[cfg(unix)]
pub fn forward(control: Sender<Control>, grace: std::time::Duration) {
    use signal_hook::consts::{SIGHUP, SIGTERM, SIGTTIN, SIGTTOU};
    use signal_hook::iterator::Signals;

    let mut signals = match Signals::new([SIGHUP, SIGTERM, SIGTTIN, SIGTTOU]) {
        Ok(s) => s,
        Err(e) => {
            log::warn!("cannot listen for SIGHUP/SIGTERM/SIGTTIN/SIGTTOU: {e}");
            return;
        }
    };
    let _ = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                let msg = match sig {
                    SIGTTIN => Control::AddWorker,
                    SIGTTOU => Control::RetireWorker,
                    SIGTERM => Control::Shutdown(grace),
                    _ => Control::Refresh,
                };
                log::info!("signal {sig}: {msg:?}");
                if control.send(msg).is_err() {
                    return;
                }
            }
        });
}

/// Windows: nothing to forward; Ctrl-C is handled by the caller.
#[cfg(windows)]
pub fn forward(_control: Sender<Control>, _grace: std::time::Duration) {}
