//! Mailboxes, messages, the change feed and the blob store.

mod common;

use std::time::{Duration, Instant};

use ironpost_store::{
    Change, Error, Flag, FlagOp, Flags, SpecialUse, Store, StoreConfig, SystemFlags, pop3_uidl,
};

fn flags(list: &[Flag]) -> Flags {
    list.iter().cloned().collect()
}

#[test]
fn mailbox_tree_rename_delete_subscribe() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path());
    let a = common::account(&store, "a@example.com");
    let m = store.create_mailbox(a.id, "Work/2024/Q1", None).unwrap();
    assert_eq!(m.name, "Work/2024/Q1");
    assert!(
        store.mailbox(a.id, "Work/2024").is_ok(),
        "parents are created"
    );
    assert!(matches!(
        store.create_mailbox(a.id, "work/../x//y", None),
        Err(Error::InvalidMailboxName { .. })
    ));
    assert!(matches!(
        store.create_mailbox(a.id, "Work", None),
        Err(Error::MailboxExists(_))
    ));
    let sub = store.subscribe(m.id);
    store.rename_mailbox(a.id, "Work", "Job").unwrap();
    assert_eq!(store.mailbox_by_id(m.id).unwrap().name, "Job/2024/Q1");
    assert_eq!(
        sub.try_recv(),
        Some(Change::Renamed {
            name: "Job/2024/Q1".into()
        })
    );
    assert!(matches!(
        store.delete_mailbox(a.id, "Job"),
        Err(Error::MailboxNotDeletable { .. })
    ));
    assert!(matches!(
        store.delete_mailbox(a.id, "inbox"),
        Err(Error::MailboxNotDeletable { .. })
    ));
    store.delete_mailbox(a.id, "Job/2024/Q1").unwrap();
    assert_eq!(sub.try_recv(), Some(Change::Deleted));
    store.set_subscribed(a.id, "Job", false).unwrap();
    assert!(!store.mailbox(a.id, "Job").unwrap().subscribed);
    store
        .set_special_use(a.id, "Job", Some(SpecialUse::Flagged))
        .unwrap();
    assert_eq!(
        store.mailbox(a.id, "Job").unwrap().special_use,
        Some(SpecialUse::Flagged)
    );

    // A deleted and re-created mailbox gets a new UIDVALIDITY.
    let before = store.mailbox(a.id, "Job/2024").unwrap().uidvalidity;
    store.delete_mailbox(a.id, "Job/2024").unwrap();
    let after = store
        .create_mailbox(a.id, "Job/2024", None)
        .unwrap()
        .uidvalidity;
    assert!(after > before);
}

#[test]
fn delimiter_is_configurable_and_fixed_at_creation() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path());
    config.delimiter = '.';
    config.password = ironpost_store::PasswordParams::insecure_fast();
    let store = Store::open(config).unwrap();
    let a = common::account(&store, "a@example.com");
    store.create_mailbox(a.id, "Lists.rust", None).unwrap();
    assert!(store.mailbox(a.id, "Lists").is_ok());
    drop(store);
    let store = common::open(dir.path());
    assert_eq!(store.delimiter(), '.');
}

