//! The group committer: one thread owns the write connection and runs every
//! write of the store.
//!
//! Callers (many threads) hand it jobs and block until their job's batch is
//! durable. The thread takes the first waiting job and every other job queued
//! behind it (up to [`MAX_BATCH`]), then:
//!
//! 1. `BEGIN IMMEDIATE`, runs each job inside its own `SAVEPOINT` (a failing
//!    job rolls back alone), `COMMIT` — one WAL `fsync` for the whole batch
//!    (`synchronous = FULL`);
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

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use rusqlite::Connection;

use crate::error::{DbResult, Error, Result};
use crate::feed::{Change, Feed};
use crate::stats::Counters;
use crate::types::MailboxId;

/// Most jobs in one transaction: bounds the latency a batch adds.
const MAX_BATCH: usize = 512;

/// What a write job sees: the connection, inside a savepoint of the batch's
/// transaction, and a place for the changes it makes.
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

trait Job: Send {
    /// Runs the job; false when it failed (its savepoint is rolled back).
    fn run(&mut self, ctx: &mut WriteCtx<'_>) -> bool;
    fn finish(self: Box<Self>, batch: Result<(), &Error>);
}

struct Typed<R, F> {
    f: Option<F>,
    result: Option<Result<R>>,
    reply: mpsc::SyncSender<Result<R>>,
}

impl<R, F> Job for Typed<R, F>
where
    R: Send,
    F: FnOnce(&mut WriteCtx<'_>) -> Result<R> + Send,
{
    fn run(&mut self, ctx: &mut WriteCtx<'_>) -> bool {
        let Some(f) = self.f.take() else {
            return false;
        };
        let result = catch_unwind(AssertUnwindSafe(|| f(ctx)))
            .unwrap_or_else(|_| Err(Error::Database("a write job panicked".into())));
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, batch: Result<(), &Error>) {
        let answer = match batch {
            Ok(()) => self
                .result
                .unwrap_or_else(|| Err(Error::Database("job did not run".into()))),
            Err(e) => Err(copy_error(e)),
        };
        let _ = self.reply.send(answer);
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
    pub(crate) fn start(
        conn: Connection,
        feed: Arc<Feed>,
        counters: Arc<Counters>,
    ) -> Result<Committer> {
        let (sender, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("ironpost-store-commit".into())
            .spawn(move || run(conn, rx, &feed, &counters))
            .map_err(|e| Error::io("committer thread", e))?;
        Ok(Committer {
            sender: Some(sender),
            thread: Some(thread),
        })
    }

    /// Runs `f` in the next batch and returns its result once the batch is
    /// durable.
    pub(crate) fn write<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<R> + Send + 'static,
    {
        let (reply, answer) = mpsc::sync_channel(1);
        let job: Box<dyn Job> = Box::new(Typed {
            f: Some(f),
            result: None,
            reply,
        });
        self.sender
            .as_ref()
            .ok_or(Error::Closed)?
            .send(job)
            .map_err(|_| Error::Closed)?;
        answer.recv().map_err(|_| Error::Closed)?
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

fn run(conn: Connection, rx: Receiver<Box<dyn Job>>, feed: &Feed, counters: &Counters) {
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
    }
    // Leave a small WAL behind for the next open.
    let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
}

fn commit_batch(
    conn: &Connection,
    batch: &mut [Box<dyn Job>],
    counters: &Counters,
) -> Result<Vec<(MailboxId, Change)>> {
    conn.execute_batch("BEGIN IMMEDIATE").db()?;
    let mut changes = Vec::new();
    let mut messages = 0;
    let mut inline_bodies = 0;
    let ran = (|| {
        for job in batch.iter_mut() {
            conn.execute_batch("SAVEPOINT job").db()?;
            let mut ctx = WriteCtx {
                conn,
                changes: Vec::new(),
                messages: 0,
                inline_bodies: 0,
            };
            if job.run(&mut ctx) {
                conn.execute_batch("RELEASE job").db()?;
                changes.append(&mut ctx.changes);
                messages += ctx.messages;
                inline_bodies += ctx.inline_bodies;
            } else {
                conn.execute_batch("ROLLBACK TO job; RELEASE job").db()?;
            }
        }
        conn.execute_batch("COMMIT").db()
    })();
    if let Err(e) = ran {
        let _ = conn.execute_batch("ROLLBACK");
        return Err(e);
    }
    counters.commit(batch.len());
    counters.messages(messages);
    counters.inline_bodies(inline_bodies);
    Ok(changes)
}
