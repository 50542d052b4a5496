//! SELECT / EXAMINE and the commands of the selected state: FETCH, STORE,
//! SEARCH, SORT, COPY, MOVE, EXPUNGE, UID EXPUNGE, CLOSE, UNSELECT, CHECK.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use ironpost_imap_proto::response::FetchItem;
use ironpost_imap_proto::types::{
    Atom, FetchAttribute, Flag as ImapFlag, PermanentFlag, SearchKey, SeqNumber, SeqRange,
    SequenceSet, SortCriterion, StoreAction, StoreMode,
};
use ironpost_imap_proto::{
    Code, CommandBody, Data, Request, ServerSession, Status, StatusKind, Validity,
};
use ironpost_store::{Flag, FlagOp, FlagUpdate, Flags, MailboxId, Store};
use tokio::sync::mpsc;

use super::convert::{imap_flags, store_flags};
use super::mailbox::{name, server_bug, store_status};
use super::view::{MessageFlags, Selected, View};
use super::{Host, Meta, Need, User, fetch, search};
use crate::server::blocking;
use crate::server::conn::Connection;

/// Message bytes read for one FETCH step, at most: the step's answers are
/// written out before the next is read.
const STEP_BYTES: u64 = 1024 * 1024;
/// Messages rendered in one step, at most.
const STEP_MESSAGES: usize = 256;
/// Messages of a FETCH of index items (flags, sizes, dates) per step.
const INDEX_STEP: usize = 1024;
/// Messages up to which a SEARCH of flags, sizes and dates runs on the
/// session's own task; a larger mailbox is searched on the blocking pool.
const INLINE_SEARCH: usize = 4096;

/// Whether the command is SELECT, EXAMINE or one of the selected state.
pub(super) fn is_selected_command(command: &CommandBody) -> bool {
    matches!(
        command,
        CommandBody::Select { .. } | CommandBody::Examine { .. }
    ) || command.validity() == Validity::Selected
}

/// Whether EXPUNGE responses may go out at the end of this command (RFC
/// 3501 section 7.4.1: not during FETCH, STORE or SEARCH by sequence
/// number, nor SORT, for the same reason).
pub(super) fn allows_expunge(command: &CommandBody) -> bool {
    !matches!(
        command,
        CommandBody::Fetch { uid: false, .. }
            | CommandBody::Store { uid: false, .. }
            | CommandBody::Search { uid: false, .. }
            | CommandBody::Sort { uid: false, .. }
    )
}

fn read_only() -> Status {
    Status::new(
        StatusKind::No,
        Some(Code::Cannot),
        "The mailbox is read-only",
    )
}

fn no_mailbox() -> Status {
    Status::new(
        StatusKind::No,
        Some(Code::NonExistent),
        "The mailbox no longer exists",
    )
}

