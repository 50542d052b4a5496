//! The checkpointer: copies the write-ahead log into the database on a thread
//! of its own, so that the committer thread only writes the log.
//!
//! SQLite's automatic checkpoint runs inside the `COMMIT` of whichever
//! connection crosses its threshold, which here is always the committer: it
//! took about a sixth of that thread's time at 32 writers. The write
//! connection has it turned off (`wal_autocheckpoint = 0`, see
//! [`crate::schema::configure_writer`]), and this thread runs a `PASSIVE`
//! checkpoint on its own connection after commits, at most every [`PAUSE`].
//! A passive checkpoint takes no lock a writer or a reader waits for: it
//! copies the frames no reader still needs, and what it cannot copy yet it
//! leaves for the next pass.
//!
//! # Why the log stays bounded
//!
//! Copying frames does not shorten the log. SQLite rewinds it (the next
//! commit writes from its start again) only when a write transaction
//! *begins* while every frame has been copied and no reader is on a snapshot
//! inside the log. Under a steady stream of batches the committer begins its
//! next transaction microseconds after the last commit, so a checkpoint on
//! another thread almost never finishes in that gap, and the log would grow
//! for ever. So once a pass finds the log at [`REWIND_FRAMES`] or more, it
//! asks the committer for a rewind ([`Checkpointer::take_rewind`]). Between
//! two batches, where it holds no transaction, the committer then runs a
//! `RESTART` checkpoint itself: it copies what this thread has not copied yet
//! (the frames of the last pause or so: this thread has done the rest),
//! waits at most [`REWIND_WAIT`] for readers still on an older snapshot, and
//! its next commit starts the log over. Nothing waits for a busy handler to
//! get the write lock, because the thread that holds it does the work.
//!
//! So the log reaches at most [`REWIND_FRAMES`] plus what is committed during
//! one pause, one pass and one batch, as long as no read lasts longer than
//! [`REWIND_WAIT`]. A longer read holds its snapshot, and no checkpoint of any
//! kind can copy past a snapshot in use, so the log grows while it lasts. The
//! committer then tries again after a back-off that doubles from 50 ms to
//! [`MAX_BACKOFF`] (so such a read costs the writers at most one
//! [`REWIND_WAIT`] per back-off), and the first pass after the reader lets go
//! finds everything copied and has the log rewound at the next batch.
//! `journal_size_limit` then cuts the file back to [`wal_size_limit`].
//!
//! # Durability
//!
//! Checkpoints change nothing about when a write is durable: a commit is
//! durable once its frames are in the log and the log is `fsync`ed
//! (`synchronous = FULL`), before `COMMIT` returns, whoever copies the frames
//! later. A checkpoint `fsync`s the log before it copies and the database
//! file before it records the frames as copied, and only frames recorded as
//! copied may be overwritten by a rewind. That order needs `synchronous` to
//! be `NORMAL` or `FULL` on the connection that checkpoints; every
//! connection of the store has `FULL` ([`crate::schema::configure`]).
//!
//! A failed checkpoint (this thread's or a rewind) fails no write: it is
//! counted ([`crate::Stats::checkpoint_errors`]) and tried again later. When
//! this thread's checkpoints fail, it asks the committer for rewinds instead,
//! so the log stays bounded as long as the committer's connection can
//! checkpoint.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::error::{DbResult, Error, Result};
use crate::stats::Counters;

/// The shortest time between two passes: a pass copies what the commits of
/// the pause wrote, and a page written by several of them is copied once.
/// At 32 writers of 1 KiB appends a pause of 50 ms took this thread 7 µs
/// per append against 17 µs at 10 ms and 30–45 µs at 2 ms (BENCHMARKS.md,
/// `## store`), and it does not lengthen a rewind: that is asked for right
/// after a pass, and copies only what was committed since.
const PAUSE: Duration = Duration::from_millis(50);

/// The log length (in frames, one page each) at which the committer is asked
/// to rewind the log: 16 MiB of 4 KiB pages.
const REWIND_FRAMES: i64 = 4096;

/// The longest a rewind waits for readers on an older snapshot. The
/// committer holds no transaction meanwhile, so this is the longest a rewind
/// delays the next batch.
const REWIND_WAIT: Duration = Duration::from_millis(10);

/// The first wait before a rewind that found readers in its way is tried
/// again (unless a pass finds the whole log copied first); it doubles at
/// every failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// The longest wait between two tries of a rewind that readers hold up.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// How long this thread waits after a failed pass.
const ERROR_PAUSE: Duration = Duration::from_millis(100);

