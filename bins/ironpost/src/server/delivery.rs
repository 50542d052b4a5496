//! The local delivery workers: take accepted messages from the queue and
//! deliver them (crate `ironpost-queue`), woken by each accepted message
//! and, for retries, by a timer.
//!
//! One task takes a batch of due entries and shares it out between
//! `delivery.workers` blocking threads, each entry to one of them; their
//! concurrent deliveries share the store's syncs (group commit).

use std::sync::Arc;
use std::time::Duration;

use ironpost_queue::{DeliveryError, PassReport, deliver_entries};
use ironpost_store::{QueueEntry, Store};
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

/// Queue entries one pass takes per worker.
const PER_WORKER: usize = 32;
/// How often the queue is looked at when nothing wakes the workers.
const IDLE_PASS: Duration = Duration::from_secs(60);

/// Runs delivery passes until shutdown.
pub(crate) async fn run(
    store: Store,
    hostname: String,
    workers: usize,
    queued: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let workers = workers.max(1);
    loop {
        let taken = pass(&store, &hostname, workers).await;
        if *shutdown.borrow() {
            return;
        }
        // Every entry taken is finished or set aside for remote delivery,
        // so the next pass takes new ones only.
        if taken > 0 {
            continue;
        }
        tokio::select! {
            () = queued.notified() => {}
            () = tokio::time::sleep(IDLE_PASS) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One pass: returns how many entries it took.
async fn pass(store: &Store, hostname: &str, workers: usize) -> usize {
    let now = now();
    let s = store.clone();
    let due =
        tokio::task::spawn_blocking(move || s.queue_local_due(now, PER_WORKER * workers)).await;
    let entries = match due {
        Ok(Ok(entries)) => entries,
        Ok(Err(e)) => {
            warn!(error = %e, "cannot read the queue");
            return 0;
        }
        Err(e) => {
            warn!(error = %e, "reading the queue panicked");
            return 0;
        }
    };
    if entries.is_empty() {
        return 0;
    }
    let mut shares: Vec<Vec<QueueEntry>> = vec![Vec::new(); workers.min(entries.len())];
    let count = shares.len();
    for (i, entry) in entries.into_iter().enumerate() {
        shares[i % count].push(entry);
    }
    let handles: Vec<_> = shares
        .into_iter()
        .map(|share| {
            let (s, h) = (store.clone(), hostname.to_string());
            tokio::task::spawn_blocking(move || deliver_entries(&s, &h, now, &share))
        })
        .collect();
    let mut total = PassReport::default();
    let mut taken = 0;
    for handle in handles {
        match handle.await {
            Ok(Ok(report)) => {
                taken += report.entries;
                total += report;
            }
            Ok(Err(e)) => log_error(&e),
            Err(e) => warn!(error = %e, "a delivery worker panicked"),
        }
    }
    log_pass(&total);
    taken
}

fn log_error(error: &DeliveryError) {
    warn!(error = %error, "delivery pass stopped; the entry is retried at the next pass");
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
