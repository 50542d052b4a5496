//! The delivery queue: durable entries, exactly-once local delivery, and
//! body references shared with mailboxes.

mod common;

use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;

use common::{account, open};
use ironpost_store::{
    Error, Flags, LocalDelivery, MailboxId, NewQueueEntry, NewRecipient, PasswordParams, QueueId,
    RecipientState, Store, StoreConfig,
};

/// A store whose garbage collection takes bodies at once (no grace period).
fn open_eager_gc(dir: &std::path::Path) -> Store {
    let mut config = StoreConfig::new(dir);
    config.password = PasswordParams::insecure_fast();
    config.blob_grace = Duration::ZERO;
    Store::open(config).unwrap()
}

/// A copy into `mailbox` without a header prefix.
fn plain(mailbox: MailboxId) -> LocalDelivery {
    LocalDelivery::new(mailbox, "")
}

fn queue_one(store: &Store, body: &[u8], recipients: &[&str]) -> QueueId {
    let blob = store.blobs().write_bytes(body).unwrap();
    let mut entry = NewQueueEntry::new(
        blob,
        "sender@example.org",
        recipients.iter().map(|r| NewRecipient::new(*r)),
    );
    entry.client = "192.0.2.7".into();
    entry.mail_params = "BODY=8BITMIME".into();
    store.enqueue(entry).unwrap()
}

#[test]
fn an_entry_survives_a_restart_and_is_due_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let store = open(dir.path());
        queue_one(
            &store,
            b"Subject: a\r\n\r\nbody\r\n",
            &["a@example.com", "b@remote.example"],
        )
    };
    let store = open(dir.path());
    let entry = store.queue_entry(id).unwrap();
    assert_eq!(entry.sender, "sender@example.org");
    assert_eq!(entry.client, "192.0.2.7");
    assert_eq!(entry.mail_params, "BODY=8BITMIME");
    assert_eq!(entry.size, 20);
    assert_eq!(entry.attempts, 0);
    assert_eq!(
        entry
            .recipients
            .iter()
            .map(|r| r.address.as_str())
            .collect::<Vec<_>>(),
        ["a@example.com", "b@remote.example"]
    );
    assert!(
        entry
            .recipients
            .iter()
            .all(|r| r.state == RecipientState::Pending)
    );
    assert!(store.blobs().open_file(&entry.blob).is_ok());
    let due = store.queue_due(entry.created, 10).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(store.queue_entries().unwrap(), due);
}

#[test]
fn local_delivery_happens_once_per_recipient() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_eager_gc(dir.path());
    let alice = account(&store, "alice@example.com");
    let bob = account(&store, "bob@example.com");
    let id = queue_one(
        &store,
        b"Subject: hi\r\n\r\nhello\r\n",
        &["alice@example.com", "bob@example.com"],
    );
    let entry = store.queue_entry(id).unwrap();
    let inbox_a = store.mailbox(alice.id, "INBOX").unwrap().id;
    let inbox_b = store.mailbox(bob.id, "INBOX").unwrap().id;
    let (ra, rb) = (entry.recipients[0].id, entry.recipients[1].id);

    let results = store
        .deliver_from_queue(id, vec![(ra, vec![plain(inbox_a)])], Flags::new(), None)
        .unwrap();
    assert!(results[0].as_ref().unwrap()[0].is_ok());
    // A second run (say after a crash before the entry was finished) does
    // not deliver alice again, but delivers bob.
    let results = store
        .deliver_from_queue(
            id,
            vec![(ra, vec![plain(inbox_a)]), (rb, vec![plain(inbox_b)])],
            Flags::new(),
            None,
        )
        .unwrap();
    assert!(results[0].is_err());
    assert!(results[1].as_ref().unwrap()[0].is_ok());
    assert_eq!(store.messages(inbox_a).unwrap().len(), 1);
    assert_eq!(store.messages(inbox_b).unwrap().len(), 1);
    assert_eq!(
        store.read_message(inbox_a, 1).unwrap(),
        b"Subject: hi\r\n\r\nhello\r\n"
    );
    assert!(store.queue_entry(id).unwrap().pending().next().is_none());
    assert!(store.finish_queue_entry(id).unwrap());
    assert!(matches!(
        store.queue_entry(id),
        Err(Error::QueueEntryNotFound(_))
    ));
    // The body stays: the mailboxes still reference it.
    store.collect_garbage().unwrap();
    assert_eq!(
        store.read_message(inbox_b, 1).unwrap(),
        b"Subject: hi\r\n\r\nhello\r\n"
    );
}