/// `journal_size_limit` of the write connection, in bytes: at a rewind the
/// log file is cut back to this size when a reader made it grow longer.
/// Twice the rewind point, so that the usual cycle never cuts it (a file
/// that is overwritten in place is cheaper to `fsync` than one that grows).
pub(crate) fn wal_size_limit(page_size: i64) -> i64 {
    const WAL_HEADER: i64 = 32;
    const FRAME_HEADER: i64 = 24;
    WAL_HEADER + 2 * REWIND_FRAMES * (page_size + FRAME_HEADER)
}

/// What a pass asks of the committer (values of `Shared::rewind`).
const NO_REWIND: u8 = 0;
/// The log is long; rewind unless backing off.
const REWIND: u8 = 1;
/// The log is long and every frame has been copied (no reader is in the
/// way any more): rewind even when backing off.
const REWIND_NOW: u8 = 2;

/// What the committer and the checkpointer thread share.
#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    rewind: AtomicU8,
}

#[derive(Debug, Default)]
struct State {
    /// A commit happened since the last pass began.
    committed: bool,
    /// The thread waits for a commit (so a commit must wake it).
    idle: bool,
    stop: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned state is still valid.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The committer's handle on the checkpointer thread; dropping it stops the
/// thread (the committer drops it before its last `TRUNCATE` checkpoint).
#[derive(Debug)]
pub(crate) struct Checkpointer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// When a rewind that readers held up may be tried again.
    retry_at: Option<Instant>,
    backoff: Duration,
}

