//! The selected mailbox as one session sees it: message sequence numbers,
//! `\Recent`, and the changes other sessions (and deliveries) made that
//! this session has not reported yet.
//!
//! The store's change feed pushes every committed change of the mailbox
//! into the view's channel, in commit order. The view applies them only
//! when IMAP allows the client to hear of them (RFC 3501 section 7.4.1):
//! EXISTS and FETCH FLAGS at the end of any command, EXPUNGE only at the end
//! of a command that is not FETCH, STORE, SEARCH or SORT by sequence number
//! (an expunge waits, and its message keeps its number, until then), and
//! everything at once during IDLE. The view's own changes come back through
//! the feed too: expunges are reported from there, flag changes the command
//! already answered are skipped.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::Mutex;

use ironpost_imap_proto::Data;
use ironpost_imap_proto::response::FetchItem;
use ironpost_imap_proto::types::SequenceSet;
use ironpost_store::{Change, FeedHandle, MailboxId};
use tokio::sync::mpsc;

use super::convert::imap_flags;

/// Changes waiting in the channel beyond which a session that never reads
/// them is given only the fact that something changed: the view then
/// reloads the mailbox instead of replaying each change.
const MAX_PENDING: usize = 100_000;

/// Per mailbox, the highest UID some session was given as `\Recent`: a new
/// message is recent in exactly one session, the first to see it
/// (RFC 3501 section 2.3.2). Kept in memory; after a restart, messages
/// that were there before are not recent.
#[derive(Debug, Default)]
pub(crate) struct RecentMarks(Mutex<HashMap<MailboxId, u32>>);

impl RecentMarks {
    /// Claims the UIDs above the mark for a session that selected the
    /// mailbox read-write, up to `last`; returns the first recent UID. The
    /// first session after a start finds no mark and claims nothing.
    fn claim(&self, mailbox: MailboxId, last: u32, read_only: bool) -> u32 {
        let mut marks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mark = *marks.entry(mailbox).or_insert(last);
        if !read_only && last > mark {
            marks.insert(mailbox, last);
        }
        mark.saturating_add(1)
    }

    /// Whether `uid`, new in the mailbox, is recent for this session (and
    /// claims it if so).
    fn claim_one(&self, mailbox: MailboxId, uid: u32, read_only: bool) -> bool {
        let mut marks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mark = marks.entry(mailbox).or_insert(0);
        if uid > *mark {
            if !read_only {
                *mark = uid;
            }
            true
        } else {
            false
        }
    }
}

/// The selected mailbox.
pub(crate) struct View {
    pub(crate) mailbox: MailboxId,
    pub(crate) name: String,
    pub(crate) uidvalidity: u32,
    pub(crate) read_only: bool,
    /// The UID of each message number: `uids[n - 1]`, ascending.
    uids: Vec<u32>,
    /// The UIDs that are `\Recent` in this session, ascending.
    recent: Vec<u32>,
    changes: mpsc::UnboundedReceiver<Change>,
    _subscription: FeedHandle,
    /// Received, not yet applied.
    pending: VecDeque<Change>,
    /// Expunges held back until the client may hear of them.
    held: VecDeque<u32>,
    /// Flag changes this session made and answered itself: UID → modseq.
    own: HashMap<u32, u64>,
    /// The EXISTS count the client last heard.
    reported_exists: usize,
    /// The RECENT count the client last heard.
    reported_recent: usize,
    /// The mailbox was deleted.
    pub(crate) gone: bool,
    /// Too many changes were left unread: reload before the next report.
    overflowed: bool,
}

/// What a session needs to set up a view.
pub(crate) struct Selected {
    pub(crate) mailbox: MailboxId,
    pub(crate) name: String,
    pub(crate) uidvalidity: u32,
    pub(crate) read_only: bool,
    pub(crate) uids: Vec<u32>,
    pub(crate) changes: mpsc::UnboundedReceiver<Change>,
    pub(crate) subscription: FeedHandle,
}

