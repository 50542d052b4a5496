//! The group committer: one thread owns the write connection and runs every
//! write of the store.
//!
//! Callers (many threads) hand it jobs and block until their job's batch is
//! durable. The thread takes the first waiting job and every other job queued
//! behind it (up to [`MAX_BATCH`]), then:
//!
//! 1. `BEGIN IMMEDIATE`, runs each job inside its own `SAVEPOINT` (a failing
//!    job rolls back alone), `COMMIT` — one WAL `fsync` for the whole batch
//!    (`synchronous = FULL`). A job that is first in the transaction needs no
//!    savepoint (rolling the transaction back undoes it alone), nor does one
//!    whose failure leaves nothing that matters ([`Undo::NotNeeded`], the
//!    append and delivery job): savepoints cost a copy of every page they
//!    change;
//! 2. publishes the batch's changes to the feed, in order;
//! 3. answers every caller.
//!
//! A batch made only of [`Durability::Deferred`] jobs (flag changes)
//! commits with `synchronous = NORMAL`: no `fsync` at `COMMIT`. Its frames
//! are in the log, in the operating system's cache: every reader and the
//! feed see them, and a crash of the process keeps them. They become durable
//! against a crash of the machine with the next `fsync` of the log: the next
//! batch that needs one (the log is one file, written in order, so its
//! `fsync` covers every frame before), a checkpoint, or at the latest the
//! one this thread makes [`StoreConfig::flag_sync_delay`] after the first
//! unsynced commit. A batch due after that delay `fsync`s at its commit
//! whatever its jobs.
//!
//! [`StoreConfig::flag_sync_delay`]: crate::StoreConfig::flag_sync_delay
//!
//! Bodies a job references are durable before the job is queued (the
//! calling thread's group sync made the file's bytes and name durable, see
//! `blob.rs`), or are small bodies the job itself writes into their `blobs`
//! row, durable with the same commit as the rows that reference them.
//!
//! While one batch commits, new jobs queue up and form the next batch: the
//! more concurrent writers, the more jobs share each `fsync`. A single writer
//! pays full price and waits for nobody. Because every write runs on this one
//! thread, UID allocation, modseq and quota arithmetic never race.
//!
//! This thread only writes the log: the checkpointer thread copies it into
//! the database (`checkpoint.rs`). Once the log is long, this thread rewinds
//! it between two batches with a short `RESTART` checkpoint, which copies
//! what the checkpointer has not copied yet (see `checkpoint.rs` for why it
//! is done here and why that keeps the log bounded).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::checkpoint::{self, Checkpointer};
use crate::error::{DbResult, Error, Result};
use crate::feed::{Change, Feed};
use crate::stats::Counters;
use crate::types::MailboxId;

/// Most jobs in one transaction: bounds the latency a batch adds.
const MAX_BATCH: usize = 512;

/// What a write job sees: the connection, inside the batch's transaction (and
/// a savepoint of it, see [`Undo`]), and a place for the changes it makes.
pub(crate) struct WriteCtx<'a> {
    pub(crate) conn: &'a Connection,
    changes: Vec<(MailboxId, Change)>,
    messages: usize,
    inline_bodies: usize,
}

impl WriteCtx<'_> {
    /// Queues a change for the feed; published only if the batch commits.
    pub(crate) fn publish(&mut self, mailbox: MailboxId, change: Change) {
        self.changes.push((mailbox, change));
    }

    /// Counts message rows written (for [`crate::Stats`]).
    pub(crate) fn count_messages(&mut self, n: usize) {
        self.messages += n;
    }

    /// Counts a body stored in the database (`blob_data`) (for [`crate::Stats`]).
    pub(crate) fn count_inline_body(&mut self) {
        self.inline_bodies += 1;
    }
}