impl Checkpointer {
    /// Starts the thread on `conn`, a connection of its own to the database
    /// (with `synchronous = FULL`, see the module doc).
    pub(crate) fn start(conn: Connection, counters: Arc<Counters>) -> Result<Checkpointer> {
        // A connection opens the log at its first read; until then a
        // checkpoint on it does nothing and says so only with -1 frames.
        conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))
            .db()?;
        let shared = Arc::new(Shared::default());
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("store-ckpt".into())
                .spawn(move || run(&conn, &shared, &counters))
                .map_err(|e| Error::io("checkpointer thread", e))?
        };
        Ok(Checkpointer {
            shared,
            thread: Some(thread),
            retry_at: None,
            backoff: FIRST_BACKOFF,
        })
    }

    /// Tells the thread that a batch committed.
    pub(crate) fn committed(&self) {
        let mut state = self.shared.lock();
        state.committed = true;
        if state.idle {
            state.idle = false;
            self.shared.wake.notify_one();
        }
    }

    /// Whether the committer should rewind the log now (see the module doc);
    /// takes the request.
    pub(crate) fn take_rewind(&mut self) -> bool {
        let asked = self.shared.rewind.load(Ordering::Acquire);
        let wanted = match asked {
            NO_REWIND => false,
            REWIND_NOW => true,
            _ => self.retry_at.is_none_or(|at| Instant::now() >= at),
        };
        // A request changed meanwhile is taken at the next batch.
        wanted
            && self
                .shared
                .rewind
                .compare_exchange(asked, NO_REWIND, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// Records how the rewind [`Checkpointer::take_rewind`] asked for went:
    /// `done` when the log was wholly copied and no reader holds it, so the
    /// next commit starts it over.
    pub(crate) fn rewound(&mut self, done: bool) {
        if done {
            self.retry_at = None;
            self.backoff = FIRST_BACKOFF;
        } else {
            self.retry_at = Some(Instant::now() + self.backoff);
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The log after a checkpoint: `log` frames, `copied` of them in the
/// database, `busy` when it could not do all it was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WalState {
    pub(crate) busy: bool,
    pub(crate) log: i64,
    pub(crate) copied: i64,
}

/// Runs `PRAGMA wal_checkpoint(mode)` on `conn`. `busy` with -1 frames:
/// another connection was checkpointing (the committer's rewind and this
/// thread's pass exclude each other), and nothing was done. A connection
/// that is not in WAL mode checkpoints nothing either and says so only with
/// -1 frames: an error here.
pub(crate) fn checkpoint(conn: &Connection, mode: &str) -> Result<WalState> {
    let wal = conn
        .query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
            Ok(WalState {
                busy: r.get::<_, i64>(0)? != 0,
                log: r.get(1)?,
                copied: r.get(2)?,
            })
        })
        .db()?;
    if wal.log < 0 && !wal.busy {
        return Err(Error::Database("the checkpoint found no WAL".into()));
    }
    Ok(wal)
}

/// The committer's rewind: a `RESTART` checkpoint on the write connection,
/// outside any transaction, waiting at most [`REWIND_WAIT`] for readers.
/// Returns whether the log will start over at the next commit.
pub(crate) fn rewind(conn: &Connection, counters: &Counters) -> bool {
    let restore = conn.busy_timeout(REWIND_WAIT).is_ok();
    let result = checkpoint(conn, "RESTART");
    if restore {
        // The write connection's usual wait for other processes' locks.
        let _ = conn.busy_timeout(crate::schema::BUSY_TIMEOUT);
    }
    match result {
        Ok(wal) => {
            counters.rewind();
            !wal.busy
        }
        Err(_) => {
            counters.checkpoint_error();
            false
        }
    }
}

fn run(conn: &Connection, shared: &Shared, counters: &Counters) {
    loop {
        {
            let mut state = shared.lock();
            while !state.committed && !state.stop {
                state.idle = true;
                state = shared
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if state.stop {
                return;
            }
            state.committed = false;
        }
        let pause = if shared.rewind.load(Ordering::Acquire) == REWIND_NOW {
            // The committer rewinds after its next commit, copying the rest;
            // a pass now would only take the checkpoint lock from it.
            PAUSE
        } else {
            match checkpoint(conn, "PASSIVE") {
                // The committer is rewinding the log.
                Ok(wal) if wal.log < 0 => PAUSE,
                Ok(wal) => {
                    counters.checkpoint();
                    if wal.log >= REWIND_FRAMES {
                        let ask = if wal.copied == wal.log {
                            REWIND_NOW
                        } else {
                            REWIND
                        };
                        shared.rewind.store(ask, Ordering::Release);
                    }
                    PAUSE
                }
                Err(_) => {
                    counters.checkpoint_error();
                    // Let the committer's rewinds keep the log bounded.
                    shared.rewind.store(REWIND, Ordering::Release);
                    ERROR_PAUSE
                }
            }
        };
        let state = shared.lock();
        let (state, _) = shared
            .wake
            .wait_timeout_while(state, pause, |s| !s.stop)
            .unwrap_or_else(PoisonError::into_inner);
        if state.stop {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use rusqlite::{OpenFlags, params};

    use super::*;
    use crate::commit::{Committer, Durability, Undo};
    use crate::error::DbResult;
    use crate::feed::Feed;
    use crate::schema;

    /// A committer on a new database at `path` whose checkpointer works on
    /// the connection `open` gives.
    fn committer(
        path: &Path,
        open: impl FnOnce(&Path) -> Connection,
    ) -> (Committer, Arc<Counters>) {
        let mut conn = Connection::open(path).unwrap();
        schema::configure(&conn).unwrap();
        schema::migrate(&mut conn).unwrap();
        schema::configure_writer(&conn).unwrap();
        let checkpoint_conn = open(path);
        let counters = Arc::new(Counters::default());
        let committer = Committer::start(
            conn,
            checkpoint_conn,
            Arc::new(Feed::default()),
            counters.clone(),
            Duration::ZERO,
        )
        .unwrap();
        (committer, counters)
    }

    fn wal_len(path: &Path) -> u64 {
        std::fs::metadata(path.with_extension("db-wal")).map_or(0, |m| m.len())
    }

    #[test]
    fn a_failing_checkpointer_fails_no_write_and_loses_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        // A checkpointer connection that can read the database but never
        // write it: every checkpoint it tries fails.
        let (committer, counters) = committer(&path, |path| {
            let read_only = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .unwrap();
            schema::configure(&read_only).unwrap();
            read_only
        });
        committer
            .write(Undo::Savepoint, Durability::AtCommit, |ctx| {
                ctx.conn
                    .execute_batch("CREATE TABLE scratch(n INTEGER PRIMARY KEY, data BLOB)")
                    .db()
            })
            .unwrap();

        // Three times the rewind point in 16 KiB rows (4 pages and a bit each).
        const ROWS: i64 = 3 * REWIND_FRAMES / 4;
        let mut longest = 0;
        for n in 0..ROWS {
            committer
                .write(Undo::Savepoint, Durability::AtCommit, move |ctx| {
                    ctx.conn
                        .execute(
                            "INSERT INTO scratch(n, data) VALUES (?1, ?2)",
                            params![n, vec![n as u8; 16 * 1024]],
                        )
                        .db()
                })
                .unwrap();
            longest = longest.max(wal_len(&path));
        }
        let stats = counters.snapshot();
        assert_eq!(stats.checkpoints, 0, "no checkpoint of that thread worked");
        assert!(stats.checkpoint_errors > 0, "its failures are counted");
        assert!(
            stats.wal_rewinds > 0,
            "the committer rewound the log instead"
        );
        let limit = wal_size_limit(4096) as u64;
        assert!(
            longest <= limit,
            "the log reached {longest} bytes, over {limit}"
        );
        drop(committer);

        let conn = Connection::open(&path).unwrap();
        let mut statement = conn
            .prepare("SELECT n, data FROM scratch ORDER BY n")
            .unwrap();
        let rows: Vec<(i64, Vec<u8>)> = statement
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(rows.len() as i64, ROWS);
        for (i, (n, data)) in rows.into_iter().enumerate() {
            assert_eq!(n, i as i64);
            assert!(data == vec![n as u8; 16 * 1024], "row {n} has its bytes");
        }
    }
}
