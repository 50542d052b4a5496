//! Counters of the work that costs: fsyncs, commits, batches.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The live counters, shared by the blob store and the committer.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    file_fsyncs: AtomicU64,
    dir_fsyncs: AtomicU64,
    commits: AtomicU64,
    jobs: AtomicU64,
    messages: AtomicU64,
}

impl Counters {
    pub(crate) fn file_fsync(&self) {
        self.file_fsyncs.fetch_add(1, Relaxed);
    }

    pub(crate) fn dir_fsync(&self) {
        self.dir_fsyncs.fetch_add(1, Relaxed);
    }

    pub(crate) fn commit(&self, jobs: usize) {
        self.commits.fetch_add(1, Relaxed);
        self.jobs.fetch_add(jobs as u64, Relaxed);
    }

    pub(crate) fn messages(&self, n: usize) {
        self.messages.fetch_add(n as u64, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            file_fsyncs: self.file_fsyncs.load(Relaxed),
            dir_fsyncs: self.dir_fsyncs.load(Relaxed),
            commits: self.commits.load(Relaxed),
            write_jobs: self.jobs.load(Relaxed),
            messages_written: self.messages.load(Relaxed),
        }
    }
}

/// A snapshot of the store's counters since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// `fsync`s of body files.
    pub file_fsyncs: u64,
    /// `fsync`s of blob directories.
    pub dir_fsyncs: u64,
    /// Write transactions committed. With `synchronous = FULL` in WAL mode
    /// each commit costs one `fsync` of the WAL (checkpoints add a few more).
    pub commits: u64,
    /// Write calls served (each is one savepoint inside some commit).
    pub write_jobs: u64,
    /// Message rows added (appends, deliveries per recipient, copies, moves).
    pub messages_written: u64,
}

impl Stats {
    /// `fsync`s the store asked for: bodies + directories + commits.
    pub fn fsyncs(&self) -> u64 {
        self.file_fsyncs + self.dir_fsyncs + self.commits
    }

    /// The counters accumulated since `earlier`.
    pub fn since(&self, earlier: &Stats) -> Stats {
        Stats {
            file_fsyncs: self.file_fsyncs - earlier.file_fsyncs,
            dir_fsyncs: self.dir_fsyncs - earlier.dir_fsyncs,
            commits: self.commits - earlier.commits,
            write_jobs: self.write_jobs - earlier.write_jobs,
            messages_written: self.messages_written - earlier.messages_written,
        }
    }
}
