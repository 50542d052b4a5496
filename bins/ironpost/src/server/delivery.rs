//! The local delivery worker: takes accepted messages from the queue and
//! delivers them (crate `ironpost-queue`), woken by each accepted message
//! and, for retries, by a timer.

use std::sync::Arc;
use std::time::Duration;

use ironpost_queue::{PassReport, deliver_due};
use ironpost_store::Store;
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

/// Queue entries one pass takes.
const BATCH: usize = 64;
/// How often the queue is looked at when nothing wakes the worker.
const IDLE_PASS: Duration = Duration::from_secs(60);

/// Runs delivery passes until shutdown.
pub(crate) async fn worker(
    store: Store,
    hostname: String,
    queued: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (s, h) = (store.clone(), hostname.clone());
        let pass = tokio::task::spawn_blocking(move || deliver_due(&s, &h, now(), BATCH)).await;
        let progress = match pass {
            Ok(Ok(report)) => {
                log_pass(&report);
                // Every entry taken is finished or set aside for remote
                // delivery, so the next pass takes new ones only.
                report.entries > 0
            }
            Ok(Err(e)) => {
                warn!(error = %e, "delivery pass failed");
                false
            }
            Err(e) => {
                warn!(error = %e, "delivery pass panicked");
                false
            }
        };
        if *shutdown.borrow() {
            return;
        }
        if progress {
            continue;
        }
        tokio::select! {
            () = queued.notified() => {}
            () = tokio::time::sleep(IDLE_PASS) => {}
            _ = shutdown.changed() => return,
        }
    }
}

fn log_pass(report: &PassReport) {
    if *report != PassReport::default() {
        info!(
            entries = report.entries,
            delivered = report.delivered,
            failed = report.failed,
            bounces = report.bounces,
            remote = report.remote,
            finished = report.finished,
            "delivery pass"
        );
    }
}

fn now() -> ironpost_store::Timestamp {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
