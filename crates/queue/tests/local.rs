//! Local delivery from the queue: every kind of local recipient, failures
//! bounced once, remote recipients left waiting, nothing delivered twice,
//! each copy with its own `Delivered-To:` over one stored body.

use std::path::Path;

use ironpost_mime::Message;
use ironpost_queue::deliver_due;
use ironpost_store::{
    DomainUpdate, Flags, ListMode, LocalDelivery, MailboxId, NewAccount, NewQueueEntry,
    NewRecipient, Password, PasswordParams, QueueId, Store, StoreConfig,
};

const BODY: &[u8] = b"From: sender@example.com\r\nSubject: hello\r\n\r\nHello there\r\n";

fn open(dir: &Path) -> Store {
    let mut config = StoreConfig::new(dir);
    config.password = PasswordParams::insecure_fast();
    Store::open(config).unwrap()
}

fn inbox(store: &Store, address: &str) -> MailboxId {
    let account = store.account(address).unwrap();
    store.mailbox(account.id, "INBOX").unwrap().id
}

fn setup(dir: &Path) -> Store {
    let store = open(dir);
    store.add_domain("example.com").unwrap();
    let plus = DomainUpdate {
        plus_separator: Some(Some('+')),
        ..DomainUpdate::default()
    };
    store.update_domain("example.com", plus).unwrap();
    for a in ["alice@example.com", "bob@example.com", "sender@example.com"] {
        store
            .add_account(NewAccount::new(a, Password::Plain("pw".into())))
            .unwrap();
    }
    store
        .add_alias("info@example.com", "alice@example.com")
        .unwrap();
    store
        .add_alias("outside@example.com", "far@remote.example")
        .unwrap();
    store
        .add_list("team@example.com", ListMode::Public, false)
        .unwrap();
    store
        .add_list_member("team@example.com", "alice@example.com")
        .unwrap();
    store
        .add_list_member("team@example.com", "bob@example.com")
        .unwrap();
    store
        .add_list_member("team@example.com", "friend@remote.example")
        .unwrap();
    store
}

fn enqueue(store: &Store, sender: &str, recipients: &[&str]) -> QueueId {
    let blob = store.blobs().write_bytes(BODY).unwrap();
    store
        .enqueue(NewQueueEntry::new(
            blob,
            sender,
            recipients.iter().map(|r| NewRecipient::new(*r)),
        ))
        .unwrap()
}

/// `BODY` as the account `address` reads it.
fn delivered(address: &str, body: &[u8]) -> Vec<u8> {
    [format!("Delivered-To: {address}\r\n").as_bytes(), body].concat()
}

/// The only message of `address`'s INBOX.
fn only_message(store: &Store, address: &str) -> Vec<u8> {
    let inbox = inbox(store, address);
    let messages = store.messages(inbox).unwrap();
    assert_eq!(messages.len(), 1, "{address}: {messages:?}");
    store.read_message(inbox, messages[0].uid).unwrap()
}

/// The number of body files in the store at `dir`.
fn blob_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("blobs"))
        .unwrap()
        .flatten()
        .filter(|d| d.file_name() != "tmp")
        .map(|d| std::fs::read_dir(d.path()).unwrap().count())
        .sum()
}

fn far_future() -> i64 {
    i64::MAX / 2
}