impl View {
    /// The view of a mailbox just read (`uids`), subscribed before the read
    /// so that nothing committed after it is missed.
    pub(crate) fn new(selected: Selected, marks: &RecentMarks) -> View {
        let last = selected.uids.last().copied().unwrap_or(0);
        let first_recent = marks.claim(selected.mailbox, last, selected.read_only);
        let from = selected.uids.partition_point(|&u| u < first_recent);
        let recent = selected.uids[from..].to_vec();
        let mut view = View {
            mailbox: selected.mailbox,
            name: selected.name,
            uidvalidity: selected.uidvalidity,
            read_only: selected.read_only,
            uids: selected.uids,
            recent,
            changes: selected.changes,
            _subscription: selected.subscription,
            pending: VecDeque::new(),
            held: VecDeque::new(),
            own: HashMap::new(),
            reported_exists: 0,
            reported_recent: 0,
            gone: false,
            overflowed: false,
        };
        view.reported_exists = view.uids.len();
        view.reported_recent = view.recent_count();
        view
    }

    /// Messages in the view.
    pub(crate) fn len(&self) -> usize {
        self.uids.len()
    }

    /// Messages `\Recent` in this session.
    pub(crate) fn recent_count(&self) -> usize {
        self.recent.len()
    }

    /// Whether the message is `\Recent` in this session.
    pub(crate) fn is_recent(&self, uid: u32) -> bool {
        self.recent.binary_search(&uid).is_ok()
    }

    /// The highest UID in the view (0 when empty).
    pub(crate) fn last_uid(&self) -> u32 {
        self.uids.last().copied().unwrap_or(0)
    }

    /// The message number of `uid`.
    pub(crate) fn seq(&self, uid: u32) -> Option<u32> {
        self.uids.binary_search(&uid).ok().map(|i| i as u32 + 1)
    }

