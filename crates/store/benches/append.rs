//! `cargo xtask bench store`: durable appends per second with 1 and 32
//! concurrent writers, 1 KiB and 100 KiB bodies, and the fsyncs each append
//! costs (counted by the store: body files + blob directories + commits, each
//! commit being one WAL fsync under `synchronous = FULL`).
//!
//! Each writer appends unique bodies (no de-duplication helps) to its own
//! account's INBOX for a fixed time. Environment: `IRONPOST_BENCH_SECONDS`
//! (default 3) per case, `IRONPOST_BENCH_DIR` (default the system temp
//! directory) for the store, which must be on the disk being measured.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ironpost_store::{Flags, NewAccount, Password, PasswordParams, Store, StoreConfig};

fn main() {
    let seconds: f64 = std::env::var("IRONPOST_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let base = std::env::var_os("IRONPOST_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    println!("| writers | body | appends/s | fsyncs/append | appends/commit |");
    println!("|---:|---:|---:|---:|---:|");
    // Every case's store is kept until the end: deleting thousands of files
    // right before the next case would make the file system's inode
    // allocator (which checks recently deleted inodes) part of what is measured.
    let mut dirs = Vec::new();
    for size in [1024usize, 100 * 1024] {
        for writers in [1usize, 32] {
            let dir = tempfile::tempdir_in(&base).expect("bench dir");
            let r = run(dir.path(), writers, size, Duration::from_secs_f64(seconds));
            dirs.push(dir);
            println!(
                "| {writers} | {} KiB | {:.0} | {:.2} | {:.1} |",
                size / 1024,
                r.0,
                r.1,
                r.2
            );
        }
    }
}

/// (appends per second, fsyncs per append, appends per commit)
fn run(dir: &std::path::Path, writers: usize, size: usize, time: Duration) -> (f64, f64, f64) {
    let mut config = StoreConfig::new(dir);
    config.password = PasswordParams::insecure_fast();
    let store = Store::open(config).expect("open");
    store.add_domain("bench.example").expect("domain");
    let inboxes: Vec<_> = (0..writers)
        .map(|w| {
            let a = store
                .add_account(NewAccount::new(
                    &format!("w{w}@bench.example"),
                    Password::Plain("x".into()),
                ))
                .expect("account");
            store.mailbox(a.id, "INBOX").expect("inbox").id
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let before = store.stats();
    let start = Instant::now();
    let threads: Vec<_> = inboxes
        .into_iter()
        .enumerate()
        .map(|(w, inbox)| {
            let (store, stop, count) = (store.clone(), stop.clone(), count.clone());
            std::thread::spawn(move || {
                let mut body = vec![b'x'; size];
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let tag = format!("{w}:{i}:");
                    body[..tag.len()].copy_from_slice(tag.as_bytes());
                    store
                        .append(inbox, &body, Flags::new(), None)
                        .expect("append");
                    count.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(time);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("writer");
    }
    let elapsed = start.elapsed().as_secs_f64();
    let stats = store.stats().since(&before);
    let n = count.load(Ordering::Relaxed) as f64;
    (
        n / elapsed,
        stats.fsyncs() as f64 / n,
        stats.messages_written as f64 / stats.commits.max(1) as f64,
    )
}