#[test]
fn every_kind_of_local_recipient_gets_the_message_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = setup(dir.path());
    let id = enqueue(
        &store,
        "sender@example.com",
        &[
            "alice@example.com",
            "info@example.com",
            "bob+news@example.com",
            "team@example.com",
            "someone@remote.example",
            "outside@example.com",
        ],
    );
    let report = deliver_due(&store, "mx.example.com", far_future(), 100).unwrap();
    assert_eq!(report.failed, 0);
    assert_eq!(report.bounces, 0);
    assert_eq!(report.remote, 1, "{report:?}");
    // alice is named directly, through info@ and through the list; bob by a
    // plus address and through the list: one copy each.
    assert_eq!(
        store
            .messages(inbox(&store, "alice@example.com"))
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .messages(inbox(&store, "bob@example.com"))
            .unwrap()
            .len(),
        1
    );
    // The account's own address, not the plus address it was reached by.
    assert_eq!(
        only_message(&store, "bob@example.com"),
        delivered("bob@example.com", BODY)
    );
    // The remote recipient and the remote expansions of the alias and the
    // list wait for outbound delivery; the entry stays.
    let entry = store.queue_entry(id).unwrap();
    let mut waiting: Vec<&str> = entry.pending().map(|r| r.address.as_str()).collect();
    waiting.sort_unstable();
    assert_eq!(
        waiting,
        [
            "far@remote.example",
            "friend@remote.example",
            "someone@remote.example"
        ]
    );
    // A second pass does not even look at the entry again.
    let again = deliver_due(&store, "mx.example.com", far_future(), 100).unwrap();
    assert_eq!((again.entries, again.delivered), (0, 0));
    assert_eq!(
        store
            .messages(inbox(&store, "alice@example.com"))
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn an_unknown_user_is_bounced_to_the_sender() {
    let dir = tempfile::tempdir().unwrap();
    let store = setup(dir.path());
    let id = enqueue(
        &store,
        "sender@example.com",
        &["nobody@example.com", "alice@example.com"],
    );
    let report = deliver_due(&store, "mx.example.com", far_future(), 100).unwrap();
    assert_eq!((report.delivered, report.failed, report.bounces), (1, 1, 1));
    // The entry is finished; the bounce is queued with the null sender...
    assert!(store.queue_entry(id).is_err());
    let bounces = store.queue_entries().unwrap();
    assert_eq!(bounces.len(), 1);
    assert_eq!(bounces[0].sender, "");
    assert_eq!(bounces[0].recipients[0].address, "sender@example.com");
    // ...and the next pass delivers it to the (local) sender.
    let next = deliver_due(&store, "mx.example.com", far_future(), 100).unwrap();
    assert_eq!(next.delivered, 1);
    assert!(store.queue_entries().unwrap().is_empty());
    let sender_inbox = inbox(&store, "sender@example.com");
    let uid = store.messages(sender_inbox).unwrap()[0].uid;
    let dsn = store.read_message(sender_inbox, uid).unwrap();
    let text = String::from_utf8_lossy(&dsn);
    assert!(
        text.starts_with("Delivered-To: sender@example.com\r\n"),
        "{text}"
    );
    assert!(text.contains("multipart/report"), "{text}");
    assert!(
        text.contains("Final-Recipient: rfc822; nobody@example.com"),
        "{text}"
    );
    assert!(text.contains("Status: 5.1.1"), "{text}");
    assert!(
        text.contains("Subject: hello"),
        "the original header is carried: {text}"
    );
    assert!(Message::parse(&dsn).envelope().subject.is_some());
}

#[test]
fn over_quota_fails_with_552_and_a_bounce() {
    let dir = tempfile::tempdir().unwrap();
    let store = setup(dir.path());
    store.set_quota("bob@example.com", 10).unwrap();
    let id = enqueue(&store, "sender@example.com", &["bob@example.com"]);
    let entry = store.queue_entry(id).unwrap();
    let report = deliver_due(&store, "mx.example.com", far_future(), 100).unwrap();
    assert_eq!((report.delivered, report.failed, report.bounces), (0, 1, 1));
    assert!(
        store
            .messages(inbox(&store, "bob@example.com"))
            .unwrap()
            .is_empty()
    );
    assert!(
        store.queue_entry(entry.id).is_err(),
        "finished once every recipient is final"
    );
    deliver_due(&store, "mx.example.com", far_future(), 100).unwrap();
    let sender_inbox = inbox(&store, "sender@example.com");
    let uid = store.messages(sender_inbox).unwrap()[0].uid;
    let text =
        String::from_utf8_lossy(&store.read_message(sender_inbox, uid).unwrap()).into_owned();
    assert!(text.contains("Status: 5.2.2"), "{text}");
    assert!(text.contains("552 5.2.2 mailbox full"), "{text}");
}

#[test]
fn bounces_never_bounce() {
    let dir = tempfile::tempdir().unwrap();
    let store = setup(dir.path());
    let id = enqueue(&store, "", &["nobody@example.com"]);
    let report = deliver_due(&store, "mx.example.com", far_future(), 100).unwrap();
    assert_eq!((report.failed, report.bounces), (1, 0));
    assert!(store.queue_entry(id).is_err());
    assert!(store.queue_entries().unwrap().is_empty());
}

#[test]
fn entries_not_yet_due_wait() {
    let dir = tempfile::tempdir().unwrap();
    let store = setup(dir.path());
    let id = enqueue(&store, "sender@example.com", &["alice@example.com"]);
    let created = store.queue_entry(id).unwrap().created;
    store.defer_queue_entry(id, created + 600).unwrap();
    let report = deliver_due(&store, "mx.example.com", created + 599, 100).unwrap();
    assert_eq!(report.delivered, 0);
    let report = deliver_due(&store, "mx.example.com", created + 600, 100).unwrap();
    assert_eq!(report.delivered, 1);
    assert!(store.queue_entry(id).is_err());
}

#[test]
fn the_copy_starts_with_delivered_to_then_the_original_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = setup(dir.path());
    enqueue(&store, "sender@example.com", &["bob@example.com"]);
    let report = deliver_due(&store, "mx.example.com", far_future(), 100).unwrap();
    assert_eq!(report.delivered, 1);
    let message = only_message(&store, "bob@example.com");
    let rest = message
        .strip_prefix(b"Delivered-To: bob@example.com\r\n".as_slice())
        .unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(&message)));
    assert_eq!(rest, BODY);
    let m = &store.messages(inbox(&store, "bob@example.com")).unwrap()[0];
    assert_eq!(m.size, message.len() as u64);
    assert_eq!(store.account("bob@example.com").unwrap().used_bytes, m.size);
}