#[test]
fn append_flags_expunge_and_the_feed() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path());
    let a = common::account(&store, "a@example.com");
    let inbox = store.mailbox(a.id, "INBOX").unwrap();
    let sub = store.subscribe(inbox.id);
    let (tx, rx) = std::sync::mpsc::channel();
    let _handle = store.subscribe_with(inbox.id, move |c| tx.send(c.clone()).is_ok());

    let one = store
        .append(inbox.id, b"one", Flags::new(), Some(1_000))
        .unwrap();
    let two = store
        .append(inbox.id, b"two!", flags(&[Flag::Seen]), None)
        .unwrap();
    assert_eq!((one.uid, two.uid), (1, 2));
    assert!(two.modseq > one.modseq);
    assert_eq!(one.uidvalidity, inbox.uidvalidity);
    let m = store.message(inbox.id, 1).unwrap();
    assert_eq!((m.size, m.internal_date), (3, 1_000));
    assert_eq!(store.read_message(inbox.id, 2).unwrap(), b"two!");

    let r = store
        .store_flags(
            inbox.id,
            &[1, 2, 99],
            FlagOp::Add,
            flags(&[Flag::Deleted, Flag::Keyword("$Junk".into())]),
            None,
        )
        .unwrap();
    assert_eq!(r.updated.len(), 2);
    assert!(r.updated.iter().all(|u| u.changed));
    // CONDSTORE: message 1 changed after modseq `one.modseq`.
    let r = store
        .store_flags(
            inbox.id,
            &[1],
            FlagOp::Remove,
            flags(&[Flag::Deleted]),
            Some(one.modseq),
        )
        .unwrap();
    assert_eq!(r.conflicts, [1]);
    // Unchanged flags take no modseq.
    let hm = store.mailbox_by_id(inbox.id).unwrap().highest_modseq;
    let r = store
        .store_flags(inbox.id, &[1], FlagOp::Add, flags(&[Flag::Deleted]), None)
        .unwrap();
    assert!(!r.updated[0].changed);
    assert_eq!(store.mailbox_by_id(inbox.id).unwrap().highest_modseq, hm);

    let status = store.mailbox_status(inbox.id).unwrap();
    assert_eq!(
        (status.messages, status.unseen, status.deleted, status.size),
        (2, 1, 2, 7)
    );
    assert_eq!(store.expunge(inbox.id, Some(&[2])).unwrap(), [2]);
    assert_eq!(store.expunge(inbox.id, None).unwrap(), [1]);
    assert!(store.messages(inbox.id).unwrap().is_empty());
    let three = store
        .append(inbox.id, b"three", Flags::new(), None)
        .unwrap();
    assert_eq!(three.uid, 3, "UIDs are never reused");

    let (changed, expunged) = store.changes_since(inbox.id, two.modseq).unwrap();
    assert_eq!(changed.len(), 1);
    assert_eq!(expunged, [1, 2]);

    let events = sub.drain();
    let kinds: Vec<&str> = events
        .iter()
        .map(|c| match c {
            Change::Appended { .. } => "append",
            Change::FlagsChanged { .. } => "flags",
            Change::Expunged { .. } => "expunge",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "append", "append", "flags", "flags", "expunge", "expunge", "append"
        ]
    );
    let modseqs: Vec<u64> = events
        .iter()
        .map(|c| match c {
            Change::Appended { modseq, .. }
            | Change::FlagsChanged { modseq, .. }
            | Change::Expunged { modseq, .. } => *modseq,
            _ => 0,
        })
        .collect();
    assert!(modseqs.windows(2).all(|w| w[0] < w[1]), "{modseqs:?}");
    assert_eq!(
        rx.try_iter().collect::<Vec<_>>(),
        events,
        "callback and channel agree"
    );
    assert_eq!(pop3_uidl(&inbox, 3), format!("{}.3", inbox.uidvalidity));
}

