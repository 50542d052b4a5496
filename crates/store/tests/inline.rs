//! Bodies of appended messages kept in the database (up to
//! `StoreConfig::inline_body_max`): read back, copied, moved, charged to the
//! quota, collected, checked, shared with a body stored before, and a body
//! over the threshold still in a file.

mod common;

use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;

use ironpost_store::{BlobId, Change, Error, Flag, FlagOp, Flags, Store};

/// The threshold these tests use (the default is larger; the code is the same).
const MAX: usize = 1024;

fn open(dir: &std::path::Path) -> Store {
    common::open_with(dir, |c| c.inline_body_max = MAX)
}

/// `len` bytes of every value, CR, LF and NUL included.
fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A reader that hands out a few bytes per call, as a network stream does.
struct Trickle<'a>(&'a [u8], usize);

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.1 = self.1 % 7 + 1;
        let n = self.1.min(buf.len()).min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

fn deleted() -> Flags {
    [Flag::Deleted].into_iter().collect()
}

#[test]
fn small_bodies_are_kept_inline_and_read_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = common::account(&store, "a@example.com");
    let inbox = store.mailbox(a.id, "INBOX").unwrap().id;
    let feed = store.subscribe(inbox);
    let before = store.stats();

    let sizes = [0, 1, 2, MAX - 1, MAX];
    let mut uids = Vec::new();
    for (i, &len) in sizes.iter().enumerate() {
        let body = bytes(len, i as u8);
        let appended = if i % 2 == 0 {
            store.append(inbox, &body, Flags::new(), Some(5)).unwrap()
        } else {
            let reader = Trickle(&body, 0);
            store
                .append_from(inbox, reader, Flags::new(), Some(5))
                .unwrap()
        };
        uids.push((appended.uid, body));
    }
    assert_eq!(common::blob_files(dir.path()), 0, "no file for any of them");
    let stats = store.stats().since(&before);
    assert_eq!(stats.inline_bodies, sizes.len() as u64);
    assert_eq!(stats.fs_syncs + stats.dir_fsyncs, 0, "no file syncs");
    assert_eq!(stats.commits, sizes.len() as u64);

    for (uid, body) in &uids {
        assert_eq!(&store.read_message(inbox, *uid).unwrap(), body);
        let m = store.message(inbox, *uid).unwrap();
        assert_eq!((m.size, m.blob), (body.len() as u64, BlobId::of(body)));
        assert_eq!(&store.read_body(&m.blob).unwrap(), body);
        let mut reader = store.open_message(inbox, *uid).unwrap();
        assert_eq!(reader.size(), body.len() as u64);
        let mut tail = Vec::new();
        let from = body.len().saturating_sub(3);
        reader.seek(SeekFrom::Start(from as u64)).unwrap();
        reader.read_to_end(&mut tail).unwrap();
        assert_eq!(tail, body[from..]);
    }
    let sizes_fed: Vec<u64> = feed
        .drain()
        .iter()
        .map(|c| match c {
            Change::Appended { size, .. } => *size,
            other => panic!("unexpected change {other:?}"),
        })
        .collect();
    assert_eq!(sizes_fed, sizes.map(|s| s as u64));
    let used: u64 = sizes.iter().map(|&s| s as u64).sum();
    assert_eq!(store.account("a@example.com").unwrap().used_bytes, used);
    assert!(store.check().unwrap().is_clean());

    // Reopened, the bodies are still there.
    drop(store);
    let store = open(dir.path());
    for (uid, body) in &uids {
        assert_eq!(&store.read_message(inbox, *uid).unwrap(), body);
    }
}

