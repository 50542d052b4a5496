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
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

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

/// How a job's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ran {
    Ok,
    Failed,
    Panicked,
}

trait Job: Send {
    fn undo(&self) -> Undo;
    /// Runs the job (its result is kept for [`Job::finish`]).
    fn run(&mut self, ctx: &mut WriteCtx<'_>) -> Ran;
    fn finish(self: Box<Self>, batch: Result<(), &Error>);
}

struct Typed<R, F> {
    f: Option<F>,
    undo: Undo,
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
    pub(crate) fn start(
        conn: Connection,
        checkpoint_conn: Connection,
        feed: Arc<Feed>,
        counters: Arc<Counters>,
    ) -> Result<Committer> {
        let checkpointer = Checkpointer::start(checkpoint_conn, counters.clone())?;
        let (sender, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("store-commit".into())
            .spawn(move || run(conn, checkpointer, rx, &feed, &counters))
            .map_err(|e| Error::io("committer thread", e))?;
        Ok(Committer {
            sender: Some(sender),
            thread: Some(thread),
        })
    }

    /// Runs `f` in the next batch and returns its result once the batch is
    /// durable; `undo` says how its writes are undone if it fails.
    pub(crate) fn write<R, F>(&self, undo: Undo, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<R> + Send + 'static,
    {
        let (reply, answer) = mpsc::sync_channel(1);
        self.submit(
            undo,
            f,
            Box::new(move |result| {
                let _ = reply.send(result);
            }),
        )?;
        answer.recv().map_err(|_| Error::Closed)?
    }

    /// Queues `f` for the next batch without waiting: `reply` gets its
    /// result on the committer thread once the batch is durable (after the
    /// batch's changes are published to the feed). `reply` must not block.
    /// Fails at once (and `reply` is dropped) when the store is closed.
    pub(crate) fn submit<R, F>(&self, undo: Undo, f: F, reply: Reply<R>) -> Result<()>
    where
        R: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<R> + Send + 'static,
    {
        let job: Box<dyn Job> = Box::new(Typed {
            f: Some(f),
            undo,
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
    rx: Receiver<Box<dyn Job>>,
    feed: &Feed,
    counters: &Counters,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        match commit_batch(&conn, &mut batch, counters) {
            Ok(changes) => {
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
    // one give up at once. Then leave a small WAL behind for the next open.
    drop(checkpointer);
    let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
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
        let (reply, answer) = mpsc::sync_channel(1);
        let job = Box::new(Typed {
            f: Some(f),
            undo,
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
}