/// How a failed job's writes are undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Undo {
    /// The job runs in a savepoint of the batch's transaction, rolled back
    /// if it fails: a failed job leaves nothing. What every write gets
    /// unless it says otherwise.
    Savepoint,
    /// The job runs without a savepoint, because what it may have written
    /// when it fails is harmless (the job says why), and a savepoint costs:
    /// SQLite copies every page a savepoint changes into its sub-journal
    /// before changing it, which was a sixth of the committer's work per
    /// append at 32 writers. If it panics, or its failure ended the
    /// transaction, the whole batch is rolled back and fails instead.
    NotNeeded,
}

/// When a job's writes must be durable against a crash of the machine (a
/// crash of the process loses nothing committed either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Before the job is answered: its batch's `COMMIT` `fsync`s the log.
    /// What every write gets unless it says otherwise.
    AtCommit,
    /// Within the store's flag sync delay after it is answered (see the
    /// module doc). For changes whose loss in a power cut costs no mail:
    /// flags. Treated as [`Durability::AtCommit`] when the delay is zero.
    Deferred,
}

/// How a job's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ran {
    Ok,
    Failed,
    Panicked,
}

trait Job: Send {
    fn undo(&self) -> Undo;
    fn durability(&self) -> Durability;
    /// Runs the job (its result is kept for [`Job::finish`]).
    fn run(&mut self, ctx: &mut WriteCtx<'_>) -> Ran;
    fn finish(self: Box<Self>, batch: Result<(), &Error>);
}

struct Typed<R, F> {
    f: Option<F>,
    undo: Undo,
    durability: Durability,
    result: Option<Result<R>>,
    /// Takes the answer once the batch is durable (or failed), on the
    /// committer thread.
    reply: Reply<R>,
}

/// What a job's answer goes to: a caller blocked on a channel, or a
/// callback (which must not block).
type Reply<R> = Box<dyn FnOnce(Result<R>) + Send>;

impl<R, F> Job for Typed<R, F>
where
    R: Send,
    F: FnOnce(&mut WriteCtx<'_>) -> Result<R> + Send,
{
    fn undo(&self) -> Undo {
        self.undo
    }

    fn durability(&self) -> Durability {
        self.durability
    }

    fn run(&mut self, ctx: &mut WriteCtx<'_>) -> Ran {
        let Some(f) = self.f.take() else {
            return Ran::Failed;
        };
        let (result, ran) = match catch_unwind(AssertUnwindSafe(|| f(ctx))) {
            Ok(Ok(r)) => (Ok(r), Ran::Ok),
            Ok(Err(e)) => (Err(e), Ran::Failed),
            Err(_) => (
                Err(Error::Database("a write job panicked".into())),
                Ran::Panicked,
            ),
        };
        self.result = Some(result);
        ran
    }

    fn finish(self: Box<Self>, batch: Result<(), &Error>) {
        let answer = match batch {
            Ok(()) => self
                .result
                .unwrap_or_else(|| Err(Error::Database("job did not run".into()))),
            Err(e) => Err(copy_error(e)),
        };
        (self.reply)(answer);
    }
}

/// An owned copy of a batch-wide failure, for each caller of the batch.
fn copy_error(e: &Error) -> Error {
    match e {
        Error::Io { path, source } => Error::Io {
            path: path.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        Error::Closed => Error::Closed,
        other => Error::Database(other.to_string()),
    }
}

/// The handle the store keeps: a queue to the committer thread.
#[derive(Debug)]
pub(crate) struct Committer {
    sender: Option<Sender<Box<dyn Job>>>,
    thread: Option<JoinHandle<()>>,
}

impl Committer {
    /// Starts the committer thread on `conn`, the write connection (set up
    /// with [`crate::schema::configure_writer`]), and the checkpointer thread
    /// on `checkpoint_conn`, a connection of its own to the same database.
    /// `flag_sync_delay` bounds how long a [`Durability::Deferred`] commit
    /// waits for its `fsync`.
    pub(crate) fn start(
        conn: Connection,
        checkpoint_conn: Connection,
        feed: Arc<Feed>,
        counters: Arc<Counters>,
        flag_sync_delay: Duration,
    ) -> Result<Committer> {
        let checkpointer = Checkpointer::start(checkpoint_conn, counters.clone())?;
        let log = Log::new(&conn, flag_sync_delay);
        let (sender, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("store-commit".into())
            .spawn(move || run(conn, checkpointer, log, rx, &feed, &counters))
            .map_err(|e| Error::io("committer thread", e))?;
        Ok(Committer {
            sender: Some(sender),
            thread: Some(thread),
        })
    }

    /// Runs `f` in the next batch and returns its result once the batch is
    /// committed (and, as `durability` says, durable); `undo` says how its
    /// writes are undone if it fails.
    pub(crate) fn write<R, F>(&self, undo: Undo, durability: Durability, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<R> + Send + 'static,
    {
        let (reply, answer) = mpsc::sync_channel(1);
        self.submit(
            undo,
            durability,
            f,
            Box::new(move |result| {
                let _ = reply.send(result);
            }),
        )?;
        answer.recv().map_err(|_| Error::Closed)?
    }

    /// Queues `f` for the next batch without waiting: `reply` gets its
    /// result on the committer thread once the batch is committed (after
    /// the batch's changes are published to the feed). `reply` must not
    /// block. Fails at once (and `reply` is dropped) when the store is
    /// closed.
    pub(crate) fn submit<R, F>(
        &self,
        undo: Undo,
        durability: Durability,
        f: F,
        reply: Reply<R>,
    ) -> Result<()>
    where
        R: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<R> + Send + 'static,
    {
        let job: Box<dyn Job> = Box::new(Typed {
            f: Some(f),
            undo,
            durability,
            result: None,
            reply,
        });
        self.sender
            .as_ref()
            .ok_or(Error::Closed)?
            .send(job)
            .map_err(|_| Error::Closed)
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.sender.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(
    conn: Connection,
    mut checkpointer: Checkpointer,
    mut log: Log,
    rx: Receiver<Box<dyn Job>>,
    feed: &Feed,
    counters: &Counters,
) {
    loop {
        let first = match log.sync_due() {
            None => match rx.recv() {
                Ok(job) => job,
                Err(_) => break,
            },
            Some(due) => match rx.recv_timeout(due.saturating_duration_since(Instant::now())) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    log.sync(counters);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            },
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let durability = log.durability(&batch);
        let committed = log
            .set(&conn, durability)
            .and_then(|()| commit_batch(&conn, &mut batch, counters));
        match committed {
            Ok(changes) => {
                log.committed(durability, counters);
                checkpointer.committed();
                feed.publish(&changes);
                for job in batch {
                    job.finish(Ok(()));
                }
            }
            Err(e) => {
                for job in batch {
                    job.finish(Err(&e));
                }
            }
        }
        // Between batches, where this thread holds no transaction.
        if checkpointer.take_rewind() {
            let done = checkpoint::rewind(&conn, counters);
            checkpointer.rewound(done);
        }
    }
    // Stop the checkpointer first: its checkpoint lock would make this
    // one give up at once. Then leave a small WAL behind for the next open
    // (the checkpoint `fsync`s what is left of the log first).
    drop(checkpointer);
    let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
    if log.sync_due().is_some() {
        log.sync(counters);
    }
}

/// The committer's account of the log's `fsync`s (see the module doc).
struct Log {
    /// The log file, `fsync`ed by name when a deferred commit is due.
    path: Option<PathBuf>,
    delay: Duration,
    /// The `synchronous` setting of the write connection.
    setting: Durability,
    /// When the first commit not yet `fsync`ed was made (or, after a
    /// failed `fsync`, the failure).
    unsynced_since: Option<Instant>,
    /// The last `fsync` of the log failed: the next batch `fsync`s.
    failed: bool,
}

impl Log {
    fn new(conn: &Connection, delay: Duration) -> Log {
        // An in-memory database has no log file and nothing to make durable.
        let path = conn
            .path()
            .filter(|p| !p.is_empty())
            .map(|p| PathBuf::from(format!("{p}-wal")));
        Log {
            delay: if path.is_some() {
                delay
            } else {
                Duration::ZERO
            },
            path,
            setting: Durability::AtCommit,
            unsynced_since: None,
            failed: false,
        }
    }

    /// When the log must be `fsync`ed, if a commit waits for it.
    fn sync_due(&self) -> Option<Instant> {
        self.unsynced_since.map(|since| since + self.delay)
    }

    /// How `batch` commits: without an `fsync` only if every job allows it
    /// and no earlier deferred commit is due.
    fn durability(&self, batch: &[Box<dyn Job>]) -> Durability {
        let deferred = !self.delay.is_zero()
            && !self.failed
            && batch.iter().all(|j| j.durability() == Durability::Deferred)
            && self.sync_due().is_none_or(|due| Instant::now() < due);
        if deferred {
            Durability::Deferred
        } else {
            Durability::AtCommit
        }
    }

    /// Sets the write connection's `synchronous` for the next commit (it
    /// cannot change inside a transaction).
    fn set(&mut self, conn: &Connection, durability: Durability) -> Result<()> {
        if self.setting != durability {
            exec(
                conn,
                match durability {
                    Durability::AtCommit => "PRAGMA synchronous = FULL",
                    Durability::Deferred => "PRAGMA synchronous = NORMAL",
                },
            )?;
            self.setting = durability;
        }
        Ok(())
    }

    fn committed(&mut self, durability: Durability, counters: &Counters) {
        match durability {
            // The commit's fsync covers every frame before its own.
            Durability::AtCommit => {
                self.unsynced_since = None;
                self.failed = false;
            }
            Durability::Deferred => {
                counters.deferred_commit();
                self.unsynced_since.get_or_insert_with(Instant::now);
            }
        }
    }

    /// `fsync`s the log now. A log that is gone was checkpointed whole,
    /// and every checkpoint `fsync`s the log before it copies it. On a
    /// failure the next batch `fsync`s at its commit, and this is tried
    /// again after another delay.
    fn sync(&mut self, counters: &Counters) {
        let synced = match &self.path {
            None => Ok(()),
            Some(path) => match std::fs::File::open(path) {
                Ok(file) => file.sync_data(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            },
        };
        match synced {
            Ok(()) => {
                counters.log_sync();
                self.unsynced_since = None;
                self.failed = false;
            }
            Err(_) => {
                counters.checkpoint_error();
                self.unsynced_since = Some(Instant::now());
                self.failed = true;
            }
        }
    }
}

fn commit_batch(
    conn: &Connection,
    batch: &mut [Box<dyn Job>],
    counters: &Counters,
) -> Result<Vec<(MailboxId, Change)>> {
    exec(conn, "BEGIN IMMEDIATE")?;
    let mut changes = Vec::new();
    let mut messages = 0;
    let mut inline_bodies = 0;
    let ran = (|| {
        // Jobs whose writes are in the transaction. While there are none, a
        // job needs no savepoint whatever its `Undo`: rolling back the
        // transaction undoes its writes alone. So a single writer's batches,
        // and the first job of every batch, pay for no sub-journal.
        let mut kept = 0;
        for job in batch.iter_mut() {
            let savepoint = kept > 0 && job.undo() == Undo::Savepoint;
            if savepoint {
                exec(conn, "SAVEPOINT job")?;
            }
            let mut ctx = WriteCtx {
                conn,
                changes: Vec::new(),
                messages: 0,
                inline_bodies: 0,
            };
            let ran = job.run(&mut ctx);
            if ran == Ran::Ok {
                if savepoint {
                    exec(conn, "RELEASE job")?;
                }
                kept += 1;
                changes.append(&mut ctx.changes);
                messages += ctx.messages;
                inline_bodies += ctx.inline_bodies;
            } else if savepoint {
                exec(conn, "ROLLBACK TO job")?;
                exec(conn, "RELEASE job")?;
            } else if kept == 0 {
                // Some errors end the transaction themselves.
                if !conn.is_autocommit() {
                    exec(conn, "ROLLBACK")?;
                }
                exec(conn, "BEGIN IMMEDIATE")?;
            } else if ran == Ran::Panicked || conn.is_autocommit() {
                // Nothing vouches for what a panic left, and a transaction
                // SQLite ended took the kept jobs' writes with it.
                return Err(Error::Database(
                    "a write job without a savepoint failed midway; its batch is rolled back"
                        .into(),
                ));
            }
            // Otherwise what the failed job left is harmless (`Undo::NotNeeded`).
        }
        exec(conn, "COMMIT")
    })();
    if let Err(e) = ran {
        if !conn.is_autocommit() {
            let _ = exec(conn, "ROLLBACK");
        }
        return Err(e);
    }
    counters.commit(batch.len());
    counters.messages(messages);
    counters.inline_bodies(inline_bodies);
    Ok(changes)
}

/// Runs one statement of the batch's frame (`BEGIN`, `SAVEPOINT`...) from
/// the statement cache rather than parsing it again each time.
fn exec(conn: &Connection, sql: &str) -> Result<()> {
    conn.prepare_cached(sql).db()?.execute([]).db()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job and where its answer comes.
    type Queued = (Box<dyn Job>, mpsc::Receiver<Result<()>>);

    /// A job as [`Committer::write`] makes it, and where its answer comes.
    fn job(undo: Undo, f: impl FnOnce(&mut WriteCtx<'_>) -> Result<()> + Send + 'static) -> Queued {
        job_with(undo, Durability::AtCommit, f)
    }

    fn job_with(
        undo: Undo,
        durability: Durability,
        f: impl FnOnce(&mut WriteCtx<'_>) -> Result<()> + Send + 'static,
    ) -> Queued {
        let (reply, answer) = mpsc::sync_channel(1);
        let job = Box::new(Typed {
            f: Some(f),
            undo,
            durability,
            result: None,
            reply: Box::new(move |result| {
                let _ = reply.send(result);
            }),
        });
        (job, answer)
    }

    /// Inserts `n`, then fails if `fail`.
    fn insert(n: i64, fail: bool) -> impl FnOnce(&mut WriteCtx<'_>) -> Result<()> + Send {
        move |ctx| {
            ctx.conn.execute("INSERT INTO t(n) VALUES (?1)", [n]).db()?;
            if fail {
                return Err(Error::Database(format!("job {n} fails")));
            }
            Ok(())
        }
    }

    /// Runs one batch of `jobs` as the committer does; returns the answers.
    fn batch(conn: &Connection, jobs: Vec<Queued>) -> Vec<bool> {
        let (mut jobs, answers): (Vec<_>, Vec<_>) = jobs.into_iter().unzip();
        let outcome = commit_batch(conn, &mut jobs, &Counters::default()).map(|_| ());
        for job in jobs {
            job.finish(outcome.as_ref().map(|_| ()));
        }
        answers.iter().map(|a| a.recv().unwrap().is_ok()).collect()
    }

    fn rows(conn: &Connection) -> Vec<i64> {
        let mut statement = conn.prepare("SELECT n FROM t ORDER BY n").unwrap();
        statement
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    fn database() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("t.db")).unwrap();
        conn.execute_batch("CREATE TABLE t(n INTEGER PRIMARY KEY)")
            .unwrap();
        (dir, conn)
    }

    #[test]
    fn a_failed_job_leaves_what_its_undo_says() {
        let (_dir, conn) = database();
        let answers = batch(
            &conn,
            vec![
                // First in the transaction: no savepoint, yet undone alone.
                job(Undo::Savepoint, insert(1, true)),
                job(Undo::Savepoint, insert(2, false)),
                job(Undo::Savepoint, insert(3, true)),
                job(Undo::NotNeeded, insert(4, true)),
                job(Undo::NotNeeded, insert(5, false)),
            ],
        );
        assert_eq!(answers, [false, true, false, false, true]);
        // 4 failed after its insert, which it declared harmless.
        assert_eq!(rows(&conn), [2, 4, 5]);
        assert!(conn.is_autocommit(), "the batch committed");
    }

    #[test]
    fn a_job_without_savepoint_that_panics_fails_its_batch() {
        let (_dir, conn) = database();
        let answers = batch(
            &conn,
            vec![
                job(Undo::Savepoint, insert(1, false)),
                job(Undo::NotNeeded, |ctx| {
                    insert(2, false)(ctx)?;
                    panic!("job 2 panics after its insert");
                }),
                job(Undo::Savepoint, insert(3, false)),
            ],
        );
        assert_eq!(answers, [false, false, false]);
        assert_eq!(rows(&conn), Vec::<i64>::new());
        // The next batch starts afresh.
        assert_eq!(
            batch(&conn, vec![job(Undo::NotNeeded, insert(4, false))]),
            [true]
        );
        assert_eq!(rows(&conn), [4]);
    }

    /// When a batch may commit without an `fsync`: only when every job
    /// allows it, the delay is not zero, no earlier deferred commit is due
    /// and the last timed `fsync` did not fail.
    #[test]
    fn a_batch_defers_its_fsync_only_when_nothing_forbids_it() {
        let (dir, conn) = database();
        let deferred = || job_with(Undo::Savepoint, Durability::Deferred, insert(1, false)).0;
        let at_commit = || job(Undo::Savepoint, insert(1, false)).0;
        let delay = Duration::from_secs(60);
        let counters = Counters::default();

        let mut log = Log::new(&conn, delay);
        assert!(log.path.is_some(), "a file database has a log to sync");
        assert_eq!(
            log.durability(&[deferred(), deferred()]),
            Durability::Deferred
        );
        assert_eq!(
            log.durability(&[deferred(), at_commit()]),
            Durability::AtCommit
        );

        // A deferred commit waits for its fsync; a commit that fsyncs ends that.
        log.committed(Durability::Deferred, &counters);
        assert!(log.sync_due().is_some_and(|due| due > Instant::now()));
        assert_eq!(log.durability(&[deferred()]), Durability::Deferred);
        log.committed(Durability::AtCommit, &counters);
        assert_eq!(log.sync_due(), None);

        // Once the first unsynced commit is due, the next batch fsyncs.
        log.committed(Durability::Deferred, &counters);
        log.unsynced_since = Some(Instant::now() - delay);
        assert_eq!(log.durability(&[deferred()]), Durability::AtCommit);

        // A timed fsync that fails makes the next batch fsync, and is
        // tried again a delay later. (A path under a file cannot be opened.)
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"").unwrap();
        log.path = Some(file.join("t.db-wal"));
        log.sync(&counters);
        assert_eq!(counters.snapshot().checkpoint_errors, 1);
        assert!(log.sync_due().is_some_and(|due| due > Instant::now()));
        assert_eq!(log.durability(&[deferred()]), Durability::AtCommit);
        log.path = Some(dir.path().join("t.db-wal"));
        log.sync(&counters);
        assert_eq!(counters.snapshot().log_syncs, 1);
        assert_eq!(log.sync_due(), None);
        assert_eq!(log.durability(&[deferred()]), Durability::Deferred);

        // A zero delay defers nothing.
        let log = Log::new(&conn, Duration::ZERO);
        assert_eq!(log.durability(&[deferred()]), Durability::AtCommit);
        assert_eq!(counters.snapshot().deferred_commits, 2);
    }
}
