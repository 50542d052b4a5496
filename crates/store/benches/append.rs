//! `cargo xtask bench store`: durable appends per second with 1 and 32
//! concurrent writers, 1 KiB and 100 KiB bodies, the syncs each append
//! costs (counted by the store: `syncfs` calls of the blob group sync,
//! blob-directory `fsync`s, and commits, each commit being one WAL `fsync`
//! under `synchronous = FULL`), the share of bodies kept inline (in the
//! database, see `StoreConfig::inline_body_max`) rather than in files, and
//! the CPU time per append of the store's committer thread and of its
//! checkpointer thread (Linux: read from `/proc/self/task`; `-` elsewhere).
//! The committer's CPU time per append is the number to watch when the
//! committer is the bottleneck: unlike appends per second, it hardly moves
//! when other programs compete for the CPU.
//!
//! Each writer appends unique bodies (no de-duplication helps) to its own
//! account's INBOX for a fixed time. Environment: `IRONPOST_BENCH_SECONDS`
//! (default 3) per case, `IRONPOST_BENCH_DIR` (default the system temp
//! directory) for the store, which must be on the disk being measured,
//! `IRONPOST_BENCH_INLINE_MAX` (default the store's) for the inline threshold
//! in octets, `IRONPOST_BENCH_SIZES` (default `1,100`) for the body sizes in
//! KiB and `IRONPOST_BENCH_WRITERS` (default `1,32`) for the writer counts.

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
    let inline_max: Option<usize> = std::env::var("IRONPOST_BENCH_INLINE_MAX")
        .ok()
        .and_then(|s| s.parse().ok());
    if let Some(max) = inline_max {
        println!("inline threshold: {max} octets");
    }
    println!(
        "| writers | body | appends/s | syncs/append | appends/commit | inline | committer µs/append | checkpointer µs/append |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    // Every case's store is kept until the end: deleting thousands of files
    // right before the next case would make the file system's inode
    // allocator (which checks recently deleted inodes) part of what is measured.
    let mut dirs = Vec::new();
    let sizes = list("IRONPOST_BENCH_SIZES", &[1, 100]);
    let writer_counts = list("IRONPOST_BENCH_WRITERS", &[1, 32]);
    for size in sizes.iter().map(|kib| kib * 1024) {
        for &writers in &writer_counts {
            let dir = tempfile::tempdir_in(&base).expect("bench dir");
            let time = Duration::from_secs_f64(seconds);
            let r = run(dir.path(), inline_max, writers, size, time);
            dirs.push(dir);
            println!(
                "| {writers} | {} KiB | {:.0} | {:.2} | {:.1} | {:.0} % | {} | {} |",
                size / 1024,
                r.rate,
                r.syncs,
                r.per_commit,
                r.inline * 100.0,
                micros(r.committer_cpu),
                micros(r.checkpointer_cpu),
            );
        }
    }
}

/// A comma-separated list of numbers from the environment, or `default`.
fn list(var: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(var)
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| default.to_vec())
}

/// Microseconds with one decimal, or `-` when unknown.
fn micros(seconds: Option<f64>) -> String {
    seconds.map_or_else(|| "-".into(), |s| format!("{:.1}", s * 1e6))
}

/// CPU time (seconds) of this process's threads named `name`, by thread id,
/// from `/proc/self/task/*/schedstat`; `None` off Linux.
fn thread_cpu(name: &str) -> Option<Vec<(String, f64)>> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    let mut found = Vec::new();
    for task in tasks.flatten() {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("schedstat")).unwrap_or_default();
        if let Some(ns) = stat
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<f64>().ok())
        {
            found.push((task.file_name().to_string_lossy().into_owned(), ns / 1e9));
        }
    }
    Some(found)
}

/// CPU seconds the threads named `name` used between two [`thread_cpu`]
/// readings (threads that ended meanwhile are not counted).
fn cpu_between(
    before: &Option<Vec<(String, f64)>>,
    after: &Option<Vec<(String, f64)>>,
) -> Option<f64> {
    let (before, after) = (before.as_ref()?, after.as_ref()?);
    if after.is_empty() {
        return None;
    }
    Some(
        after
            .iter()
            .map(|(tid, t)| {
                t - before
                    .iter()
                    .find(|(b, _)| b == tid)
                    .map_or(0.0, |(_, t0)| *t0)
            })
            .sum(),
    )
}

/// The store's thread names (`commit.rs`, `checkpoint.rs`).
const COMMITTER: &str = "store-commit";
const CHECKPOINTER: &str = "store-ckpt";

/// What one case measured.
struct Outcome {
    /// Appends per second.
    rate: f64,
    /// Syncs per append.
    syncs: f64,
    /// Appends per commit.
    per_commit: f64,
    /// The share of bodies kept inline, 0 to 1.
    inline: f64,
    /// CPU seconds of the committer thread per append.
    committer_cpu: Option<f64>,
    /// CPU seconds of the checkpointer thread per append.
    checkpointer_cpu: Option<f64>,
}

fn run(
    dir: &std::path::Path,
    inline_max: Option<usize>,
    writers: usize,
    size: usize,
    time: Duration,
) -> Outcome {
    let mut config = StoreConfig::new(dir);
    config.password = PasswordParams::insecure_fast();
    if let Some(max) = inline_max {
        config.inline_body_max = max;
    }
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
    let committer_before = thread_cpu(COMMITTER);
    let checkpointer_before = thread_cpu(CHECKPOINTER);
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
    let committer = cpu_between(&committer_before, &thread_cpu(COMMITTER));
    let checkpointer = cpu_between(&checkpointer_before, &thread_cpu(CHECKPOINTER));
    Outcome {
        rate: n / elapsed,
        syncs: stats.fsyncs() as f64 / n,
        per_commit: stats.messages_written as f64 / stats.commits.max(1) as f64,
        inline: stats.inline_bodies as f64 / n,
        committer_cpu: committer.map(|s| s / n),
        checkpointer_cpu: checkpointer.map(|s| s / n),
    }
}