#[test]
fn messages_in_reads_uid_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path());
    let a = common::account(&store, "a@example.com");
    let inbox = store.mailbox(a.id, "INBOX").unwrap().id;
    for i in 1..=10u32 {
        store
            .append(inbox, format!("message {i}").as_bytes(), Flags::new(), None)
            .unwrap();
    }
    store
        .store_flags(inbox, &[3, 8], FlagOp::Add, flags(&[Flag::Deleted]), None)
        .unwrap();
    store.expunge(inbox, None).unwrap();
    let uids = |ranges: &[(u32, u32)]| -> Vec<u32> {
        store
            .messages_in(inbox, ranges)
            .unwrap()
            .iter()
            .map(|m| m.uid)
            .collect()
    };

    assert_eq!(uids(&[(2, 4), (7, 7), (9, u32::MAX)]), [2, 4, 7, 9, 10]);
    assert_eq!(uids(&[(1, u32::MAX)]), [1, 2, 4, 5, 6, 7, 9, 10]);
    assert_eq!(
        uids(&[(3, 3), (8, 8), (11, 20)]),
        [0u32; 0],
        "expunged, past UIDNEXT"
    );
    assert_eq!(uids(&[]), [0u32; 0]);
    assert_eq!(uids(&[(6, 4)]), [4, 5, 6], "5:3 is 3:5");
    assert_eq!(
        uids(&[(9, 10), (1, 2), (2, 5)]),
        [1, 2, 4, 5, 9, 10],
        "out of order and overlapping: still once each, in UID order"
    );

    // The rows are the ones `messages` and `message` give.
    let all = store.messages(inbox).unwrap();
    let some = store.messages_in(inbox, &[(5, 6)]).unwrap();
    assert_eq!(some, all[3..5]);
    assert_eq!(some[0], store.message(inbox, 5).unwrap());

    let gone = ironpost_store::MailboxId(inbox.0 + 1000);
    assert!(matches!(
        store.messages_in(gone, &[(1, 5)]),
        Err(Error::NoSuchMailbox(id)) if id == gone
    ));
    assert!(matches!(store.messages(gone), Err(Error::NoSuchMailbox(_))));
}

#[test]
fn the_index_lists_what_messages_gives() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path());
    let a = common::account(&store, "a@example.com");
    let inbox = store.mailbox(a.id, "INBOX").unwrap().id;
    let sets = [
        flags(&[]),
        flags(&[Flag::Seen]),
        flags(&[Flag::Draft, Flag::Keyword("$Forwarded".into())]),
        flags(&[
            Flag::Seen,
            Flag::Answered,
            Flag::Flagged,
            Flag::Deleted,
            Flag::Draft,
            Flag::Keyword("$Junk".into()),
            Flag::Keyword("work".into()),
        ]),
    ];
    for (i, set) in sets.iter().enumerate() {
        store
            .append(
                inbox,
                format!("message {i}").as_bytes(),
                set.clone(),
                Some(1_000 + i as i64),
            )
            .unwrap();
    }
    let (mailbox, index) = store.index(inbox).unwrap();
    assert_eq!(mailbox, store.mailbox_by_id(inbox).unwrap());
    let messages = store.messages(inbox).unwrap();
    assert_eq!(index.len(), sets.len());
    for ((entry, message), set) in index.iter().zip(&messages).zip(&sets) {
        assert_eq!(entry.uid, message.uid);
        assert_eq!(entry.modseq, message.modseq);
        assert_eq!(entry.internal_date, message.internal_date);
        assert_eq!(entry.size, message.size);
        assert_eq!(&entry.flags(), set);
        assert_eq!(
            SystemFlags::split(set),
            (entry.system, entry.keywords.clone())
        );
        assert_eq!(entry.flags(), message.flags);
        assert_eq!(
            entry.system.iter().count() + entry.keywords.len(),
            set.len()
        );
        assert_eq!(
            entry.system.is_empty(),
            set.iter().all(|f| matches!(f, Flag::Keyword(_)))
        );
        for flag in set {
            let system = !matches!(flag, Flag::Keyword(_));
            assert_eq!(entry.system.contains(flag), system, "{flag}");
            assert_eq!(entry.keywords.contains(flag), !system, "{flag}");
        }
    }
    let gone = ironpost_store::MailboxId(inbox.0 + 1000);
    assert!(matches!(store.index(gone), Err(Error::NoSuchMailbox(id)) if id == gone));
}

#[test]
fn feed_wakes_a_waiting_subscriber() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path());
    let a = common::account(&store, "a@example.com");
    let inbox = store.mailbox(a.id, "INBOX").unwrap();
    let sub = store.subscribe(inbox.id);
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || store.append(inbox.id, b"x", Flags::new(), None).unwrap())
    };
    let got = sub.recv_timeout(Duration::from_secs(10));
    writer.join().unwrap();
    assert!(matches!(got, Some(Change::Appended { uid: 1, .. })));
}

