//! Local delivery: one pass over the due queue entries.
//!
//! Each mailbox's copy starts with `Delivered-To: <account address>` (SPEC
//! the address of the account the message reached after aliases,
//! lists and plus addressing, the way Postfix marks final delivery. The
//! field is the copy's header prefix in the store ([`LocalDelivery`]), so
//! the body stays one blob for every recipient.

use std::collections::HashSet;

use ironpost_mime::generate::{
    Action, Dsn, Mailbox, RecipientStatus, delivery_status_notification,
};
use ironpost_store::{
    Error as StoreError, Flags, LocalDelivery, NewQueueEntry, NewRecipient, QueueEntry,
    QueueRecipientId, RecipientState, Sender, Store, Timestamp,
};

/// Why a delivery pass stopped. A recipient's own failure is not an error
/// (it is bounced); these are failures of the store itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A notification could not be built.
    #[error("cannot build a delivery status notification: {0}")]
    Notification(String),
}

/// What one pass did, in recipients.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PassReport {
    /// Queue entries the pass took.
    pub entries: usize,
    /// Recipients delivered to local mailboxes.
    pub delivered: usize,
    /// Recipients that failed for good.
    pub failed: usize,
    /// Notifications queued for the senders of failed recipients.
    pub bounces: usize,
    /// Recipients in other domains, left for outbound delivery.
    pub remote: usize,
    /// Queue entries finished and removed.
    pub finished: usize,
}

impl std::ops::AddAssign for PassReport {
    /// Adds up the reports of workers that shared a batch.
    fn add_assign(&mut self, other: PassReport) {
        self.entries += other.entries;
        self.delivered += other.delivered;
        self.failed += other.failed;
        self.bounces += other.bounces;
        self.remote += other.remote;
        self.finished += other.finished;
    }
}

/// A recipient that failed, with the reply that says why.
struct Failure {
    id: Option<QueueRecipientId>,
    address: String,
    code: u16,
    status: &'static str,
    text: String,
}

/// Delivers the local recipients of the queue entries the local pass has not
/// finished with and that are due at `now` (at most `limit` entries, oldest
/// first): each recipient is resolved, delivered into the INBOX of
/// every account it stands for (with a `Delivered-To:` field naming that
/// account in front of the message), and marked delivered in the same
/// transaction; a recipient that cannot be delivered is marked failed and
/// its sender gets a delivery status notification (never for a message with
/// the null sender, so bounces never bounce). Remote recipients, and remote
/// addresses that local aliases and lists expand to, wait in the queue, and
/// the entry is marked done for the local pass so that later passes skip it.
/// Entries with nothing left to do are removed.
pub fn deliver_due(
    store: &Store,
    hostname: &str,
    now: Timestamp,
    limit: usize,
) -> Result<PassReport, DeliveryError> {
    let entries = store.queue_local_due(now, limit)?;
    deliver_entries(store, hostname, now, &entries)
}

/// [`deliver_due`] on entries already taken from
/// [`Store::queue_local_due`]: several workers can share one batch out
/// between them, each entry going to one worker only.
pub fn deliver_entries(
    store: &Store,
    hostname: &str,
    now: Timestamp,
    entries: &[QueueEntry],
) -> Result<PassReport, DeliveryError> {
    let mut report = PassReport::default();
    for entry in entries {
        report.entries += 1;
        deliver_entry(store, hostname, now, entry, &mut report)?;
    }
    Ok(report)
}

