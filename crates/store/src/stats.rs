//! Counters of the work that costs: fsyncs, commits, batches.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The live counters, shared by the blob store and the committer.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    dir_fsyncs: AtomicU64,
    fs_syncs: AtomicU64,
    commits: AtomicU64,
    jobs: AtomicU64,
    messages: AtomicU64,
    inline_bodies: AtomicU64,
    checkpoints: AtomicU64,
    rewinds: AtomicU64,
    checkpoint_errors: AtomicU64,
    deferred_commits: AtomicU64,
    log_syncs: AtomicU64,
}

impl Counters {
    pub(crate) fn dir_fsync(&self) {
        self.dir_fsyncs.fetch_add(1, Relaxed);
    }

    pub(crate) fn fs_sync(&self) {
        self.fs_syncs.fetch_add(1, Relaxed);
    }

    pub(crate) fn commit(&self, jobs: usize) {
        self.commits.fetch_add(1, Relaxed);
        self.jobs.fetch_add(jobs as u64, Relaxed);
    }

    pub(crate) fn messages(&self, n: usize) {
        self.messages.fetch_add(n as u64, Relaxed);
    }

    pub(crate) fn inline_bodies(&self, n: usize) {
        self.inline_bodies.fetch_add(n as u64, Relaxed);
    }

    pub(crate) fn checkpoint(&self) {
        self.checkpoints.fetch_add(1, Relaxed);
    }

    pub(crate) fn rewind(&self) {
        self.rewinds.fetch_add(1, Relaxed);
    }

    pub(crate) fn checkpoint_error(&self) {
        self.checkpoint_errors.fetch_add(1, Relaxed);
    }

    pub(crate) fn deferred_commit(&self) {
        self.deferred_commits.fetch_add(1, Relaxed);
    }

    pub(crate) fn log_sync(&self) {
        self.log_syncs.fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            dir_fsyncs: self.dir_fsyncs.load(Relaxed),
            fs_syncs: self.fs_syncs.load(Relaxed),
            commits: self.commits.load(Relaxed),
            write_jobs: self.jobs.load(Relaxed),
            messages_written: self.messages.load(Relaxed),
            inline_bodies: self.inline_bodies.load(Relaxed),
            checkpoints: self.checkpoints.load(Relaxed),
            wal_rewinds: self.rewinds.load(Relaxed),
            checkpoint_errors: self.checkpoint_errors.load(Relaxed),
            deferred_commits: self.deferred_commits.load(Relaxed),
            log_syncs: self.log_syncs.load(Relaxed),
        }
    }
}

/// A snapshot of the store's counters since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// `fsync`s of blob directories.
    pub dir_fsyncs: u64,
    /// `syncfs` calls of the group sync (two per batch of bodies).
    pub fs_syncs: u64,
    /// Write transactions committed. In WAL mode with `synchronous =
    /// FULL` each commit costs one `fsync` of the WAL, except the
    /// [`Stats::deferred_commits`] (checkpoints, counted apart, add their
    /// own).
    pub commits: u64,
    /// Write calls served (each is one savepoint inside some commit).
    pub write_jobs: u64,
    /// Message rows added (appends, deliveries per recipient, copies, moves).
    pub messages_written: u64,
    /// Bodies stored in the database (`blob_data`) rather than as
    /// files (a new row, not a body already stored; see
    /// [`crate::StoreConfig::inline_body_max`]).
    pub inline_bodies: u64,
    /// Checkpoints run by the checkpointer thread (each copies the log
    /// frames written since the one before into the database and `fsync`s
    /// it; none of them runs on the committer thread).
    pub checkpoints: u64,
    /// Rewinds of the write-ahead log: `RESTART` checkpoints the committer
    /// ran between two batches once the log had grown to its rewind point
    /// (made or held up by readers alike).
    pub wal_rewinds: u64,
    /// Checkpoints (either kind) and timed `fsync`s of the WAL that
    /// failed. A failed checkpoint fails no write; it is tried again later.
    /// After a failed `fsync` the next commit `fsync`s.
    pub checkpoint_errors: u64,
    /// Commits made without an `fsync` of the WAL: batches of flag changes
    /// only, durable within [`crate::StoreConfig::flag_sync_delay`].
    pub deferred_commits: u64,
    /// `fsync`s of the WAL the committer made for deferred commits that no
    /// later commit had `fsync`ed within the delay.
    pub log_syncs: u64,
}

impl Stats {
    /// Syncs the store asked for: directory `fsync`s, `syncfs` calls,
    /// commits (one WAL `fsync` each, deferred ones none) and timed `fsync`s
    /// of the WAL.
    pub fn fsyncs(&self) -> u64 {
        self.dir_fsyncs + self.fs_syncs + self.commits - self.deferred_commits + self.log_syncs
    }

    /// The counters accumulated since `earlier`.
    pub fn since(&self, earlier: &Stats) -> Stats {
        Stats {
            dir_fsyncs: self.dir_fsyncs - earlier.dir_fsyncs,
            fs_syncs: self.fs_syncs - earlier.fs_syncs,
            commits: self.commits - earlier.commits,
            write_jobs: self.write_jobs - earlier.write_jobs,
            messages_written: self.messages_written - earlier.messages_written,
            inline_bodies: self.inline_bodies - earlier.inline_bodies,
            checkpoints: self.checkpoints - earlier.checkpoints,
            wal_rewinds: self.wal_rewinds - earlier.wal_rewinds,
            checkpoint_errors: self.checkpoint_errors - earlier.checkpoint_errors,
            deferred_commits: self.deferred_commits - earlier.deferred_commits,
            log_syncs: self.log_syncs - earlier.log_syncs,
        }
    }
}