#[test]
fn copy_move_and_quota() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path());
    let a = common::account(&store, "a@example.com");
    let b = common::account(&store, "b@example.com");
    let inbox = store.mailbox(a.id, "INBOX").unwrap().id;
    let arch = store.mailbox(a.id, "Archive").unwrap().id;
    let b_inbox = store.mailbox(b.id, "INBOX").unwrap().id;
    store
        .append(inbox, b"12345", flags(&[Flag::Seen]), Some(7))
        .unwrap();
    store.append(inbox, b"123", Flags::new(), None).unwrap();
    assert_eq!(store.account("a@example.com").unwrap().used_bytes, 8);

    let c = store.copy_messages(inbox, &[1, 2, 42], arch).unwrap();
    assert_eq!(c.uids, [(1, 1), (2, 2)]);
    assert_eq!(store.account("a@example.com").unwrap().used_bytes, 16);
    let copied = store.message(arch, 1).unwrap();
    assert_eq!(
        (copied.internal_date, copied.flags.contains(&Flag::Seen)),
        (7, true)
    );
    assert_eq!(
        copied.blob,
        store.message(inbox, 1).unwrap().blob,
        "same blob"
    );
    assert_eq!(store.blob_refs(&copied.blob).unwrap(), 2);

    let mv = store.move_messages(arch, &[2], inbox).unwrap();
    assert_eq!(mv.uids, [(2, 3)]);
    assert_eq!(store.account("a@example.com").unwrap().used_bytes, 16);

    store.set_quota("b@example.com", 6).unwrap();
    let err = store.copy_messages(inbox, &[1, 2], b_inbox).unwrap_err();
    assert!(matches!(err, Error::QuotaExceeded { .. }), "{err}");
    store.copy_messages(inbox, &[1], b_inbox).unwrap();
    let results = store
        .deliver_bytes(b"zz", &[inbox, b_inbox], Flags::new(), None)
        .unwrap();
    assert!(results[0].is_ok());
    assert!(matches!(results[1], Err(Error::QuotaExceeded { .. })));
    assert_eq!(store.account("b@example.com").unwrap().used_bytes, 5);
    assert!(store.check().unwrap().is_clean());

    // Renaming INBOX moves its messages out.
    let renamed = store.rename_mailbox(a.id, "INBOX", "Old").unwrap();
    assert_eq!(store.messages(renamed.id).unwrap().len(), 4);
    assert!(store.messages(inbox).unwrap().is_empty());
}

#[test]
fn one_body_for_many_recipients_and_garbage_collection() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path());
    config.password = ironpost_store::PasswordParams::insecure_fast();
    config.blob_grace = Duration::ZERO;
    let store = Store::open(config).unwrap();
    store.add_domain("example.com").unwrap();
    let mut inboxes = Vec::new();
    for i in 0..50 {
        let a = common::account(&store, &format!("u{i}@example.com"));
        inboxes.push(store.mailbox(a.id, "INBOX").unwrap().id);
    }
    let body = vec![b'x'; 10_000];
    let id = store.blobs().write_bytes(&body).unwrap();
    let results = store.deliver(id, &inboxes, Flags::new(), None).unwrap();
    assert!(results.iter().all(Result::is_ok));
    let files = std::fs::read_dir(dir.path().join("blobs"))
        .unwrap()
        .flatten()
        .filter(|d| d.file_name() != "tmp")
        .map(|d| std::fs::read_dir(d.path()).unwrap().count())
        .sum::<usize>();
    assert_eq!(files, 1, "stored once");
    assert_eq!(store.blob_refs(&id).unwrap(), 50);

    // A held body survives collection; an unreferenced one goes.
    let held = store.blobs().write_bytes(b"spooled").unwrap();
    store.hold_blob(held).unwrap();
    let orphan = store.blobs().write_bytes(b"orphan").unwrap();
    for &mb in &inboxes {
        store
            .store_flags(mb, &[1], FlagOp::Add, flags(&[Flag::Deleted]), None)
            .unwrap();
        store.expunge(mb, None).unwrap();
    }
    let report = store.collect_garbage().unwrap();
    assert_eq!((report.blobs_removed, report.orphans_removed), (1, 1));
    assert!(matches!(
        store.blobs().open_file(&id),
        Err(Error::BlobMissing(_))
    ));
    assert!(matches!(
        store.blobs().open_file(&orphan),
        Err(Error::BlobMissing(_))
    ));
    assert!(store.blobs().open_file(&held).is_ok());
    store.release_blob(held).unwrap();
    assert_eq!(store.collect_garbage().unwrap().blobs_removed, 1);
}