#[test]
fn a_body_over_the_threshold_goes_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = common::account(&store, "a@example.com");
    let inbox = store.mailbox(a.id, "INBOX").unwrap().id;
    let before = store.stats();
    let over = bytes(MAX + 1, 7);
    let much = bytes(10 * MAX + 5, 9);
    store.append(inbox, &over, Flags::new(), None).unwrap();
    // Streamed: the part read to decide, then the rest, make one file.
    store
        .append_from(inbox, Trickle(&much, 0), Flags::new(), None)
        .unwrap();
    store
        .deliver_bytes(&bytes(MAX + 2, 11), &[inbox], Flags::new(), None)
        .unwrap();
    let stats = store.stats().since(&before);
    assert_eq!(stats.inline_bodies, 0);
    assert!(stats.fs_syncs >= 2, "files are group-synced");
    assert_eq!(common::blob_files(dir.path()), 3);
    for (uid, body) in [(1, &over), (2, &much)] {
        let m = store.message(inbox, uid).unwrap();
        assert_eq!(m.blob, BlobId::of(body));
        assert_eq!(store.blobs().verify(&m.blob).unwrap(), body.len() as u64);
        assert_eq!(&store.read_message(inbox, uid).unwrap(), body);
    }

    // The default threshold, at its edge.
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path());
    let max = store.config().inline_body_max;
    assert_eq!(max, 64 * 1024);
    let a = common::account(&store, "a@example.com");
    let inbox = store.mailbox(a.id, "INBOX").unwrap().id;
    let at = bytes(max, 1);
    let above = bytes(max + 1, 2);
    store
        .append_from(inbox, Trickle(&at, 0), Flags::new(), None)
        .unwrap();
    assert_eq!(common::blob_files(dir.path()), 0);
    store
        .append_from(inbox, &above[..], Flags::new(), None)
        .unwrap();
    assert_eq!(common::blob_files(dir.path()), 1);
    assert!(store.blobs().path(&BlobId::of(&above)).is_file());
    assert_eq!(store.read_message(inbox, 1).unwrap(), at);
    assert_eq!(store.read_message(inbox, 2).unwrap(), above);
    assert!(store.check().unwrap().is_clean());
}