#[test]
fn a_full_mailbox_leaves_its_recipient_pending() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let alice = account(&store, "alice@example.com");
    store.set_quota("alice@example.com", 10).unwrap();
    let id = queue_one(&store, &[b'x'; 100], &["alice@example.com"]);
    let entry = store.queue_entry(id).unwrap();
    let inbox = store.mailbox(alice.id, "INBOX").unwrap().id;
    let results = store
        .deliver_from_queue(
            id,
            vec![(entry.recipients[0].id, vec![plain(inbox)])],
            Flags::new(),
            None,
        )
        .unwrap();
    assert!(matches!(
        results[0].as_ref().unwrap()[0],
        Err(Error::QuotaExceeded { .. })
    ));
    assert_eq!(store.queue_entry(id).unwrap().pending().count(), 1);
    assert!(
        !store.finish_queue_entry(id).unwrap(),
        "a pending recipient keeps the entry"
    );
    store
        .set_recipient_results(
            id,
            vec![(
                entry.recipients[0].id,
                RecipientState::Failed,
                "552 5.2.2 over quota".into(),
            )],
        )
        .unwrap();
    let failed = &store.queue_entry(id).unwrap().recipients[0];
    assert_eq!(failed.state, RecipientState::Failed);
    assert_eq!(failed.last_reply, "552 5.2.2 over quota");
    assert!(store.finish_queue_entry(id).unwrap());
}

#[test]
fn deferral_counts_attempts_and_moves_the_due_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let id = queue_one(&store, b"x\r\n", &["b@remote.example"]);
    let created = store.queue_entry(id).unwrap().created;
    store.defer_queue_entry(id, created + 3600).unwrap();
    let entry = store.queue_entry(id).unwrap();
    assert_eq!((entry.attempts, entry.next_attempt), (1, created + 3600));
    assert!(store.queue_due(created + 3599, 10).unwrap().is_empty());
    assert_eq!(store.queue_due(created + 3600, 10).unwrap().len(), 1);
}

#[test]
fn removal_releases_the_body() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_eager_gc(dir.path());
    let id = queue_one(&store, b"only in the queue\r\n", &["b@remote.example"]);
    let blob = store.queue_entry(id).unwrap().blob;
    store.collect_garbage().unwrap();
    assert!(
        store.blobs().open_file(&blob).is_ok(),
        "a queued body is never collected"
    );
    store.remove_queue_entry(id).unwrap();
    store.collect_garbage().unwrap();
    assert!(
        store.blobs().open_file(&blob).is_err(),
        "an unreferenced body is collected"
    );
    assert!(matches!(
        store.remove_queue_entry(id),
        Err(Error::QueueEntryNotFound(_))
    ));
    assert!(matches!(
        store.defer_queue_entry(id, 0),
        Err(Error::QueueEntryNotFound(_))
    ));
}

#[test]
fn one_body_serves_many_entries() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_eager_gc(dir.path());
    let a = queue_one(&store, b"same\r\n", &["x@remote.example"]);
    let b = queue_one(&store, b"same\r\n", &["y@remote.example"]);
    let blob = store.queue_entry(a).unwrap().blob;
    assert_eq!(store.queue_entry(b).unwrap().blob, blob);
    store.remove_queue_entry(a).unwrap();
    store.collect_garbage().unwrap();
    assert!(
        store.blobs().open_file(&blob).is_ok(),
        "still held by the other entry"
    );
}

#[test]
fn a_list_recipient_is_delivered_to_every_member_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = account(&store, "a@example.com");
    let b = account(&store, "b@example.com");
    store.set_quota("b@example.com", 5).unwrap();
    let id = queue_one(
        &store,
        b"Subject: list\r\n\r\nhello all\r\n",
        &["team@example.com"],
    );
    let recipient = store.queue_entry(id).unwrap().recipients[0].id;
    let inbox_a = store.mailbox(a.id, "INBOX").unwrap().id;
    let inbox_b = store.mailbox(b.id, "INBOX").unwrap().id;
    let results = store
        .deliver_from_queue(
            id,
            vec![(recipient, vec![plain(inbox_a), plain(inbox_b)])],
            Flags::new(),
            None,
        )
        .unwrap();
    let each = results[0].as_ref().unwrap();
    assert!(each[0].is_ok());
    assert!(matches!(each[1], Err(Error::QuotaExceeded { .. })));
    // One member took it: the recipient is done, and a retry adds nothing.
    assert!(store.queue_entry(id).unwrap().pending().next().is_none());
    let again = store
        .deliver_from_queue(
            id,
            vec![(recipient, vec![plain(inbox_a), plain(inbox_b)])],
            Flags::new(),
            None,
        )
        .unwrap();
    assert!(again[0].is_err());
    assert_eq!(store.messages(inbox_a).unwrap().len(), 1);
}

