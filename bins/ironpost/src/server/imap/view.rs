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
//!
//! The view also keeps each message's index entry (flags, size, internal
//! date, modseq), so FETCH of flags, sizes and dates and SEARCH by them need
//! no trip to the store. New flags from the feed hold as soon as they are
//! received (the client hears of them at the next report); a change older
//! than what an entry holds (by modseq) does not roll it back.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use ironpost_imap_proto::Data;
use ironpost_imap_proto::response::FetchItem;
use ironpost_imap_proto::types::SequenceSet;
use ironpost_store::{Change, FeedHandle, Flag, Flags, Indexed, MailboxId, SystemFlags, Timestamp};
use tokio::sync::mpsc;

use super::Meta;
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

/// One message of the view: its index entry, kept small (a mailbox of a
/// hundred thousand messages costs a few MiB per session that selects it).
#[derive(Debug, Clone)]
struct Entry {
    modseq: u64,
    size: u64,
    internal_date: Timestamp,
    uid: u32,
    /// Its keywords: an index into [`Keywords`], 0 for none.
    keywords: u32,
    system: SystemFlags,
}

/// The distinct sets of keywords the view's messages carry, each stored
/// once: most messages have none, and those that have some mostly share
/// the same few.
#[derive(Debug, Default)]
struct Keywords {
    /// Set 0 is the empty set.
    sets: Vec<Arc<Flags>>,
    index: HashMap<Arc<Flags>, u32>,
}

impl Keywords {
    /// Sets beyond which unused ones are dropped.
    const COMPACT_AT: usize = 1024;

    fn get(&self, id: u32) -> Option<&Arc<Flags>> {
        self.sets.get(id as usize).filter(|_| id != 0)
    }

    fn intern(&mut self, keywords: Flags) -> u32 {
        if keywords.is_empty() {
            return 0;
        }
        if self.sets.is_empty() {
            self.sets.push(Arc::default());
        }
        if let Some(&id) = self.index.get(&keywords) {
            return id;
        }
        let id = u32::try_from(self.sets.len()).unwrap_or(u32::MAX);
        let keywords = Arc::new(keywords);
        self.sets.push(keywords.clone());
        self.index.insert(keywords, id);
        id
    }

    /// Drops the sets no entry uses any more, renumbering the entries'.
    fn compact(&mut self, entries: &mut [Entry]) {
        if self.sets.len() < Self::COMPACT_AT.max(entries.len()) {
            return;
        }
        let old = std::mem::take(&mut self.sets);
        self.index.clear();
        let mut renumbered = HashMap::new();
        for entry in entries.iter_mut().filter(|e| e.keywords != 0) {
            let set = &old[entry.keywords as usize];
            entry.keywords = *renumbered
                .entry(entry.keywords)
                .or_insert_with(|| self.intern(Flags::clone(set)));
        }
    }
}

/// A message's flags as the view lends them: the system flags as bits and
/// the keywords as a set shared with the view, so that handing out the
/// flags of every message of a mailbox (FETCH 1:* FLAGS, SEARCH) costs no
/// allocation. Iterates in the order of [`Flags`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MessageFlags {
    system: SystemFlags,
    keywords: Option<Arc<Flags>>,
}

impl MessageFlags {
    /// The flags of a set (a store's answer, a test's).
    pub(crate) fn new(flags: &Flags) -> MessageFlags {
        let (system, keywords) = SystemFlags::split(flags);
        MessageFlags {
            system,
            keywords: (!keywords.is_empty()).then(|| Arc::new(keywords)),
        }
    }

    pub(crate) fn contains(&self, flag: &Flag) -> bool {
        match flag {
            Flag::Keyword(_) => self.keywords.as_ref().is_some_and(|k| k.contains(flag)),
            _ => self.system.contains(flag),
        }
    }

    pub(crate) fn iter<'a>(&'a self) -> impl Iterator<Item = &'a Flag> {
        self.system
            .iter()
            .map(|f| -> &'a Flag { f })
            .chain(self.keywords.iter().flat_map(|k| k.iter()))
    }

    /// The flags as a set of their own.
    #[cfg(test)]
    pub(crate) fn to_flags(&self) -> Flags {
        self.iter().cloned().collect()
    }
}

/// The selected mailbox.
pub(crate) struct View {
    pub(crate) mailbox: MailboxId,
    pub(crate) name: String,
    pub(crate) uidvalidity: u32,
    pub(crate) read_only: bool,
    /// The message of each number: `entries[n - 1]`, UIDs ascending.
    entries: Vec<Entry>,
    keywords: Keywords,
    /// The UIDs that are `\Recent` in this session, ascending.
    recent: Vec<u32>,
    changes: mpsc::UnboundedReceiver<Change>,
    _subscription: FeedHandle,
    /// Received, not yet applied.
    pending: VecDeque<Change>,
    /// Expunges held back until the client may hear of them.
    held: VecDeque<u32>,
    /// Flag changes this session made itself (and applied): UID → modseq.
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
    /// The mailbox's messages as read, in UID order.
    pub(crate) messages: Vec<Indexed>,
    pub(crate) changes: mpsc::UnboundedReceiver<Change>,
    pub(crate) subscription: FeedHandle,
}