#[test]
fn a_list_gives_each_account_its_own_delivered_to_over_one_body() {
    let dir = tempfile::tempdir().unwrap();
    let store = setup(dir.path());
    enqueue(&store, "sender@example.com", &["team@example.com"]);
    deliver_due(&store, "mx.example.com", far_future(), 100).unwrap();
    assert_eq!(
        only_message(&store, "alice@example.com"),
        delivered("alice@example.com", BODY)
    );
    assert_eq!(
        only_message(&store, "bob@example.com"),
        delivered("bob@example.com", BODY)
    );
    let alice = &store.messages(inbox(&store, "alice@example.com")).unwrap()[0];
    let bob = &store.messages(inbox(&store, "bob@example.com")).unwrap()[0];
    assert_eq!(alice.blob, bob.blob);
    assert_eq!(
        blob_files(dir.path()),
        1,
        "one body for both accounts and the queue"
    );
    assert!(store.check().unwrap().is_clean());
}

#[test]
fn a_pass_cut_short_after_its_deliveries_is_finished_without_copying_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = setup(dir.path());
    let id = enqueue(&store, "sender@example.com", &["alice@example.com"]);
    let entry = store.queue_entry(id).unwrap();
    // The deliveries of a pass committed, then the process died.
    store
        .deliver_from_queue(
            id,
            vec![(
                entry.recipients[0].id,
                vec![LocalDelivery::new(
                    inbox(&store, "alice@example.com"),
                    "Delivered-To: alice@example.com\r\n",
                )],
            )],
            Flags::new(),
            None,
        )
        .unwrap();
    let report = deliver_due(&store, "mx.example.com", far_future(), 100).unwrap();
    assert_eq!(
        (report.entries, report.delivered, report.finished),
        (1, 0, 1)
    );
    assert!(store.queue_entries().unwrap().is_empty());
    assert_eq!(
        store
            .messages(inbox(&store, "alice@example.com"))
            .unwrap()
            .len(),
        1
    );
}