impl Host<'_> {
    /// Runs SELECT, EXAMINE or a command of the selected state; returns its
    /// tagged status. An error ends the connection (a write failed).
    pub(super) async fn selected(
        &mut self,
        session: &mut ServerSession,
        req: &Request,
        user: &User,
        conn: &mut Connection,
    ) -> Result<Status, &'static str> {
        match &req.command {
            CommandBody::Select { mailbox } => {
                return Ok(self.select(session, req, user, name(mailbox), false).await);
            }
            CommandBody::Examine { mailbox } => {
                return Ok(self.select(session, req, user, name(mailbox), true).await);
            }
            _ => {}
        }
        let Some(view) = self.view.as_ref() else {
            return Ok(match &req.command {
                CommandBody::Close | CommandBody::Unselect => Status::ok("Closed"),
                _ => no_mailbox(),
            });
        };
        if view.gone && !matches!(req.command, CommandBody::Close | CommandBody::Unselect) {
            return Ok(no_mailbox());
        }
        Ok(match &req.command {
            CommandBody::Check => Status::ok("CHECK completed"),
            CommandBody::Close => {
                let (mailbox, write) = (view.mailbox, !view.read_only);
                self.view = None;
                if write {
                    let store = self.store();
                    // CLOSE removes the \Deleted messages without a word.
                    if let Some(Err(e)) = blocking(move || store.expunge(mailbox, None)).await {
                        return Ok(store_status(&e));
                    }
                }
                Status::ok("CLOSE completed")
            }
            CommandBody::Unselect => {
                self.view = None;
                Status::ok("UNSELECT completed")
            }
            CommandBody::Expunge => self.expunge(None).await,
            CommandBody::UidExpunge(set) => self.expunge(Some(set)).await,
            CommandBody::Fetch { set, items, uid } => {
                let attributes = items.attributes();
                self.fetch(session, req, set, attributes, *uid, conn)
                    .await?
            }
            CommandBody::Store { set, action, uid } => {
                self.store_command(session, req, set, action, *uid).await
            }
            CommandBody::Search {
                charset,
                criteria,
                uid,
            } => {
                self.search(session, req, charset.as_ref(), criteria, *uid)
                    .await
            }
            CommandBody::Sort {
                criteria,
                charset,
                search,
                uid,
            } => {
                self.sort(session, req, criteria, charset, search, *uid)
                    .await
            }
            CommandBody::Copy { set, mailbox, uid } => {
                self.transfer(session, user, set, name(mailbox), *uid, false)
                    .await
            }
            CommandBody::Move { set, mailbox, uid } => {
                self.transfer(session, user, set, name(mailbox), *uid, true)
                    .await
            }
            _ => Status::bad("Command not valid now"),
        })
    }

    async fn select(
        &mut self,
        session: &mut ServerSession,
        req: &Request,
        user: &User,
        name: Option<String>,
        read_only: bool,
    ) -> Status {
        // SELECT leaves the selected state first, whatever its outcome.
        self.view = None;
        let Some(name) = name else {
            return Status::new(StatusKind::No, Some(Code::NonExistent), "No such mailbox");
        };
        let store = self.store();
        let (changes_in, changes) = mpsc::unbounded_channel();
        let id = user.id;
        let opened = blocking(move || {
            let mailbox = store.mailbox(id, &name)?;
            // Subscribe first, then read: nothing committed after the read
            // is missed, and what both show is told apart by UID.
            let subscription =
                store.subscribe_with(mailbox.id, move |c| changes_in.send(c.clone()).is_ok());
            let (mailbox, messages) = store.index(mailbox.id)?;
            Ok::<_, ironpost_store::Error>((mailbox, subscription, messages))
        })
        .await;
        let (mailbox, subscription, messages) = match opened {
            Some(Ok(opened)) => opened,
            Some(Err(e)) => return store_status(&e),
            None => return server_bug(),
        };
        let mut keywords: Flags = Flags::new();
        for m in &messages {
            keywords.extend(m.keywords.iter().cloned());
        }
        let last_uid = messages.last().map_or(0, |m| m.uid);
        let uidnext = mailbox.uidnext.max(last_uid.saturating_add(1));
        let view = View::new(
            Selected {
                mailbox: mailbox.id,
                name: mailbox.name.clone(),
                uidvalidity: mailbox.uidvalidity,
                read_only,
                messages,
                changes,
                subscription,
            },
            &self.service.recent,
        );
        let mut flags = imap_flags(&keywords, false);
        let system = [
            ImapFlag::Answered,
            ImapFlag::Flagged,
            ImapFlag::Deleted,
            ImapFlag::Seen,
            ImapFlag::Draft,
        ];
        flags.splice(0..0, system.iter().cloned());
        let _ = session.respond(req, Data::Flags(flags.clone()));
        let _ = session.respond(req, Data::Exists(view.len() as u32));
        let _ = session.respond(req, Data::Recent(view.recent_count() as u32));
        if let Some(first) = view.first_unseen().and_then(NonZeroU32::new) {
            let _ = session.push_status(Status::new(
                StatusKind::Ok,
                Some(Code::Unseen(first)),
                "First unseen",
            ));
        }
        let permanent = if read_only {
            Vec::new()
        } else {
            let mut permanent: Vec<PermanentFlag> =
                flags.into_iter().map(PermanentFlag::Flag).collect();
            permanent.push(PermanentFlag::AnyKeyword);
            permanent
        };
        let _ = session.push_status(Status::new(
            StatusKind::Ok,
            Some(Code::PermanentFlags(permanent)),
            "Limited",
        ));
        if let Some(validity) = NonZeroU32::new(view.uidvalidity) {
            let _ = session.push_status(Status::new(
                StatusKind::Ok,
                Some(Code::UidValidity(validity)),
                "UIDs valid",
            ));
        }
        if let Some(next) = NonZeroU32::new(uidnext) {
            let _ = session.push_status(Status::new(
                StatusKind::Ok,
                Some(Code::UidNext(next)),
                "Predicted next UID",
            ));
        }
        self.view = Some(view);
        if read_only {
            Status::new(StatusKind::Ok, Some(Code::ReadOnly), "EXAMINE completed")
        } else {
            Status::new(StatusKind::Ok, Some(Code::ReadWrite), "SELECT completed")
        }
    }

    async fn expunge(&mut self, set: Option<&SequenceSet>) -> Status {
        let Some(view) = self.view.as_ref() else {
            return no_mailbox();
        };
        if view.read_only {
            return read_only();
        }
        let only: Option<Vec<u32>> = set.map(|set| {
            view.resolve(set, true)
                .into_iter()
                .map(|(_, u)| u)
                .collect()
        });
        // The removals come back through the feed and are told from there.
        let (answer, answered) = tokio::sync::oneshot::channel();
        let queued =
            self.service
                .store
                .expunge_then(view.mailbox, only.as_deref(), move |result| {
                    let _ = answer.send(result);
                });
        if let Err(e) = queued {
            return store_status(&e);
        }
        match answered.await {
            Ok(Ok(_)) => Status::ok("EXPUNGE completed"),
            Ok(Err(e)) => store_status(&e),
            Err(_) => server_bug(),
        }
    }

    async fn fetch(
        &mut self,
        session: &mut ServerSession,
        req: &Request,
        set: &SequenceSet,
        mut attributes: Vec<FetchAttribute>,
        by_uid: bool,
        conn: &mut Connection,
    ) -> Result<Status, &'static str> {
        let Some(view) = self.view.as_mut() else {
            return Ok(no_mailbox());
        };
        if by_uid && !attributes.contains(&FetchAttribute::Uid) {
            attributes.insert(0, FetchAttribute::Uid);
        }
        let metas = view.metas(&view.resolve(set, by_uid));
        if metas.is_empty() {
            return Ok(Status::ok("FETCH completed"));
        }
        let need = fetch::need(&attributes);
        if need == Need::Index {
            // Flags, sizes, dates: the view has them. Written out in steps;
            // the last step goes out with the tagged reply, in one write.
            let mut steps = metas.chunks(INDEX_STEP).peekable();
            while let Some(step) = steps.next() {
                for meta in step {
                    if let Some(data) = fetch_data(meta, None, &attributes) {
                        let _ = session.respond(req, data);
                    }
                }
                if steps.peek().is_some() {
                    flush_output(session, conn).await?;
                }
            }
            return Ok(Status::ok("FETCH completed"));
        }
        let (store, mailbox) = (self.service.store.clone(), view.mailbox);
        // Reading a body sets \Seen, and the client hears the new flags. The
        // first step's trip to the blocking pool sets it on every message
        // of the command, then reads.
        let unseen: Vec<u32> = if fetch::sets_seen(&attributes) && !view.read_only {
            metas
                .iter()
                .filter(|m| !m.flags.contains(&Flag::Seen))
                .map(|m| m.uid)
                .collect()
        } else {
            Vec::new()
        };
        let mut seen = (!unseen.is_empty()).then_some(unseen);
        let mut now_seen: HashMap<u32, Flags> = HashMap::new();
        let mut with_flags = attributes.clone();
        if !with_flags.contains(&FetchAttribute::Flags) {
            with_flags.push(FetchAttribute::Flags);
        }
        let both = Arc::new((attributes, with_flags));
        let mut unreadable = 0usize;
        let mut metas = metas.into_iter().peekable();
        while metas.peek().is_some() {
            // One step: up to STEP_MESSAGES messages or STEP_BYTES of them.
            let mut step = Vec::new();
            let mut bytes = 0u64;
            while let Some(mut meta) = metas.next_if(|m| {
                step.is_empty() || (step.len() < STEP_MESSAGES && bytes + m.size <= STEP_BYTES)
            }) {
                bytes += meta.size;
                let changed = match now_seen.get(&meta.uid) {
                    Some(flags) => {
                        meta.flags = MessageFlags::new(flags);
                        true
                    }
                    None => false,
                };
                step.push((meta, changed));
            }
            let (store, both, seen) = (store.clone(), both.clone(), seen.take());
            let read = blocking(move || fetch_step(&store, mailbox, step, seen, need, &both)).await;
            let (answers, failed, updated) = match read {
                Some(Ok(read)) => read,
                Some(Err(e)) => return Ok(store_status(&e)),
                None => return Ok(server_bug()),
            };
            for update in updated.into_iter().filter(|u| u.changed) {
                view.own_flag_change(update.uid, update.modseq, &update.flags);
                now_seen.insert(update.uid, update.flags);
            }
            unreadable += failed;
            for data in answers {
                let _ = session.respond(req, data);
            }
            if metas.peek().is_some() {
                flush_output(session, conn).await?;
            }
        }
        Ok(if unreadable > 0 {
            Status::new(
                StatusKind::No,
                Some(Code::Corruption),
                "Some messages could not be read",
            )
        } else {
            Status::ok("FETCH completed")
        })
    }

    async fn store_command(
        &mut self,
        session: &mut ServerSession,
        req: &Request,
        set: &SequenceSet,
        action: &StoreAction,
        by_uid: bool,
    ) -> Status {
        let Some(view) = self.view.as_mut() else {
            return no_mailbox();
        };
        if view.read_only {
            return read_only();
        }
        let targets = view.resolve(set, by_uid);
        if targets.is_empty() {
            return Status::ok("STORE completed");
        }
        let uids: Vec<u32> = targets.iter().map(|&(_, u)| u).collect();
        let op = match action.mode {
            StoreMode::Add => FlagOp::Add,
            StoreMode::Remove => FlagOp::Remove,
            _ => FlagOp::Replace,
        };
        let flags = store_flags(&action.flags);
        // Straight to the store's committer: no blocking thread waits for it.
        let (answer, answered) = tokio::sync::oneshot::channel();
        let queued = self.service.store.store_flags_then(
            view.mailbox,
            &uids,
            op,
            flags,
            None,
            move |result| {
                let _ = answer.send(result);
            },
        );
        if let Err(e) = queued {
            return store_status(&e);
        }
        let result = match answered.await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => return store_status(&e),
            Err(_) => return server_bug(),
        };
        for update in result.updated {
            if update.changed {
                view.own_flag_change(update.uid, update.modseq, &update.flags);
            }
            if action.silent {
                continue;
            }
            let Some(seq) = view.seq(update.uid).and_then(NonZeroU32::new) else {
                continue;
            };
            let mut items = vec![FetchItem::Flags(imap_flags(
                &update.flags,
                view.is_recent(update.uid),
            ))];
            if let (true, Some(uid)) = (by_uid, NonZeroU32::new(update.uid)) {
                items.push(FetchItem::Uid(uid));
            }
            let _ = session.respond(req, Data::Fetch { seq, items });
        }
        Status::ok("STORE completed")
    }

    async fn search(
        &mut self,
        session: &mut ServerSession,
        req: &Request,
        charset: Option<&Atom>,
        criteria: &[SearchKey],
        by_uid: bool,
    ) -> Status {
        if !search::charset_supported(charset) {
            return bad_charset();
        }
        let keys = criteria.to_vec();
        let need = search::need(&keys);
        let found = self
            .each_message(need, move |meta, raw, bounds| {
                search::matches(&keys, meta, raw, bounds)
            })
            .await;
        let found = match found {
            Ok(found) => found,
            Err(status) => return status,
        };
        let numbers = found
            .into_iter()
            .filter(|(_, matched)| *matched)
            .filter_map(|((seq, uid), _)| NonZeroU32::new(if by_uid { uid } else { seq }))
            .collect();
        let _ = session.respond(req, Data::Search(numbers));
        Status::ok("SEARCH completed")
    }

    async fn sort(
        &mut self,
        session: &mut ServerSession,
        req: &Request,
        criteria: &[SortCriterion],
        charset: &Atom,
        keys: &[SearchKey],
        by_uid: bool,
    ) -> Status {
        if !search::charset_supported(Some(charset)) {
            return bad_charset();
        }
        let (criteria, keys) = (criteria.to_vec(), keys.to_vec());
        let need = search::need(&keys).max(search::sort_need(&criteria));
        let sort_by = criteria.clone();
        let found = self
            .each_message(need, move |meta, raw, bounds| {
                search::matches(&keys, meta, raw, bounds)
                    .then(|| search::sort_values(&sort_by, meta, raw))
            })
            .await;
        let found = match found {
            Ok(found) => found,
            Err(status) => return status,
        };
        let mut sorted: Vec<_> = found
            .into_iter()
            .filter_map(|((seq, uid), values)| Some((seq, uid, values?)))
            .collect();
        search::sort(&criteria, &mut sorted);
        let numbers = sorted
            .into_iter()
            .filter_map(|(seq, uid, _)| NonZeroU32::new(if by_uid { uid } else { seq }))
            .collect();
        let _ = session.respond(req, Data::Sort(numbers));
        Status::ok("SORT completed")
    }

    /// Runs `f` over every message of the view (its bytes as `need` says);
    /// returns ((number, UID), result) in order.
    async fn each_message<T: Send + 'static>(
        &mut self,
        need: Need,
        f: impl Fn(&Meta, Option<&[u8]>, search::Bounds) -> T + Send + 'static,
    ) -> Result<Vec<((u32, u32), T)>, Status> {
        let Some(view) = self.view.as_ref() else {
            return Err(no_mailbox());
        };
        let all = SequenceSet::new(vec![SeqRange::Range(
            SeqNumber::Value(NonZeroU32::MIN),
            SeqNumber::Largest,
        )])
        .map_err(|_| server_bug())?;
        let metas = view.metas(&view.resolve(&all, false));
        let bounds = search::Bounds {
            last_seq: view.len() as u32,
            last_uid: view.last_uid(),
        };
        if need == Need::Index && metas.len() <= INLINE_SEARCH {
            // Flags, sizes and dates of a mailbox of ordinary size: quicker
            // here than a trip to the blocking pool.
            return Ok(by_index(metas, bounds, &f));
        }
        let (store, mailbox) = (self.store(), view.mailbox);
        // One trip to the blocking pool: each message's bytes as far as
        // `need` goes, one at a time, all through one read of the store.
        let result = blocking(move || {
            if need == Need::Index {
                return Ok(by_index(metas, bounds, &f));
            }
            let mut out = Vec::with_capacity(metas.len());
            let ranges = uid_ranges(metas.iter().map(|m| m.uid));
            let mut metas = metas.into_iter().peekable();
            store.read_messages_in(mailbox, &ranges, need == Need::Header, |uid, bytes| {
                while metas.next_if(|m| m.uid < uid).is_some() {}
                let Some(meta) = metas.next_if(|m| m.uid == uid) else {
                    // Expunged meanwhile: not in the store's answer.
                    return true;
                };
                match bytes {
                    Ok(raw) => {
                        let value = f(&meta, Some(&raw), bounds);
                        out.push(((meta.seq, meta.uid), value));
                    }
                    Err(e) => {
                        tracing::warn!(mailbox = %mailbox, uid, error = %e, "SEARCH: cannot read a message");
                    }
                }
                true
            })?;
            Ok::<_, ironpost_store::Error>(out)
        })
        .await;
        match result {
            Some(Ok(out)) => Ok(out),
            Some(Err(e)) => Err(store_status(&e)),
            None => Err(server_bug()),
        }
    }

    async fn transfer(
        &mut self,
        session: &mut ServerSession,
        user: &User,
        set: &SequenceSet,
        target: Option<String>,
        by_uid: bool,
        moving: bool,
    ) -> Status {
        let Some(view) = self.view.as_ref() else {
            return no_mailbox();
        };
        if moving && view.read_only {
            return read_only();
        }
        let Some(target) = target else {
            return Status::new(StatusKind::No, Some(Code::TryCreate), "No such mailbox");
        };
        let uids: Vec<u32> = view
            .resolve(set, by_uid)
            .into_iter()
            .map(|(_, u)| u)
            .collect();
        let (store, source, id) = (self.store(), view.mailbox, user.id);
        let done = blocking(move || {
            let target = store.mailbox(id, &target)?;
            if uids.is_empty() {
                return Ok(None);
            }
            let copied = if moving {
                store.move_messages(source, &uids, target.id)?
            } else {
                store.copy_messages(source, &uids, target.id)?
            };
            Ok::<_, ironpost_store::Error>(Some(copied))
        })
        .await;
        let verb = if moving { "MOVE" } else { "COPY" };
        let copied = match done {
            Some(Ok(Some(copied))) => copied,
            Some(Ok(None)) => return Status::ok(&format!("{verb} completed")),
            Some(Err(ironpost_store::Error::MailboxNotFound(_))) => {
                return Status::new(StatusKind::No, Some(Code::TryCreate), "No such mailbox");
            }
            Some(Err(e)) => return store_status(&e),
            None => return server_bug(),
        };
        let code = copy_uid(copied.uidvalidity, &copied.uids);
        if moving {
            // RFC 6851: COPYUID in an untagged OK, before the expunges.
            if let Some(code) = code {
                let _ = session.push_status(Status::new(StatusKind::Ok, Some(code), "Moved"));
            }
            return Status::ok("MOVE completed");
        }
        match code {
            Some(code) => Status::new(StatusKind::Ok, Some(code), "COPY completed"),
            None => Status::ok("COPY completed"),
        }
    }
}