#[test]
fn remote_expansions_join_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let id = queue_one(&store, b"x\r\n", &["alias@example.com"]);
    let added = store
        .add_queue_recipients(id, vec![NewRecipient::new("far@remote.example")])
        .unwrap();
    let entry = store.queue_entry(id).unwrap();
    assert_eq!(entry.recipients.len(), 2);
    assert_eq!(entry.recipients[1].id, added[0]);
    assert_eq!(entry.recipients[1].address, "far@remote.example");
    assert_eq!(entry.recipients[1].state, RecipientState::Pending);
}

const BODY: &[u8] = b"From: s@example.org\r\nSubject: hi\r\n\r\nhello\r\n";

/// Queues `BODY` to `recipients` and delivers recipient `i` into the INBOX
/// of `accounts[i]` with the header `Delivered-To: <accounts[i]>`.
fn deliver_with_prefixes(store: &Store, accounts: &[&str]) -> Vec<MailboxId> {
    let id = queue_one(store, BODY, accounts);
    let entry = store.queue_entry(id).unwrap();
    let mut inboxes = Vec::new();
    let mut deliveries = Vec::new();
    for (address, recipient) in accounts.iter().zip(&entry.recipients) {
        let account = store.account(address).unwrap();
        let inbox = store.mailbox(account.id, "INBOX").unwrap().id;
        let prefix = format!("Delivered-To: {address}\r\n");
        deliveries.push((recipient.id, vec![LocalDelivery::new(inbox, prefix)]));
        inboxes.push(inbox);
    }
    let results = store
        .deliver_from_queue(id, deliveries, Flags::new(), None)
        .unwrap();
    for result in results {
        assert!(result.unwrap()[0].is_ok());
    }
    inboxes
}

fn with_prefix(address: &str, body: &[u8]) -> Vec<u8> {
    [format!("Delivered-To: {address}\r\n").as_bytes(), body].concat()
}

#[test]
fn a_prefix_is_read_before_the_body_and_counts_in_size_and_quota() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let alice = account(&store, "alice@example.com");
    let inbox = deliver_with_prefixes(&store, &["alice@example.com"])[0];
    let expected = with_prefix("alice@example.com", BODY);
    let prefix_len = expected.len() - BODY.len();

    assert_eq!(store.read_message(inbox, 1).unwrap(), expected);
    let m = store.message(inbox, 1).unwrap();
    assert_eq!(m.size, expected.len() as u64);
    assert_eq!(m.prefix_len, prefix_len as u64);
    assert_eq!(store.blobs().size(&m.blob).unwrap(), BODY.len() as u64);
    assert_eq!(store.messages(inbox).unwrap(), std::slice::from_ref(&m));
    assert_eq!(
        store.account_by_id(alice.id).unwrap().used_bytes,
        expected.len() as u64
    );
    assert_eq!(
        store.mailbox_status(inbox).unwrap().size,
        expected.len() as u64
    );

    // The reader: the prefix, then the body; seeking crosses the boundary.
    let mut reader = store.open_message(inbox, 1).unwrap();
    assert_eq!(reader.size(), m.size);
    assert_eq!(reader.prefix(), &expected[..prefix_len]);
    reader.seek(SeekFrom::Start(prefix_len as u64)).unwrap();
    let mut body = Vec::new();
    reader.read_to_end(&mut body).unwrap();
    assert_eq!(body, BODY);
    reader.seek(SeekFrom::Start(3)).unwrap();
    let mut three = [0u8; 3];
    reader.read_exact(&mut three).unwrap();
    assert_eq!(&three, b"ive");

    // The quota is checked against prefix plus body: one octet short of
    // both refuses the copy, though the body alone would fit.
    let bob = account(&store, "bob@example.com");
    let bob_size = with_prefix("bob@example.com", BODY).len() as u64;
    store.set_quota("bob@example.com", bob_size - 1).unwrap();
    let id = queue_one(&store, BODY, &["bob@example.com"]);
    let recipient = store.queue_entry(id).unwrap().recipients[0].id;
    let bob_inbox = store.mailbox(bob.id, "INBOX").unwrap().id;
    let copy = LocalDelivery::new(bob_inbox, "Delivered-To: bob@example.com\r\n");
    let results = store
        .deliver_from_queue(
            id,
            vec![(recipient, vec![copy.clone()])],
            Flags::new(),
            None,
        )
        .unwrap();
    match &results[0].as_ref().unwrap()[0] {
        Err(Error::QuotaExceeded { needed, .. }) => assert_eq!(*needed, bob_size),
        other => panic!("expected a quota refusal, got {other:?}"),
    }
    store.set_quota("bob@example.com", bob_size).unwrap();
    let results = store
        .deliver_from_queue(id, vec![(recipient, vec![copy])], Flags::new(), None)
        .unwrap();
    assert!(results[0].as_ref().unwrap()[0].is_ok());
    assert_eq!(store.account_by_id(bob.id).unwrap().used_bytes, bob_size);
    assert!(store.check().unwrap().is_clean());
}

