//! The delivery queue: durable entries, exactly-once local delivery, and
//! body references shared with mailboxes.

mod common;

use std::time::Duration;

use common::{account, open};
use ironpost_store::{
    Error, Flags, NewQueueEntry, NewRecipient, PasswordParams, QueueId, RecipientState, Store,
    StoreConfig,
};

/// A store whose garbage collection takes bodies at once (no grace period).
fn open_eager_gc(dir: &std::path::Path) -> Store {
    let mut config = StoreConfig::new(dir);
    config.password = PasswordParams::insecure_fast();
    config.blob_grace = Duration::ZERO;
    Store::open(config).unwrap()
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
        .deliver_from_queue(id, vec![(ra, vec![inbox_a])], Flags::new(), None)
        .unwrap();
    assert!(results[0].as_ref().unwrap()[0].is_ok());
    // A second run (say after a crash before the entry was finished) does
    // not deliver alice again, but delivers bob.
    let results = store
        .deliver_from_queue(
            id,
            vec![(ra, vec![inbox_a]), (rb, vec![inbox_b])],
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
            vec![(entry.recipients[0].id, vec![inbox])],
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
            vec![(recipient, vec![inbox_a, inbox_b])],
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
            vec![(recipient, vec![inbox_a, inbox_b])],
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