fn bad_charset() -> Status {
    let supported = ["US-ASCII", "UTF-8"]
        .iter()
        .filter_map(|c| Atom::new(*c).ok())
        .collect();
    Status::new(
        StatusKind::No,
        Some(Code::BadCharset(supported)),
        "Supported charsets: US-ASCII and UTF-8",
    )
}

/// The COPYUID code of a copy: source and destination UIDs in the same
/// order, runs written as ranges.
fn copy_uid(uidvalidity: u32, pairs: &[(u32, u32)]) -> Option<Code> {
    let mut source = Vec::new();
    let mut destination = Vec::new();
    let mut i = 0;
    while i < pairs.len() {
        let mut j = i;
        while j + 1 < pairs.len()
            && pairs[j + 1].0 == pairs[j].0 + 1
            && pairs[j + 1].1 == pairs[j].1 + 1
        {
            j += 1;
        }
        source.push(range(pairs[i].0, pairs[j].0)?);
        destination.push(range(pairs[i].1, pairs[j].1)?);
        i = j + 1;
    }
    Some(Code::CopyUid {
        uid_validity: NonZeroU32::new(uidvalidity)?,
        source: SequenceSet::new(source).ok()?,
        destination: SequenceSet::new(destination).ok()?,
    })
}

fn range(from: u32, to: u32) -> Option<SeqRange> {
    let (a, b) = (NonZeroU32::new(from)?, NonZeroU32::new(to)?);
    Some(if a == b {
        SeqRange::Single(SeqNumber::Value(a))
    } else {
        SeqRange::Range(SeqNumber::Value(a), SeqNumber::Value(b))
    })
}