fn deliver_entry(
    store: &Store,
    hostname: &str,
    now: Timestamp,
    entry: &QueueEntry,
    report: &mut PassReport,
) -> Result<(), DeliveryError> {
    let mut sender = Sender::new(&entry.sender);
    sender.authenticated = !entry.auth_user.is_empty();
    let mut deliveries = Vec::new();
    let mut members = Vec::new();
    let mut expansions = Vec::new();
    let mut expanded_only = Vec::new();
    let mut failures = Vec::new();
    let mut targeted = HashSet::new();
    for recipient in entry.pending() {
        let resolution = match store.resolve(&recipient.address, &sender) {
            Ok(resolution) => resolution,
            Err(error) => {
                let (code, status, text) = error.smtp_reply();
                failures.push(Failure {
                    id: Some(recipient.id),
                    address: recipient.address.clone(),
                    code,
                    status,
                    text: format!("{text}: {}", recipient.address),
                });
                continue;
            }
        };
        let only_itself = resolution.local.is_empty()
            && resolution.remote.len() == 1
            && resolution.remote[0].eq_ignore_ascii_case(&recipient.address);
        if only_itself {
            report.remote += 1;
            continue;
        }
        for remote in &resolution.remote {
            expansions.push(NewRecipient::new(remote.clone()));
        }
        // One copy per mailbox per message, however many of its recipients
        // lead there (an account named directly, by an alias and by a list).
        let targets: Vec<_> = resolution
            .local
            .into_iter()
            .filter(|t| targeted.insert(t.mailbox))
            .collect();
        if targets.is_empty() {
            expanded_only.push(recipient.id);
        } else {
            let copies = targets
                .iter()
                .map(|t| LocalDelivery::new(t.mailbox, delivered_to(&t.address)))
                .collect();
            deliveries.push((recipient.id, copies));
            members.push((recipient.address.clone(), targets));
        }
    }

    // Remote expansions first: adding them again after a crash adds nothing
    // (the store skips addresses the entry has), whereas adding them after
    // the deliveries could lose them to a crash in between.
    if !expansions.is_empty() {
        store.add_queue_recipients(entry.id, expansions)?;
    }
    let ids: Vec<QueueRecipientId> = deliveries.iter().map(|(id, _)| *id).collect();
    let results =
        store.deliver_from_queue(entry.id, deliveries, Flags::new(), Some(entry.created))?;
    for ((id, (address, targets)), result) in ids.iter().zip(&members).zip(results) {
        // A recipient delivered already (a pass cut short) is simply done.
        let Ok(each) = result else { continue };
        let delivered = each.iter().filter(|r| r.is_ok()).count();
        if delivered > 0 {
            report.delivered += 1;
        }
        for (target, outcome) in targets.iter().zip(&each) {
            if let Err(error) = outcome {
                let (code, status, text) = delivery_failure(error);
                failures.push(Failure {
                    // The recipient stays undelivered only if no mailbox took it.
                    id: (delivered == 0).then_some(*id),
                    address: if targets.len() == 1 {
                        address.clone()
                    } else {
                        target.address.clone()
                    },
                    code,
                    status,
                    text: text.to_string(),
                });
            }
        }
    }

    let mut results = Vec::new();
    // Recipients that only expanded to remote addresses, or only to
    // mailboxes another recipient already reached.
    for id in expanded_only {
        results.push((id, RecipientState::Delivered, "expanded".to_owned()));
    }
    for failure in &failures {
        if let Some(id) = failure.id {
            let reply = format!("{} {} {}", failure.code, failure.status, failure.text);
            results.push((id, RecipientState::Failed, reply));
        }
    }
    report.failed += failures.len();
    let notification = if !failures.is_empty() && !entry.sender.is_empty() {
        report.bounces += 1;
        Some(bounce(store, hostname, now, entry, &failures)?)
    } else {
        None
    };
    // The results, the notification and the end of the entry's local pass
    // commit together.
    if store
        .settle_local_pass(entry.id, results, notification)?
        .removed
    {
        report.finished += 1;
    }
    Ok(())
}

/// The header prefix of a copy delivered to the account `address`. Account
/// addresses are validated by the store (no white space or control
/// characters), so the field is one well-formed line.
fn delivered_to(address: &str) -> Vec<u8> {
    format!("Delivered-To: {address}\r\n").into_bytes()
}

/// The reply for a local delivery that failed.
fn delivery_failure(error: &StoreError) -> (u16, &'static str, &'static str) {
    match error {
        StoreError::QuotaExceeded { .. } => (552, "5.2.2", "mailbox full"),
        StoreError::MessageTooLarge { .. } => (552, "5.3.4", "message too big for the mailbox"),
        _ => (550, "5.0.0", "local delivery failed"),
    }
}

/// The delivery status notification of the failures to the entry's sender,
/// with the null sender, its body durable and ready to queue.
fn bounce(
    store: &Store,
    hostname: &str,
    now: Timestamp,
    entry: &QueueEntry,
    failures: &[Failure],
) -> Result<NewQueueEntry, DeliveryError> {
    let original = store.read_body(&entry.blob)?;
    let recipients = failures
        .iter()
        .map(|f| RecipientStatus {
            final_recipient: f.address.clone(),
            original_recipient: None,
            action: Action::Failed,
            status: f.status.to_owned(),
            remote_mta: None,
            diagnostic: Some(format!("{} {} {}", f.code, f.status, f.text)),
            last_attempt: Some(now),
            will_retry_until: None,
        })
        .collect();
    let dsn = Dsn {
        reporting_mta: hostname.to_owned(),
        from: Mailbox::new("Mail Delivery System", format!("MAILER-DAEMON@{hostname}")),
        to: entry.sender.clone(),
        original: &original,
        recipients,
        arrival_date: Some(entry.created),
        envelope_id: None,
        date: now,
        message_id: format!("{now}.{}.dsn@{hostname}", entry.id.0),
    };
    let message = delivery_status_notification(&dsn)
        .map_err(|e| DeliveryError::Notification(e.to_string()))?;
    let blob = store.blobs().write_bytes(&message)?;
    let mut notification = NewQueueEntry::new(blob, "", [NewRecipient::new(entry.sender.clone())]);
    notification.client = "localhost".into();
    Ok(notification)
}