    /// The (number, UID) of each message a set names, ascending; numbers or
    /// UIDs the view does not have are left out.
    pub(crate) fn resolve(&self, set: &SequenceSet, by_uid: bool) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        if by_uid {
            for (lo, hi) in set.to_ranges(self.last_uid()) {
                let start = self.uids.partition_point(|&u| u < lo);
                let end = self.uids.partition_point(|&u| u <= hi);
                out.extend((start..end).map(|i| (i as u32 + 1, self.uids[i])));
            }
        } else {
            let count = self.uids.len() as u32;
            for (lo, hi) in set.to_ranges(count) {
                let hi = hi.min(count);
                out.extend((lo.max(1)..=hi).map(|seq| (seq, self.uids[seq as usize - 1])));
            }
        }
        out
    }

    /// The first message number of the view that is not `\Seen`, given the
    /// UIDs of the unseen messages.
    pub(crate) fn first_of(&self, uids: &[u32]) -> Option<u32> {
        uids.iter().filter_map(|&u| self.seq(u)).min()
    }

    /// Notes a flag change this session made and answered (or was told to
    /// keep silent about), so its echo from the feed is not reported.
    pub(crate) fn own_flag_change(&mut self, uid: u32, modseq: u64) {
        self.own.insert(uid, modseq);
    }

    /// Waits for the next change from the feed.
    pub(crate) async fn next_change(&mut self) -> Option<Change> {
        self.changes.recv().await
    }

    /// Takes a change that arrived (and any others waiting).
    pub(crate) fn receive(&mut self, change: Change) {
        self.queue(change);
        while let Ok(change) = self.changes.try_recv() {
            self.queue(change);
        }
    }

    /// Takes what waits in the channel.
    pub(crate) fn receive_waiting(&mut self) {
        while let Ok(change) = self.changes.try_recv() {
            self.queue(change);
        }
    }

    fn queue(&mut self, change: Change) {
        if self.pending.len() >= MAX_PENDING {
            self.pending.clear();
            self.overflowed = true;
        }
        if !self.overflowed {
            self.pending.push_back(change);
        }
    }

    /// Whether the view has lost track of changes and must be reloaded.
    pub(crate) fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Replaces the message list after an overflow with the mailbox as read
    /// now; the changes are reported as expunges and one EXISTS.
    pub(crate) fn reload(
        &mut self,
        uids: Vec<u32>,
        allow_expunge: bool,
        marks: &RecentMarks,
    ) -> Vec<Data> {
        self.overflowed = false;
        self.pending.clear();
        self.own.clear();
        // Removed messages become held expunges, new ones appends.
        let last = self.last_uid();
        for &uid in &self.uids {
            if uids.binary_search(&uid).is_err() && !self.held.contains(&uid) {
                self.held.push_back(uid);
            }
        }
        for &uid in uids.iter().filter(|&&u| u > last) {
            self.pending.push_back(appended(uid));
        }
        self.flush(allow_expunge, marks)
    }

    /// Applies the changes received so far and returns what to tell the
    /// client: EXPUNGE (only when `allow_expunge`), EXISTS, RECENT and
    /// FETCH FLAGS, in an order that keeps the client's numbering right.
    pub(crate) fn flush(&mut self, allow_expunge: bool, marks: &RecentMarks) -> Vec<Data> {
        let mut out = Vec::new();
        if allow_expunge {
            while let Some(uid) = self.held.pop_front() {
                self.expunge(uid, &mut out);
            }
        }
        while let Some(change) = self.pending.pop_front() {
            match change {
                Change::Appended { uid, .. } => {
                    if uid <= self.last_uid() {
                        // Already in the list read at SELECT.
                        continue;
                    }
                    if marks.claim_one(self.mailbox, uid, self.read_only) {
                        self.recent.push(uid);
                    }
                    self.uids.push(uid);
                }
                Change::FlagsChanged { uid, modseq, flags } => {
                    if self.own.get(&uid).is_some_and(|&m| m >= modseq) {
                        continue;
                    }
                    if let Some(seq) = self.seq(uid) {
                        self.report_counts(&mut out);
                        let recent = self.is_recent(uid);
                        if let Some(seq) = NonZeroU32::new(seq) {
                            out.push(Data::Fetch {
                                seq,
                                items: vec![FetchItem::Flags(imap_flags(&flags, recent))],
                            });
                        }
                    }
                }
                Change::Expunged { uid, .. } => {
                    if allow_expunge {
                        self.expunge(uid, &mut out);
                    } else if self.seq(uid).is_some() {
                        self.held.push_back(uid);
                    }
                }
                Change::Renamed { name } => self.name = name,
                Change::Deleted => self.gone = true,
                _ => {}
            }
        }
        self.own.clear();
        self.report_counts(&mut out);
        out
    }

    fn expunge(&mut self, uid: u32, out: &mut Vec<Data>) {
        let Ok(index) = self.uids.binary_search(&uid) else {
            return;
        };
        // The client must know of the message before it hears it went.
        self.report_counts(out);
        self.uids.remove(index);
        self.reported_exists -= 1;
        if let Ok(i) = self.recent.binary_search(&uid) {
            self.recent.remove(i);
            self.reported_recent = self.reported_recent.saturating_sub(1);
        }
        if let Some(seq) = NonZeroU32::new(index as u32 + 1) {
            out.push(Data::Expunge(seq));
        }
    }

    /// EXISTS and RECENT when they changed since the client last heard.
    fn report_counts(&mut self, out: &mut Vec<Data>) {
        if self.uids.len() != self.reported_exists {
            self.reported_exists = self.uids.len();
            out.push(Data::Exists(self.reported_exists as u32));
            let recent = self.recent_count();
            if recent != self.reported_recent {
                self.reported_recent = recent;
                out.push(Data::Recent(recent as u32));
            }
        }
    }
}

