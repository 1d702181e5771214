//! Stopping the poll loop cleanly on Ctrl-C or SIGTERM: a flag set by a small signal thread,
//! checked between mails and while sleeping, so a reply being sent is never cut in half.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A flag that becomes true on Ctrl-C or SIGTERM. If signals cannot be watched (no runtime),
/// the flag simply never trips and the default process behaviour (exit) applies.
pub fn shutdown_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = Arc::clone(&flag);
    let spawned = std::thread::Builder::new()
        .name("email-signals".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                #[cfg(unix)]
                {
                    use tokio::signal::unix::{signal, SignalKind};
                    match signal(SignalKind::terminate()) {
                        Ok(mut term) => {
                            tokio::select! {
                                _ = tokio::signal::ctrl_c() => {},
                                _ = term.recv() => {},
                            }
                        }
                        Err(_) => {
                            let _ = tokio::signal::ctrl_c().await;
                        }
                    }
                }
                #[cfg(not(unix))]
                {
                    let _ = tokio::signal::ctrl_c().await;
                }
            });
            f.store(true, Ordering::SeqCst);
        });
    if spawned.is_err() {
        eprintln!("warning: cannot watch for Ctrl-C; the process will stop abruptly");
    }
    flag
}

/// Sleeps `total` unless `stop` becomes true first; returns whether it was stopped.
pub fn sleep_unless(stop: &AtomicBool, total: Duration) -> bool {
    let end = Instant::now() + total;
    while !stop.load(Ordering::SeqCst) {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        std::thread::sleep(left.min(Duration::from_millis(200)));
    }
    true
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sleep_is_cut_short_by_the_flag() {
        let stop = AtomicBool::new(true);
        let t = Instant::now();
        assert!(sleep_unless(&stop, Duration::from_secs(30)));
        assert!(t.elapsed() < Duration::from_secs(1));
        let go = AtomicBool::new(false);
        assert!(!sleep_unless(&go, Duration::from_millis(10)));
    }
}
