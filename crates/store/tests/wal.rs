//! The write-ahead log stays bounded. The committer writes the log and the
//! checkpointer thread copies it into the database; the log file must not
//! grow with the number of writes, also after a reader held an old snapshot
//! (which no checkpoint can copy past) for a while and let go.

mod common;

use std::path::Path;

use ironpost_store::{Flags, MailboxId, Store};
use rusqlite::Connection;

/// The log length at which the committer rewinds the log
/// (`checkpoint::REWIND_FRAMES`), in bytes of 4 KiB pages and their frame
/// headers.
const REWIND_POINT: u64 = 4096 * (4096 + 24);

/// The write connection's `journal_size_limit` (`checkpoint::wal_size_limit`):
/// the longest the file stays after a rewind.
const SIZE_LIMIT: u64 = 32 + 2 * REWIND_POINT;

/// Bodies kept inline (in the log with their commit), 13 pages each.
const BODY: usize = 48 * 1024;

fn wal_len(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("store.db-wal")).map_or(0, |m| m.len())
}

/// Appends unique bodies until `bytes` of them were written; returns the
/// longest the log file was after any of them.
fn append(store: &Store, inbox: MailboxId, dir: &Path, next: &mut u32, bytes: u64) -> u64 {
    let mut longest = 0;
    for _ in 0..bytes.div_ceil(BODY as u64) {
        let mut body = format!("Subject: {next}\r\n\r\n").into_bytes();
        body.resize(BODY, b'x');
        store.append(inbox, &body, Flags::new(), None).unwrap();
        *next += 1;
        longest = longest.max(wal_len(dir));
    }
    longest
}

#[test]
fn the_log_stays_bounded_and_shrinks_back_after_a_long_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path());
    let account = common::account(&store, "wal@example.com");
    let inbox = store.mailbox(account.id, "INBOX").unwrap().id;
    let mut next = 0;

    // Three times the rewind point with nobody reading: the log is rewound
    // each time round instead of growing.
    let longest = append(&store, inbox, dir.path(), &mut next, 3 * REWIND_POINT);
    assert!(
        longest <= SIZE_LIMIT,
        "without readers the log reached {longest} bytes"
    );

    // A reader on a snapshot from before the next writes: nothing written
    // after it can be copied into the database while it lasts, so the log
    // has to grow past the limit. The writes go on all the same.
    let reader = Connection::open(dir.path().join("store.db")).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let before: i64 = reader
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    let held = append(&store, inbox, dir.path(), &mut next, 3 * REWIND_POINT);
    assert!(
        held > SIZE_LIMIT,
        "the reader held the log, which reached only {held} bytes"
    );
    let still: i64 = reader
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(still, before, "the reader kept its snapshot");

    // It lets go: a rewind point's worth of writes later the log has been
    // started over and its file cut back to the limit.
    reader.execute_batch("COMMIT").unwrap();
    append(&store, inbox, dir.path(), &mut next, 2 * REWIND_POINT);
    let after = wal_len(dir.path());
    assert!(
        after <= SIZE_LIMIT,
        "the log file is still {after} bytes after the reader let go"
    );

    // And it stays there.
    let longest = append(&store, inbox, dir.path(), &mut next, 3 * REWIND_POINT);
    assert!(
        longest <= SIZE_LIMIT,
        "after the long read the log reached {longest} bytes"
    );

    let stats = store.stats();
    assert!(stats.checkpoints > 0 && stats.wal_rewinds > 0, "{stats:?}");
    assert_eq!(stats.checkpoint_errors, 0);
    assert_eq!(stats.messages_written, u64::from(next));
    assert_eq!(store.messages(inbox).unwrap().len(), next as usize);
}