#[test]
fn a_missing_or_corrupt_body_affects_only_its_message() {
    let dir = tempfile::tempdir().unwrap();
    // Every body in a file, to remove and truncate them.
    let store = common::open_with(dir.path(), |c| c.inline_body_max = 0);
    let a = common::account(&store, "a@example.com");
    let inbox = store.mailbox(a.id, "INBOX").unwrap().id;
    store.append(inbox, b"first", Flags::new(), None).unwrap();
    store.append(inbox, b"second", Flags::new(), None).unwrap();
    store.append(inbox, b"third", Flags::new(), None).unwrap();
    let m1 = store.message(inbox, 1).unwrap();
    let m3 = store.message(inbox, 3).unwrap();
    std::fs::remove_file(store.blobs().path(&m1.blob)).unwrap();
    std::fs::write(store.blobs().path(&m3.blob), b"thi").unwrap();
    assert!(matches!(
        store.read_message(inbox, 1),
        Err(Error::BlobMissing(_))
    ));
    assert!(matches!(
        store.read_message(inbox, 3),
        Err(Error::BlobCorrupt(_))
    ));
    assert_eq!(store.read_message(inbox, 2).unwrap(), b"second");
    assert_eq!(store.messages(inbox).unwrap().len(), 3);
    let report = store.check().unwrap();
    assert_eq!(report.missing.len(), 1);
    assert_eq!(report.wrong_size.len(), 1);
    // Writing keeps working.
    store.append(inbox, b"fourth", Flags::new(), None).unwrap();
}

/// A body kept inline whose bytes no longer match its row's size is
/// reported for that message alone when messages are read whole.
#[test]
fn a_corrupt_inline_body_affects_only_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path());
    let a = common::account(&store, "a@example.com");
    let inbox = store.mailbox(a.id, "INBOX").unwrap().id;
    store.append(inbox, b"first", Flags::new(), None).unwrap();
    store.append(inbox, b"second", Flags::new(), None).unwrap();
    let m1 = store.message(inbox, 1).unwrap();
    let raw = rusqlite::Connection::open(dir.path().join("store.db")).unwrap();
    raw.execute(
        "UPDATE blob_data SET data = X'6669' WHERE hash = ?1",
        [m1.blob.0.as_slice()],
    )
    .unwrap();
    let mut read = Vec::new();
    store
        .read_messages_in(inbox, &[(1, 2)], false, |uid, bytes| {
            read.push((uid, bytes));
            true
        })
        .unwrap();
    assert!(
        matches!(read[0], (1, Err(Error::BlobCorrupt(_)))),
        "{read:?}"
    );
    assert!(matches!(&read[1], (2, Ok(b)) if b == b"second"), "{read:?}");
}

#[test]
fn online_backup() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path());
    let a = common::account(&store, "a@example.com");
    let inbox = store.mailbox(a.id, "INBOX").unwrap().id;
    store.append(inbox, b"kept", Flags::new(), None).unwrap();
    let backup = tempfile::tempdir().unwrap();
    store
        .backup_database(&backup.path().join("store.db"))
        .unwrap();
    std::fs::create_dir_all(backup.path().join("blobs")).unwrap();
    let copy = common::open(backup.path());
    let a2 = copy.account("a@example.com").unwrap();
    assert_eq!(
        copy.messages(copy.mailbox(a2.id, "INBOX").unwrap().id)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        copy.schema_version().unwrap(),
        ironpost_store::SCHEMA_VERSION
    );
}