#[test]
fn recipients_of_one_body_each_read_their_own_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    account(&store, "alice@example.com");
    account(&store, "bob@example.com");
    let inboxes = deliver_with_prefixes(&store, &["alice@example.com", "bob@example.com"]);
    assert_eq!(
        store.read_message(inboxes[0], 1).unwrap(),
        with_prefix("alice@example.com", BODY)
    );
    assert_eq!(
        store.read_message(inboxes[1], 1).unwrap(),
        with_prefix("bob@example.com", BODY)
    );
    let a = store.message(inboxes[0], 1).unwrap();
    let b = store.message(inboxes[1], 1).unwrap();
    assert_eq!(a.blob, b.blob, "one body");
    assert_eq!(common::blob_files(dir.path()), 1, "stored once");
    assert_eq!(
        store.blob_refs(&a.blob).unwrap(),
        3,
        "two messages and the queue entry"
    );
}

#[test]
fn copy_move_and_rename_keep_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let alice = account(&store, "alice@example.com");
    let bob = account(&store, "bob@example.com");
    let inbox = deliver_with_prefixes(&store, &["alice@example.com"])[0];
    let expected = with_prefix("alice@example.com", BODY);
    let size = expected.len() as u64;
    let archive = store.mailbox(alice.id, "Archive").unwrap().id;
    let bob_inbox = store.mailbox(bob.id, "INBOX").unwrap().id;

    let copied = store.copy_messages(inbox, &[1], archive).unwrap();
    let (_, uid) = copied.uids[0];
    assert_eq!(store.read_message(archive, uid).unwrap(), expected);
    assert_eq!(store.message(archive, uid).unwrap().size, size);
    assert_eq!(store.account_by_id(alice.id).unwrap().used_bytes, 2 * size);

    // To another account: the prefix goes along, and so does its quota.
    let moved = store.move_messages(archive, &[uid], bob_inbox).unwrap();
    let (_, bob_uid) = moved.uids[0];
    assert_eq!(store.read_message(bob_inbox, bob_uid).unwrap(), expected);
    assert_eq!(store.account_by_id(alice.id).unwrap().used_bytes, size);
    assert_eq!(store.account_by_id(bob.id).unwrap().used_bytes, size);

    // Renaming INBOX moves its messages into a new mailbox.
    let old = store.rename_mailbox(alice.id, "INBOX", "Old").unwrap();
    assert_eq!(store.read_message(old.id, 1).unwrap(), expected);
    assert_eq!(store.account_by_id(alice.id).unwrap().used_bytes, size);
    assert!(store.check().unwrap().is_clean());

    // Expunging gives back prefix and body.
    store.remove_messages(old.id, &[1]).unwrap();
    store.remove_messages(bob_inbox, &[bob_uid]).unwrap();
    assert_eq!(store.account_by_id(alice.id).unwrap().used_bytes, 0);
    assert_eq!(store.account_by_id(bob.id).unwrap().used_bytes, 0);
    assert_eq!(common::blob_files(dir.path()), 1);
}