impl View {
    /// The view of a mailbox just read (`messages`), subscribed before the
    /// read so that nothing committed after it is missed.
    pub(crate) fn new(selected: Selected, marks: &RecentMarks) -> View {
        let last = selected.messages.last().map_or(0, |m| m.uid);
        let first_recent = marks.claim(selected.mailbox, last, selected.read_only);
        let recent = selected
            .messages
            .iter()
            .map(|m| m.uid)
            .filter(|&u| u >= first_recent)
            .collect();
        let mut keywords = Keywords::default();
        // Into a vector of its own size: collecting in place would keep the
        // larger allocation of the messages read.
        let mut entries = Vec::with_capacity(selected.messages.len());
        entries.extend(selected.messages.into_iter().map(|m| Entry {
            modseq: m.modseq,
            size: m.size,
            internal_date: m.internal_date,
            uid: m.uid,
            keywords: keywords.intern(m.keywords),
            system: m.system,
        }));
        let mut view = View {
            mailbox: selected.mailbox,
            name: selected.name,
            uidvalidity: selected.uidvalidity,
            read_only: selected.read_only,
            entries,
            keywords,
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
        view.reported_exists = view.entries.len();
        view.reported_recent = view.recent_count();
        view
    }

    /// Messages in the view.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
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
        self.entries.last().map_or(0, |e| e.uid)
    }

    fn index(&self, uid: u32) -> Result<usize, usize> {
        self.entries.binary_search_by_key(&uid, |e| e.uid)
    }

    /// The message number of `uid`.
    pub(crate) fn seq(&self, uid: u32) -> Option<u32> {
        self.index(uid).ok().map(|i| i as u32 + 1)
    }