/// `read_messages_in` gives what `read_message` gives, inline and file
/// bodies alike, and with `header_only` the header up to its empty line.
#[test]
fn many_messages_read_through_one_statement() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path());
    let a = common::account(&store, "a@example.com");
    let inbox = store.mailbox(a.id, "INBOX").unwrap();
    let big = format!("Subject: big\r\n\r\n{}\r\n", "x".repeat(200_000));
    // Headers kept inline are read in chunks of 2 KiB: one whose empty line
    // straddles the first chunk's end, and one three chunks long.
    let straddling = format!("X-Pad: {}\r\n\r\nbody\r\n", "p".repeat(2048 - 9));
    let long = format!(
        "{}\r\n{}",
        "X-Long: 0123456789012345678901234567890123456789\r\n".repeat(130),
        "body ".repeat(3000)
    );
    let bodies: Vec<Vec<u8>> = vec![
        b"Subject: one\r\nFrom: a@b\r\n\r\nbody one\r\n".to_vec(),
        big.into_bytes(),
        b"Subject: lf only\n\nbody\n".to_vec(),
        b"\r\nno header at all\r\n".to_vec(),
        b"Subject: no body".to_vec(),
        straddling.clone().into_bytes(),
        long.clone().into_bytes(),
    ];
    let uids: Vec<u32> = bodies
        .iter()
        .map(|b| store.append(inbox.id, b, Flags::new(), None).unwrap().uid)
        .collect();
    // A gap: the second message is left out of the ranges.
    let ranges = [(uids[0], uids[0]), (uids[2], uids[6])];
    let mut whole = Vec::new();
    store
        .read_messages_in(inbox.id, &ranges, false, |uid, bytes| {
            whole.push((uid, bytes.unwrap()));
            true
        })
        .unwrap();
    let expected: Vec<(u32, Vec<u8>)> = [0, 2, 3, 4, 5, 6]
        .iter()
        .map(|&i| (uids[i], store.read_message(inbox.id, uids[i]).unwrap()))
        .collect();
    assert_eq!(whole, expected);
    let mut headers = Vec::new();
    store
        .read_messages_in(inbox.id, &[(uids[0], uids[6])], true, |uid, bytes| {
            headers.push((uid, bytes.unwrap()));
            true
        })
        .unwrap();
    let want: Vec<&[u8]> = vec![
        b"Subject: one\r\nFrom: a@b\r\n\r\n",
        b"Subject: big\r\n\r\n",
        b"Subject: lf only\n\n",
        b"\r\n",
        b"Subject: no body",
        &straddling.as_bytes()[..2050],
        &long.as_bytes()[..130 * 50 + 2],
    ];
    // Read again: now from the header cache, the same bytes.
    let mut again = Vec::new();
    store
        .read_messages_in(inbox.id, &[(uids[0], uids[6])], true, |uid, bytes| {
            again.push((uid, bytes.unwrap()));
            true
        })
        .unwrap();
    assert!(again == headers, "cached headers differ");
    let got: Vec<&[u8]> = headers.iter().map(|(_, h)| h.as_slice()).collect();
    let lengths = |v: &[&[u8]]| v.iter().map(|h| h.len()).collect::<Vec<_>>();
    assert!(
        got == want,
        "lengths {:?}, want {:?}",
        lengths(&got),
        lengths(&want)
    );
    // Returning false stops the reading.
    let mut seen = 0;
    store
        .read_messages_in(inbox.id, &[(1, u32::MAX)], true, |_, _| {
            seen += 1;
            false
        })
        .unwrap();
    assert_eq!(seen, 1);
}