#[test]
fn a_failing_reader_appends_nothing() {
    struct Broken(usize);
    impl Read for Broken {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("connection reset"));
            }
            let n = self.0.min(buf.len());
            buf[..n].fill(b'x');
            self.0 -= n;
            Ok(n)
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = common::account(&store, "a@example.com");
    let inbox = store.mailbox(a.id, "INBOX").unwrap().id;
    // Before the threshold (inline path), and after it (file path).
    for broken_after in [10, 3 * MAX] {
        let err = store
            .append_from(inbox, Broken(broken_after), Flags::new(), None)
            .unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
    }
    assert!(store.messages(inbox).unwrap().is_empty());
    assert_eq!(common::blob_files(dir.path()), 0);
    assert_eq!(
        std::fs::read_dir(dir.path().join("blobs/tmp"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn inline_bodies_copy_move_and_quota() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = common::account(&store, "a@example.com");
    let b = common::account(&store, "b@example.com");
    let inbox = store.mailbox(a.id, "INBOX").unwrap().id;
    let arch = store.mailbox(a.id, "Archive").unwrap().id;
    let b_inbox = store.mailbox(b.id, "INBOX").unwrap().id;
    let one = bytes(300, 1);
    let two = bytes(500, 2);
    store
        .append(inbox, &one, [Flag::Seen].into_iter().collect(), Some(7))
        .unwrap();
    store.append(inbox, &two, Flags::new(), None).unwrap();
    let (id1, id2) = (BlobId::of(&one), BlobId::of(&two));

    let c = store.copy_messages(inbox, &[1, 2], arch).unwrap();
    assert_eq!(c.uids, [(1, 1), (2, 2)]);
    assert_eq!(store.read_message(arch, 1).unwrap(), one);
    assert_eq!(store.read_message(arch, 2).unwrap(), two);
    assert_eq!(store.message(arch, 1).unwrap().internal_date, 7);
    assert_eq!(store.blob_refs(&id1).unwrap(), 2);
    assert_eq!(store.account("a@example.com").unwrap().used_bytes, 1600);

    let mv = store.move_messages(arch, &[2], b_inbox).unwrap();
    assert_eq!(mv.uids, [(2, 1)]);
    assert_eq!(store.read_message(b_inbox, 1).unwrap(), two);
    assert_eq!(store.blob_refs(&id2).unwrap(), 2);
    assert_eq!(store.account("a@example.com").unwrap().used_bytes, 1100);
    assert_eq!(store.account("b@example.com").unwrap().used_bytes, 500);

    // Quota: a body that does not fit is refused and leaves no bytes behind.
    store.set_quota("b@example.com", 900).unwrap();
    let err = store.copy_messages(inbox, &[1, 2], b_inbox).unwrap_err();
    assert!(matches!(err, Error::QuotaExceeded { .. }), "{err}");
    let big = bytes(401, 3);
    let err = store.append(b_inbox, &big, Flags::new(), None).unwrap_err();
    assert!(matches!(err, Error::QuotaExceeded { .. }), "{err}");
    assert_eq!(store.blob_refs(&BlobId::of(&big)).unwrap(), 0);
    assert!(
        matches!(
            store.read_body(&BlobId::of(&big)),
            Err(Error::BlobMissing(_))
        ),
        "no row kept for a refused body"
    );
    let results = store
        .deliver_bytes(&big, &[inbox, b_inbox], Flags::new(), None)
        .unwrap();
    assert!(results[0].is_ok());
    assert!(matches!(results[1], Err(Error::QuotaExceeded { .. })));
    assert_eq!(store.blob_refs(&BlobId::of(&big)).unwrap(), 1);
    store
        .append(b_inbox, &bytes(400, 4), Flags::new(), None)
        .unwrap();
    assert_eq!(store.account("b@example.com").unwrap().used_bytes, 900);

    // Renaming INBOX moves inline messages too.
    let old = store.rename_mailbox(a.id, "INBOX", "Old").unwrap();
    assert_eq!(store.read_message(old.id, 1).unwrap(), one);
    assert_eq!(common::blob_files(dir.path()), 0);
    assert!(store.check().unwrap().is_clean());
}

#[test]
fn expunged_inline_bodies_are_collected() {
    let dir = tempfile::tempdir().unwrap();
    // The default grace period: it protects spooled files on their way to a
    // reference, which an inline body never is.
    let store = common::open_with(dir.path(), |c| {
        c.inline_body_max = MAX;
        c.blob_grace = Duration::from_secs(24 * 3600);
    });
    let a = common::account(&store, "a@example.com");
    let b = common::account(&store, "b@example.com");
    let boxes = [a.id, b.id].map(|acc| store.mailbox(acc, "INBOX").unwrap().id);
    let body = bytes(700, 5);
    let id = BlobId::of(&body);
    let kept = bytes(10, 6);
    let before = store.stats();
    let results = store
        .deliver_bytes(&body, &boxes, Flags::new(), None)
        .unwrap();
    assert!(results.iter().all(Result::is_ok));
    store.append(boxes[0], &kept, Flags::new(), None).unwrap();
    assert_eq!(store.stats().since(&before).inline_bodies, 2);
    assert_eq!(store.blob_refs(&id).unwrap(), 2);

    // One copy gone: the other keeps the body.
    store
        .store_flags(boxes[0], &[1], FlagOp::Add, deleted(), None)
        .unwrap();
    assert_eq!(store.expunge(boxes[0], None).unwrap(), [1]);
    assert_eq!(store.collect_garbage().unwrap().blobs_removed, 0);
    assert_eq!(store.read_message(boxes[1], 1).unwrap(), body);

    store.remove_messages(boxes[1], &[1]).unwrap();
    let gc = store.collect_garbage().unwrap();
    assert_eq!((gc.blobs_removed, gc.bytes_freed), (1, 700));
    assert!(matches!(store.read_body(&id), Err(Error::BlobMissing(_))));
    assert_eq!(store.read_message(boxes[0], 2).unwrap(), kept);
    assert!(store.check().unwrap().is_clean());
}

#[test]
fn an_appended_body_reuses_the_stored_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = common::account(&store, "a@example.com");
    let inbox = store.mailbox(a.id, "INBOX").unwrap().id;

    // Stored as a file first (spooled, delivered by reference), then
    // appended small: the file's row serves, no bytes go into the database.
    let body = bytes(100, 1);
    let file = store.blobs().write_bytes(&body).unwrap();
    store.deliver(file, &[inbox], Flags::new(), None).unwrap();
    let before = store.stats();
    store.append(inbox, &body, Flags::new(), None).unwrap();
    assert_eq!(store.stats().since(&before).inline_bodies, 0);
    assert_eq!(store.message(inbox, 2).unwrap().blob, file);
    assert_eq!(store.blob_refs(&file).unwrap(), 2);
    assert_eq!(common::blob_files(dir.path()), 1);
    std::fs::remove_file(store.blobs().path(&file)).unwrap();
    assert!(
        matches!(store.read_message(inbox, 2), Err(Error::BlobMissing(_))),
        "the appended message reads the file"
    );

    // A file row whose file is gone takes the bytes of the next append,
    // which repairs the messages that shared it.
    assert_eq!(store.check().unwrap().missing.len(), 2);
    store.append(inbox, &body, Flags::new(), None).unwrap();
    for uid in 1..=3 {
        assert_eq!(store.read_message(inbox, uid).unwrap(), body);
    }
    assert!(store.check().unwrap().is_clean());

    // Inline first, then the same bytes again, inline or delivered.
    let other = bytes(200, 2);
    store.append(inbox, &other, Flags::new(), None).unwrap();
    store
        .deliver_bytes(&other, &[inbox], Flags::new(), None)
        .unwrap();
    assert_eq!(store.blob_refs(&BlobId::of(&other)).unwrap(), 2);
    assert_eq!(common::blob_files(dir.path()), 0);
    assert_eq!(store.read_message(inbox, 5).unwrap(), other);
    assert!(store.check().unwrap().is_clean());
}