/// `f` over the index entries alone, for keys that need no message bytes.
fn by_index<T>(
    metas: Vec<Meta>,
    bounds: search::Bounds,
    f: &impl Fn(&Meta, Option<&[u8]>, search::Bounds) -> T,
) -> Vec<((u32, u32), T)> {
    metas
        .into_iter()
        .map(|meta| ((meta.seq, meta.uid), f(&meta, None, bounds)))
        .collect()
}

/// Ascending UIDs as ranges of consecutive ones.
fn uid_ranges(uids: impl Iterator<Item = u32>) -> Vec<(u32, u32)> {
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for uid in uids {
        match ranges.last_mut() {
            Some(last) if last.1.checked_add(1) == Some(uid) => last.1 = uid,
            _ => ranges.push((uid, uid)),
        }
    }
    ranges
}

/// One step of a FETCH that reads message bytes, on the blocking pool:
/// first sets `\Seen` on the UIDs of `seen` (the command's whole set, in its
/// first step), then reads each message of the step (as far as `need`
/// goes) and renders its answer, with FLAGS added (`both.1`) where its flags
/// changed. Returns the answers, the messages that could not be read, and
/// the flag updates made.
fn fetch_step(
    store: &Store,
    mailbox: MailboxId,
    mut step: Vec<(Meta, bool)>,
    seen: Option<Vec<u32>>,
    need: Need,
    both: &(Vec<FetchAttribute>, Vec<FetchAttribute>),
) -> Result<(Vec<Data>, usize, Vec<FlagUpdate>), ironpost_store::Error> {
    let mut updated = Vec::new();
    if let Some(uids) = seen {
        let flags: Flags = [Flag::Seen].into_iter().collect();
        updated = store
            .store_flags(mailbox, &uids, FlagOp::Add, flags, None)?
            .updated;
        for update in updated.iter().filter(|u| u.changed) {
            if let Some((meta, changed)) = step.iter_mut().find(|(m, _)| m.uid == update.uid) {
                meta.flags = MessageFlags::new(&update.flags);
                *changed = true;
            }
        }
    }
    let mut out = Vec::with_capacity(step.len());
    let mut failed = 0usize;
    let ranges = uid_ranges(step.iter().map(|(m, _)| m.uid));
    let mut step = step.into_iter().peekable();
    let read = store.read_messages_in(mailbox, &ranges, need == Need::Header, |uid, bytes| {
        // A message expunged meanwhile is not read: not answered.
        while step.next_if(|(m, _)| m.uid < uid).is_some() {}
        let Some((meta, changed)) = step.next_if(|(m, _)| m.uid == uid) else {
            return true;
        };
        match bytes {
            Ok(raw) => {
                let attributes = if changed { &both.1 } else { &both.0 };
                out.extend(fetch_data(&meta, Some(&raw), attributes));
            }
            Err(e) => {
                failed += 1;
                tracing::warn!(mailbox = %mailbox, uid, error = %e, "FETCH: cannot read a message");
            }
        }
        true
    });
    if let Err(e) = read {
        failed += 1;
        tracing::warn!(mailbox = %mailbox, error = %e, "FETCH: cannot read the messages");
    }
    Ok((out, failed, updated))
}

/// The FETCH response of one message, unless it has no item to give.
fn fetch_data(meta: &Meta, raw: Option<&[u8]>, attributes: &[FetchAttribute]) -> Option<Data> {
    let items = fetch::items(meta, raw, attributes);
    let seq = NonZeroU32::new(meta.seq)?;
    (!items.is_empty()).then_some(Data::Fetch { seq, items })
}

/// Writes out what the session has buffered, so that a FETCH of many
/// messages is never held whole.
async fn flush_output(
    session: &mut ServerSession,
    conn: &mut Connection,
) -> Result<(), &'static str> {
    let mut out = Vec::new();
    if session.poll_transmit(&mut out) > 0 {
        conn.write_all(&out).await.map_err(|_| "write error")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_uids_as_ranges() {
        let code = copy_uid(7, &[(1, 10), (2, 11), (3, 12), (5, 13), (6, 20)]).unwrap();
        let mut out = Vec::new();
        ironpost_imap_proto::Response::Tagged(
            ironpost_imap_proto::types::Tag::new("a").unwrap(),
            Status::new(StatusKind::Ok, Some(code), "done"),
        )
        .encode(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a OK [COPYUID 7 1:3,5,6 10:12,13,20] done\r\n"
        );
    }
}