#[test]
fn a_prefix_that_is_not_whole_header_lines_is_refused_for_its_copy_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let alice = account(&store, "alice@example.com");
    let inbox = store.mailbox(alice.id, "INBOX").unwrap().id;
    let id = queue_one(&store, BODY, &["alice@example.com"]);
    let recipient = store.queue_entry(id).unwrap().recipients[0].id;
    let bad: [&[u8]; 6] = [
        b"X-A: 1",
        b"\r\n",
        b"X-A: 1\r\n\r\n",
        b"X-A: 1\nX-B: 2\r\n",
        b"X-A: 1\rX-B: 2\r\n",
        b" folded\r\n",
    ];
    let mut copies: Vec<LocalDelivery> = bad
        .iter()
        .map(|p| LocalDelivery::new(inbox, p.to_vec()))
        .collect();
    copies.push(LocalDelivery::new(inbox, "X-A: 1\r\n folded\r\nX-B: 2\r\n"));
    let results = store
        .deliver_from_queue(id, vec![(recipient, copies)], Flags::new(), None)
        .unwrap();
    let each = results[0].as_ref().unwrap();
    for (prefix, result) in bad.iter().zip(each) {
        assert!(
            matches!(result, Err(Error::InvalidPrefix { .. })),
            "{:?}: {result:?}",
            String::from_utf8_lossy(prefix)
        );
    }
    assert!(each[bad.len()].is_ok());
    assert_eq!(
        store.read_message(inbox, 1).unwrap(),
        [&b"X-A: 1\r\n folded\r\nX-B: 2\r\n"[..], BODY].concat()
    );
    assert_eq!(store.messages(inbox).unwrap().len(), 1);
}

#[test]
fn queue_ids_are_never_given_twice() {
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let store = open_eager_gc(dir.path());
        let id = queue_one(&store, b"one", &["a@example.com"]);
        store.remove_queue_entry(id).unwrap();
        id
    };
    // Not after the entry is gone, nor across a restart.
    let store = open_eager_gc(dir.path());
    let second = queue_one(&store, b"two", &["a@example.com"]);
    assert!(second.0 > first.0, "{first} then {second}");
}

#[test]
fn settling_the_local_pass_records_results_queues_the_notice_and_ends_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_eager_gc(dir.path());
    let id = queue_one(&store, b"body", &["gone@example.com", "far@remote.example"]);
    let entry = store.queue_entry(id).unwrap();
    let created = entry.created;
    assert_eq!(store.queue_local_due(created, 10).unwrap().len(), 1);
    let notice_blob = store
        .blobs()
        .write_bytes(b"Subject: failed\r\n\r\n")
        .unwrap();
    let notice = NewQueueEntry::new(notice_blob, "", [NewRecipient::new("a@example.com")]);
    let failed = (
        entry.recipients[0].id,
        RecipientState::Failed,
        "550 5.1.1 unknown user".to_string(),
    );
    let end = store
        .settle_local_pass(id, vec![failed], Some(notice))
        .unwrap();
    // The remote recipient keeps the entry, set aside from the local pass.
    assert!(!end.removed);
    let notice = end.notification.expect("the notice is queued");
    assert!(
        store
            .queue_local_due(created, 10)
            .unwrap()
            .iter()
            .all(|e| e.id != id)
    );
    assert_eq!(store.queue_entry(notice).unwrap().sender, "");
    let entry = store.queue_entry(id).unwrap();
    assert_eq!(entry.recipients[0].state, RecipientState::Failed);
    assert_eq!(entry.pending().count(), 1);
    // Still waiting, for remote delivery.
    assert!(
        store
            .queue_due(created, 10)
            .unwrap()
            .iter()
            .any(|e| e.id == id)
    );
    assert!(
        store
            .settle_local_pass(QueueId(id.0 + 1000), Vec::new(), None)
            .is_err()
    );
}

#[test]
fn an_entry_left_with_nothing_pending_is_settled_away() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_eager_gc(dir.path());
    let alice = account(&store, "alice@example.com");
    let inbox = store.mailbox(alice.id, "INBOX").unwrap().id;
    let id = queue_one(&store, b"body", &["alice@example.com"]);
    let entry = store.queue_entry(id).unwrap();
    // A pass delivered, then the process died before settling.
    store
        .deliver_from_queue(
            id,
            vec![(entry.recipients[0].id, vec![plain(inbox)])],
            Flags::new(),
            None,
        )
        .unwrap();
    let due = store.queue_local_due(entry.created, 10).unwrap();
    assert_eq!(due.len(), 1, "the unsettled entry is due again");
    assert_eq!(due[0].pending().count(), 0);
    let end = store.settle_local_pass(id, Vec::new(), None).unwrap();
    assert!(end.removed);
    assert!(store.queue_entries().unwrap().is_empty());
}

