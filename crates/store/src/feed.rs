//! The change feed: every append, flag change and expunge of a mailbox,
//! pushed to its subscribers in commit order, with no polling.
//!
//! The group committer publishes a batch's changes right after the batch's
//! commit is durable and before any caller of that batch gets its answer, so
//! a session that subscribed before it made a change sees that change in the
//! feed by the time its own call returns.
//!
//! Two ways to subscribe:
//! - [`crate::Store::subscribe`] gives a [`Subscription`], a std channel
//!   receiver for a blocking thread;
//! - [`crate::Store::subscribe_with`] registers a callback, which an async host
//!   points at its own channel (say `tokio::sync::mpsc::UnboundedSender::send`)
//!   so that no thread waits per session. The callback runs on the committer
//!   thread: it must not block.

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::types::{Flags, MailboxId, Timestamp};

/// One change to a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// A message was added (append, delivery, copy or move in).
    Appended {
        /// Its UID.
        uid: u32,
        /// Its modseq.
        modseq: u64,
        /// Its flags.
        flags: Flags,
        /// Its size in bytes.
        size: u64,
        /// Its internal date.
        internal_date: Timestamp,
    },
    /// A message's flags changed.
    FlagsChanged {
        /// Its UID.
        uid: u32,
        /// Its new modseq.
        modseq: u64,
        /// Its flags now.
        flags: Flags,
    },
    /// A message was removed (expunge or move out).
    Expunged {
        /// Its UID.
        uid: u32,
        /// The modseq of the expunge.
        modseq: u64,
    },
    /// The mailbox was renamed.
    Renamed {
        /// Its new name.
        name: String,
    },
    /// The mailbox was deleted: no more changes will come.
    Deleted,
}

type Callback = Box<dyn Fn(&Change) -> bool + Send + Sync>;

#[derive(Default)]
pub(crate) struct Feed {
    next_id: Mutex<u64>,
    subs: Mutex<HashMap<MailboxId, Vec<(u64, Callback)>>>,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed").finish_non_exhaustive()
    }
}

impl Feed {
    pub(crate) fn register(self: &Arc<Self>, mailbox: MailboxId, f: Callback) -> FeedHandle {
        let id = {
            let mut n = self.next_id.lock().unwrap_or_else(|e| e.into_inner());
            *n += 1;
            *n
        };
        self.subs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(mailbox)
            .or_default()
            .push((id, f));
        FeedHandle {
            feed: Arc::downgrade(self),
            mailbox,
            id,
        }
    }

    /// Delivers changes in order; drops subscribers whose callback says so.
    pub(crate) fn publish(&self, changes: &[(MailboxId, Change)]) {
        if changes.is_empty() {
            return;
        }
        let mut subs = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        for (mailbox, change) in changes {
            if let Some(list) = subs.get_mut(mailbox) {
                list.retain(|(_, f)| f(change));
                if list.is_empty() {
                    subs.remove(mailbox);
                }
            }
        }
    }

    fn unregister(&self, mailbox: MailboxId, id: u64) {
        let mut subs = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = subs.get_mut(&mailbox) {
            list.retain(|(i, _)| *i != id);
            if list.is_empty() {
                subs.remove(&mailbox);
            }
        }
    }
}

/// Keeps a callback subscription alive; dropping it unsubscribes.
#[derive(Debug)]
pub struct FeedHandle {
    feed: Weak<Feed>,
    mailbox: MailboxId,
    id: u64,
}

impl FeedHandle {
    /// The mailbox this subscription follows.
    pub fn mailbox(&self) -> MailboxId {
        self.mailbox
    }
}

impl Drop for FeedHandle {
    fn drop(&mut self) {
        if let Some(feed) = self.feed.upgrade() {
            feed.unregister(self.mailbox, self.id);
        }
    }
}

/// The changes of one mailbox, as a channel. Dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    rx: Receiver<Change>,
    handle: FeedHandle,
}

impl Subscription {
    pub(crate) fn new(feed: &Arc<Feed>, mailbox: MailboxId) -> Subscription {
        let (tx, rx) = mpsc::channel();
        let handle = feed.register(mailbox, Box::new(move |c| tx.send(c.clone()).is_ok()));
        Subscription { rx, handle }
    }

    /// The mailbox followed.
    pub fn mailbox(&self) -> MailboxId {
        self.handle.mailbox
    }

    /// Waits for the next change; `None` once the store is gone.
    pub fn recv(&self) -> Option<Change> {
        self.rx.recv().ok()
    }

    /// Waits at most `timeout` (IDLE with a deadline).
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Change> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// The next change if one is waiting.
    pub fn try_recv(&self) -> Option<Change> {
        self.rx.try_recv().ok()
    }

    /// Every change waiting now, in order.
    pub fn drain(&self) -> Vec<Change> {
        self.rx.try_iter().collect()
    }
}