/// `store_flags_then` and `expunge_then` answer through their callback once
/// the change is committed, after the change went out on the feed.
/// A flag change commits without an `fsync` of the WAL; the committer
/// `fsync`s it within the delay unless a write that `fsync`s comes first;
/// a delay of zero `fsync`s each one at its commit.
#[test]
fn flag_changes_are_synced_within_the_delay() {
    let dir = tempfile::tempdir().unwrap();
    let delay = Duration::from_millis(500);
    let store = common::open_with(dir.path(), |c| c.flag_sync_delay = delay);
    let a = common::account(&store, "a@example.com");
    let inbox = store.mailbox(a.id, "INBOX").unwrap().id;
    let body = b"Subject: x\r\n\r\nx\r\n";
    let uid = store.append(inbox, body, Flags::new(), None).unwrap().uid;
    let flag = |store: &Store, op| {
        store
            .store_flags(inbox, &[uid], op, flags(&[Flag::Flagged]), None)
            .unwrap()
    };

    let before = store.stats();
    flag(&store, FlagOp::Add);
    let now = store.stats().since(&before);
    assert_eq!((now.commits, now.deferred_commits), (1, 1));
    assert_eq!(now.fsyncs(), 0);
    let start = Instant::now();
    while store.stats().since(&before).log_syncs == 0 {
        assert!(start.elapsed() < Duration::from_secs(10), "never synced");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(store.stats().since(&before).fsyncs(), 1);

    // The append's fsync covers the flag change before it.
    let before = store.stats();
    flag(&store, FlagOp::Remove);
    store.append(inbox, body, Flags::new(), None).unwrap();
    std::thread::sleep(delay * 3);
    let now = store.stats().since(&before);
    assert_eq!(
        (now.commits, now.deferred_commits, now.log_syncs),
        (2, 1, 0)
    );
    drop(store);

    let store = common::open_with(dir.path(), |c| c.flag_sync_delay = Duration::ZERO);
    assert_eq!(store.message(inbox, uid).unwrap().flags, Flags::new());
    let before = store.stats();
    flag(&store, FlagOp::Add);
    let now = store.stats().since(&before);
    assert_eq!((now.commits, now.deferred_commits, now.fsyncs()), (1, 0, 1));
}

#[test]
fn flag_changes_can_be_answered_through_a_callback() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path());
    let a = common::account(&store, "a@example.com");
    let inbox = store.mailbox(a.id, "INBOX").unwrap();
    let uid = store
        .append(inbox.id, b"Subject: x\r\n\r\nx\r\n", Flags::new(), None)
        .unwrap()
        .uid;
    let feed = store.subscribe(inbox.id);
    let (tx, rx) = std::sync::mpsc::channel();
    store
        .store_flags_then(
            inbox.id,
            &[uid],
            FlagOp::Add,
            flags(&[Flag::Flagged]),
            None,
            move |r| {
                tx.send(r).unwrap();
            },
        )
        .unwrap();
    let result = rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
    assert_eq!(result.updated.len(), 1);
    assert!(result.updated[0].changed);
    assert_eq!(result.updated[0].flags, flags(&[Flag::Flagged]));
    // Published before the answer: already waiting in the subscription.
    match feed.recv_timeout(Duration::ZERO) {
        Some(Change::FlagsChanged {
            uid: u, flags: f, ..
        }) => {
            assert_eq!((u, f), (uid, flags(&[Flag::Flagged])));
        }
        other => panic!("expected the flag change, got {other:?}"),
    }
    assert_eq!(
        store.message(inbox.id, uid).unwrap().flags,
        flags(&[Flag::Flagged])
    );
    // And an expunge the same way.
    store
        .store_flags(inbox.id, &[uid], FlagOp::Add, flags(&[Flag::Deleted]), None)
        .unwrap();
    assert!(matches!(
        feed.recv_timeout(Duration::ZERO),
        Some(Change::FlagsChanged { .. })
    ));
    let (tx, rx) = std::sync::mpsc::channel();
    store
        .expunge_then(inbox.id, None, move |r| tx.send(r).unwrap())
        .unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap(),
        vec![uid]
    );
    assert!(matches!(
        feed.recv_timeout(Duration::ZERO),
        Some(Change::Expunged { uid: u, .. }) if u == uid
    ));
    assert!(store.messages(inbox.id).unwrap().is_empty());
}