#[test]
fn recipients_already_in_an_entry_are_not_added_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_eager_gc(dir.path());
    let id = queue_one(&store, b"body", &["far@remote.example"]);
    let added = store
        .add_queue_recipients(
            id,
            vec![
                NewRecipient::new("FAR@remote.example"),
                NewRecipient::new("other@remote.example"),
            ],
        )
        .unwrap();
    assert_eq!(added.len(), 1);
    let again = store
        .add_queue_recipients(id, vec![NewRecipient::new("other@remote.example")])
        .unwrap();
    assert!(again.is_empty());
    assert_eq!(store.queue_entry(id).unwrap().recipients.len(), 2);
}

/// Body files under `blobs/` (the `tmp` directory aside).
fn body_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("blobs"))
        .unwrap()
        .flatten()
        .filter(|d| d.file_name() != "tmp")
        .map(|d| std::fs::read_dir(d.path()).unwrap().count())
        .sum()
}

#[test]
fn an_inline_body_is_queued_delivered_and_collected_without_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_eager_gc(dir.path());
    let alice = account(&store, "alice@example.com");
    let bob = account(&store, "bob@example.com");
    let inboxes = [alice.id, bob.id].map(|a| store.mailbox(a, "INBOX").unwrap().id);
    let entry = NewQueueEntry::inline(
        BODY.to_vec(),
        "sender@example.org",
        [
            NewRecipient::new("alice@example.com"),
            NewRecipient::new("bob@example.com"),
        ],
    );
    let blob = entry.blob;
    let id = store.enqueue(entry).unwrap();
    assert_eq!(store.queue_entry(id).unwrap().size, BODY.len() as u64);
    assert_eq!(store.read_body(&blob).unwrap(), BODY);
    let recipients = store.queue_entry(id).unwrap().recipients;
    let deliveries = recipients
        .iter()
        .zip(inboxes)
        .zip(["alice", "bob"])
        .map(|((r, inbox), who)| {
            let prefix = format!("Delivered-To: {who}@example.com\r\n");
            (r.id, vec![LocalDelivery::new(inbox, prefix)])
        })
        .collect();
    store
        .deliver_from_queue(id, deliveries, Flags::new(), None)
        .unwrap();
    for (inbox, who) in inboxes.iter().zip(["alice", "bob"]) {
        let mut want = format!("Delivered-To: {who}@example.com\r\n").into_bytes();
        want.extend_from_slice(BODY);
        assert_eq!(store.read_message(*inbox, 1).unwrap(), want);
        let mut reader = store.open_message(*inbox, 1).unwrap();
        assert_eq!(reader.size(), want.len() as u64);
        let mut tail = Vec::new();
        reader.seek(SeekFrom::Start(want.len() as u64 - 6)).unwrap();
        reader.read_to_end(&mut tail).unwrap();
        assert_eq!(tail, b"hello\r\n"[1..]);
    }
    assert_eq!(body_files(dir.path()), 0);
    assert!(store.check().unwrap().is_clean());
    assert!(
        store
            .settle_local_pass(id, Vec::new(), None)
            .unwrap()
            .removed
    );
    for inbox in inboxes {
        store.remove_messages(inbox, &[1]).unwrap();
    }
    let gc = store.collect_garbage().unwrap();
    assert_eq!(gc.blobs_removed, 1);
    assert!(store.read_body(&blob).is_err());
}

#[test]
fn an_inline_body_that_is_already_a_file_uses_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_eager_gc(dir.path());
    let file = store.blobs().write_bytes(BODY).unwrap();
    let id = queue_one(&store, BODY, &["far@remote.example"]);
    let inline = NewQueueEntry::inline(BODY.to_vec(), "", [NewRecipient::new("x@remote.example")]);
    assert_eq!(inline.blob, file);
    let second = store.enqueue(inline).unwrap();
    assert_eq!(store.read_body(&file).unwrap(), BODY);
    assert_eq!(store.blob_refs(&file).unwrap(), 2);
    assert_ne!(id, second);
    assert_eq!(body_files(dir.path()), 1);
}