    /// The (number, UID) of each message a set names, ascending; numbers or
    /// UIDs the view does not have are left out.
    pub(crate) fn resolve(&self, set: &SequenceSet, by_uid: bool) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        if by_uid {
            for (lo, hi) in set.to_ranges(self.last_uid()) {
                let start = self.entries.partition_point(|e| e.uid < lo);
                let end = self.entries.partition_point(|e| e.uid <= hi);
                out.extend((start..end).map(|i| (i as u32 + 1, self.entries[i].uid)));
            }
        } else {
            let count = self.entries.len() as u32;
            for (lo, hi) in set.to_ranges(count) {
                let hi = hi.min(count);
                out.extend((lo.max(1)..=hi).map(|seq| (seq, self.entries[seq as usize - 1].uid)));
            }
        }
        out
    }

    /// The index entries of messages given by (number, UID), as [`Meta`]s
    /// (a pair the view does not have is left out).
    pub(crate) fn metas(&self, targets: &[(u32, u32)]) -> Vec<Meta> {
        targets
            .iter()
            .filter_map(|&(seq, uid)| {
                let entry = self.entries.get(seq.checked_sub(1)? as usize)?;
                (entry.uid == uid).then(|| Meta {
                    seq,
                    uid,
                    flags: entry.flags(&self.keywords),
                    recent: self.is_recent(uid),
                    internal_date: entry.internal_date,
                    size: entry.size,
                })
            })
            .collect()
    }

    /// The number of the first message that is not `\Seen`.
    pub(crate) fn first_unseen(&self) -> Option<u32> {
        self.entries
            .iter()
            .position(|e| !e.system.contains(&Flag::Seen))
            .map(|i| i as u32 + 1)
    }

    /// Takes the flags a command of this session set (`modseq` being the
    /// change's): the entry holds them from now on, and their echo from the
    /// feed is not reported.
    pub(crate) fn own_flag_change(&mut self, uid: u32, modseq: u64, flags: &Flags) {
        self.own.insert(uid, modseq);
        self.set_flags(uid, modseq, flags);
    }

    /// Sets a message's flags unless its entry holds a later change;
    /// returns whether it did.
    fn set_flags(&mut self, uid: u32, modseq: u64, flags: &Flags) -> bool {
        let Ok(i) = self.index(uid) else {
            return false;
        };
        if self.entries[i].modseq >= modseq {
            return false;
        }
        let (system, keywords) = Entry::pack(&mut self.keywords, flags);
        let entry = &mut self.entries[i];
        entry.modseq = modseq;
        entry.system = system;
        entry.keywords = keywords;
        true
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
        // New flags hold at once, so that a FETCH or SEARCH before the next
        // report sees them; the client hears of them at that report.
        if let Change::FlagsChanged { uid, modseq, flags } = &change {
            self.set_flags(*uid, *modseq, flags);
        }
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
    /// now (`messages`, in UID order): removed messages are reported as
    /// expunges, new ones with one EXISTS, and changed flags as FETCH.
    pub(crate) fn reload(
        &mut self,
        messages: Vec<Indexed>,
        allow_expunge: bool,
        marks: &RecentMarks,
    ) -> Vec<Data> {
        self.overflowed = false;
        self.pending.clear();
        self.own.clear();
        let last = self.last_uid();
        for entry in &self.entries {
            let gone = messages
                .binary_search_by_key(&entry.uid, |m| m.uid)
                .is_err();
            if gone && !self.held.contains(&entry.uid) {
                self.held.push_back(entry.uid);
            }
        }
        for m in messages {
            if m.uid > last {
                self.pending.push_back(Change::Appended {
                    uid: m.uid,
                    modseq: m.modseq,
                    flags: m.flags(),
                    size: m.size,
                    internal_date: m.internal_date,
                });
            } else if self
                .index(m.uid)
                .is_ok_and(|i| self.entries[i].modseq < m.modseq)
            {
                self.pending.push_back(Change::FlagsChanged {
                    uid: m.uid,
                    modseq: m.modseq,
                    flags: m.flags(),
                });
            }
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
                Change::Appended {
                    uid,
                    modseq,
                    flags,
                    size,
                    internal_date,
                } => {
                    if uid <= self.last_uid() {
                        // Already in the list read at SELECT.
                        continue;
                    }
                    if marks.claim_one(self.mailbox, uid, self.read_only) {
                        self.recent.push(uid);
                    }
                    let entry =
                        Entry::new(&mut self.keywords, uid, modseq, &flags, size, internal_date);
                    self.entries.push(entry);
                }
                Change::FlagsChanged { uid, modseq, flags } => {
                    let newer = self.set_flags(uid, modseq, &flags);
                    if !newer && self.own.get(&uid) == Some(&modseq) {
                        // This session's own change, answered already.
                        continue;
                    }
                    // A change the entry already holds (or a later one) is
                    // told as the flags held now.
                    if let Ok(index) = self.index(uid) {
                        self.report_counts(&mut out);
                        let flags = self.entries[index].flags(&self.keywords);
                        let recent = self.is_recent(uid);
                        if let Some(seq) = NonZeroU32::new(index as u32 + 1) {
                            out.push(Data::Fetch {
                                seq,
                                items: vec![FetchItem::Flags(imap_flags(flags.iter(), recent))],
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
        self.keywords.compact(&mut self.entries);
        self.report_counts(&mut out);
        out
    }

    fn expunge(&mut self, uid: u32, out: &mut Vec<Data>) {
        let Ok(index) = self.index(uid) else {
            return;
        };
        // The client must know of the message before it hears it went.
        self.report_counts(out);
        self.entries.remove(index);
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
        if self.entries.len() != self.reported_exists {
            self.reported_exists = self.entries.len();
            out.push(Data::Exists(self.reported_exists as u32));
            let recent = self.recent_count();
            if recent != self.reported_recent {
                self.reported_recent = recent;
                out.push(Data::Recent(recent as u32));
            }
        }
    }
}

impl Entry {
    fn new(
        keywords: &mut Keywords,
        uid: u32,
        modseq: u64,
        flags: &Flags,
        size: u64,
        internal_date: Timestamp,
    ) -> Entry {
        let (system, keywords) = Entry::pack(keywords, flags);
        Entry {
            modseq,
            size,
            internal_date,
            uid,
            keywords,
            system,
        }
    }

    /// Flags as (system flags, keyword set).
    fn pack(keywords: &mut Keywords, flags: &Flags) -> (SystemFlags, u32) {
        let (system, set) = SystemFlags::split(flags);
        (system, keywords.intern(set))
    }

    fn flags(&self, keywords: &Keywords) -> MessageFlags {
        MessageFlags {
            system: self.system,
            keywords: keywords.get(self.keywords).cloned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironpost_imap_proto::types::{SeqNumber, SeqRange};
    use ironpost_store::Store;

    /// A message added, as the feed tells it.
    fn appended(uid: u32) -> Change {
        Change::Appended {
            uid,
            modseq: u64::from(uid),
            flags: Flags::new(),
            size: 100,
            internal_date: 0,
        }
    }

    /// A message as read from the store, its modseq its UID.
    fn message(uid: u32, flags: &[Flag]) -> Indexed {
        Indexed::new(
            uid,
            u64::from(uid),
            &flags.iter().cloned().collect(),
            0,
            100,
        )
    }

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
                messages: uids.into_iter().map(|u| message(u, &[])).collect(),
                changes: rx,
                subscription,
            },
            marks,
        );
        (view, store, dir)
    }

    fn expunged(uid: u32) -> Change {
        Change::Expunged { uid, modseq: 100 }
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
        v.own_flag_change(2, 7, &flags);
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

    fn flags(list: &[Flag]) -> Flags {
        list.iter().cloned().collect()
    }

    fn keyword(k: &str) -> Flag {
        Flag::Keyword(k.into())
    }

    fn flags_of(v: &View, uid: u32) -> Flags {
        let seq = v.seq(uid).unwrap();
        v.metas(&[(seq, uid)]).remove(0).flags.to_flags()
    }

    #[test]
    fn entries_follow_the_feed_and_never_go_back() {
        let marks = RecentMarks::default();
        let (mut v, _store, _dir) = view(vec![1, 2], &marks);
        let seen = flags(&[Flag::Seen, keyword("$Work")]);
        v.receive(Change::FlagsChanged {
            uid: 2,
            modseq: 10,
            flags: seen.clone(),
        });
        assert_eq!(
            flags_of(&v, 2),
            seen,
            "held once received, before the report"
        );
        // Older than what the entry holds now: told, but not applied.
        v.receive(Change::FlagsChanged {
            uid: 2,
            modseq: 9,
            flags: Flags::new(),
        });
        v.receive(Change::Appended {
            uid: 3,
            modseq: 11,
            flags: flags(&[Flag::Flagged]),
            size: 4321,
            internal_date: 1_700_000_000,
        });
        let out = v.flush(true, &marks);
        assert_eq!(out.len(), 4, "two FETCH, EXISTS, RECENT: {out:?}");
        assert_eq!(flags_of(&v, 2), seen);
        let told_flags = |data: &Data| match data {
            Data::Fetch { items, .. } => items.clone(),
            other => panic!("not a FETCH: {other:?}"),
        };
        assert_eq!(told_flags(&out[0]), told_flags(&out[1]));
        let new = v.metas(&[(3, 3)]).remove(0);
        assert_eq!((new.size, new.internal_date), (4321, 1_700_000_000));
        assert_eq!(new.flags.to_flags(), flags(&[Flag::Flagged]));
        assert_eq!(v.first_unseen(), Some(1));
    }

    #[test]
    fn own_changes_hold_at_once() {
        let marks = RecentMarks::default();
        let (mut v, _store, _dir) = view(vec![1, 2], &marks);
        let mine = flags(&[Flag::Answered]);
        v.own_flag_change(1, 20, &mine);
        assert_eq!(flags_of(&v, 1), mine, "before the echo comes");
        // Another session's change before mine: told as the flags now.
        v.receive(Change::FlagsChanged {
            uid: 1,
            modseq: 19,
            flags: flags(&[Flag::Draft]),
        });
        v.receive(Change::FlagsChanged {
            uid: 1,
            modseq: 20,
            flags: mine.clone(),
        });
        let out = v.flush(false, &marks);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(flags_of(&v, 1), mine);
    }

    #[test]
    fn reload_tells_changed_flags_only() {
        let marks = RecentMarks::default();
        let (mut v, _store, _dir) = view(vec![1, 2, 3], &marks);
        let mut changed = message(2, &[Flag::Deleted]);
        changed.modseq = 50;
        let now = vec![message(1, &[]), changed, message(4, &[])];
        let out = v.reload(now, true, &marks);
        // 3 went, 2's flags changed, 4 came (and is recent here).
        assert_eq!(out.len(), 4, "{out:?}");
        assert_eq!(out[0], Data::Expunge(NonZeroU32::new(3).unwrap()));
        assert!(matches!(&out[1], Data::Fetch { seq, .. } if seq.get() == 2));
        assert_eq!(out[2], Data::Exists(3));
        assert_eq!(flags_of(&v, 2), flags(&[Flag::Deleted]));
        assert_eq!(v.len(), 3);
    }

    #[test]
    fn keyword_sets_are_shared_and_compacted() {
        let marks = RecentMarks::default();
        let (mut v, _store, _dir) = view((1..=10).collect(), &marks);
        // Many distinct keyword sets come and go on one message.
        for n in 0..3000u32 {
            let set = flags(&[keyword(&format!("$k{n}"))]);
            v.own_flag_change(1, 100 + u64::from(n), &set);
        }
        for uid in 2..=10 {
            v.own_flag_change(uid, 5000, &flags(&[keyword("$Shared"), Flag::Seen]));
        }
        v.flush(false, &marks);
        assert!(
            v.keywords.sets.len() <= Keywords::COMPACT_AT,
            "{}",
            v.keywords.sets.len()
        );
        assert_eq!(flags_of(&v, 1), flags(&[keyword("$k2999")]));
        for uid in 2..=10 {
            assert_eq!(flags_of(&v, uid), flags(&[keyword("$Shared"), Flag::Seen]));
        }
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