/// A message added, as far as the view needs to know.
fn appended(uid: u32) -> Change {
    Change::Appended {
        uid,
        modseq: 0,
        flags: Default::default(),
        size: 0,
        internal_date: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironpost_imap_proto::types::{SeqNumber, SeqRange};
    use ironpost_store::{Flag, Flags, Store};

    fn view(uids: Vec<u32>, marks: &RecentMarks) -> (View, Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_dir(dir.path()).unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let subscription = store.subscribe_with(MailboxId(1), move |c| tx.send(c.clone()).is_ok());
        let view = View::new(
            Selected {
                mailbox: MailboxId(1),
                name: "INBOX".into(),
                uidvalidity: 1,
                read_only: false,
                uids,
                changes: rx,
                subscription,
            },
            marks,
        );
        (view, store, dir)
    }

    fn expunged(uid: u32) -> Change {
        Change::Expunged { uid, modseq: 1 }
    }

    #[test]
    fn expunges_wait_until_allowed() {
        let marks = RecentMarks::default();
        let (mut v, _store, _dir) = view(vec![3, 5, 9], &marks);
        v.receive(expunged(5));
        v.receive(appended(12));
        let out = v.flush(false, &marks);
        assert_eq!(out, vec![Data::Exists(4), Data::Recent(1)]);
        assert_eq!(v.seq(9), Some(3), "numbers keep until the expunge is told");
        let out = v.flush(true, &marks);
        assert_eq!(out, vec![Data::Expunge(NonZeroU32::new(2).unwrap())]);
        assert_eq!(v.seq(12), Some(3));
        assert_eq!(v.len(), 3);
    }

    #[test]
    fn own_flag_changes_are_not_echoed() {
        let marks = RecentMarks::default();
        let (mut v, _store, _dir) = view(vec![1, 2], &marks);
        let flags: Flags = [Flag::Seen].into_iter().collect();
        v.own_flag_change(2, 7);
        v.receive(Change::FlagsChanged {
            uid: 2,
            modseq: 7,
            flags: flags.clone(),
        });
        v.receive(Change::FlagsChanged {
            uid: 1,
            modseq: 8,
            flags,
        });
        let out = v.flush(false, &marks);
        assert_eq!(out.len(), 1);
        assert!(matches!(&out[0], Data::Fetch { seq, .. } if seq.get() == 1));
    }

    #[test]
    fn recent_belongs_to_one_session() {
        let marks = RecentMarks::default();
        let (mut a, _s1, _d1) = view(vec![1, 2], &marks);
        let (mut b, _s2, _d2) = view(vec![1, 2], &marks);
        assert_eq!(a.recent_count(), 0, "nothing is recent after a start");
        a.receive(appended(3));
        b.receive(appended(3));
        a.flush(true, &marks);
        b.flush(true, &marks);
        assert_eq!(a.recent_count() + b.recent_count(), 1);
        assert!(a.is_recent(3) != b.is_recent(3));
    }

    #[test]
    fn resolve_sets() {
        let marks = RecentMarks::default();
        let (v, _store, _dir) = view(vec![3, 5, 9], &marks);
        let set = |s: &[(u32, u32)]| {
            SequenceSet::new(
                s.iter()
                    .map(|&(a, b)| {
                        SeqRange::Range(
                            SeqNumber::Value(NonZeroU32::new(a).unwrap()),
                            SeqNumber::Value(NonZeroU32::new(b).unwrap()),
                        )
                    })
                    .collect(),
            )
            .unwrap()
        };
        assert_eq!(v.resolve(&set(&[(2, 7)]), false), vec![(2, 5), (3, 9)]);
        assert_eq!(v.resolve(&set(&[(4, 9)]), true), vec![(2, 5), (3, 9)]);
        assert_eq!(v.resolve(&set(&[(20, 30)]), true), vec![]);
        // `20:*` names the last message even though 20 is past its UID.
        let star = SequenceSet::new(vec![SeqRange::Range(
            SeqNumber::Value(NonZeroU32::new(20).unwrap()),
            SeqNumber::Largest,
        )])
        .unwrap();
        assert_eq!(v.resolve(&star, true), vec![(3, 9)]);
        assert_eq!(v.resolve(&star, false), vec![(3, 9)]);
    }
}
