//! The IMAP driver: runs an imap-proto [`ServerSession`] on a connection and
//! serves the account's mailboxes from the store (SPEC I-1 … I-4).
//!
//! - Login is with the account's address (an alias cannot log in), checked
//!   against the store.
//! - Mailbox commands (`mailbox.rs`) and the commands of the selected state
//!   (`selected.rs`) run their store calls on the blocking pool; FETCH
//!   renders from the message bytes with the mime crate (`fetch.rs`),
//!   SEARCH and SORT evaluate there too (`search.rs`).
//! - The selected mailbox is a [`view::View`] fed by the store's change feed,
//!   so changes made by other sessions and deliveries reach this one at the
//!   points IMAP allows, and at once during IDLE (no polling).
//! - APPEND streams the message into the spool the SMTP server uses
//!   (memory, then the blob store), then adds it to the mailbox.

mod convert;
mod fetch;
mod mailbox;
mod search;
mod selected;
mod view;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ironpost_imap_proto::types::Atom;
use ironpost_imap_proto::{
    AppendEndRequest, AppendRequest, Code, Event, IdleDoneRequest, IdleRequest, LoginRequest,
    Misuse, Request, ServerConfig, ServerSession, Status, StatusKind,
};
use ironpost_store::{AccountId, AuthError, Flags, MailboxId, Store, Timestamp};
use tokio::sync::watch;
use tracing::{info, warn};

use super::conn::Connection;
use super::listen::ListenerContext;
use super::spool::{Spool, Spooled};
use super::{SessionIds, begin, blocking};
use crate::config::{Config, TlsMode};
use view::{RecentMarks, View};

/// One message as a command sees it.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    /// Its message sequence number in this session.
    pub(crate) seq: u32,
    /// Its UID.
    pub(crate) uid: u32,
    /// Its flags now.
    pub(crate) flags: view::MessageFlags,
    /// Whether it is `\Recent` in this session.
    pub(crate) recent: bool,
    /// Its internal date, seconds since the epoch.
    pub(crate) internal_date: Timestamp,
    /// RFC822.SIZE: its octets as stored.
    pub(crate) size: u64,
}

/// How much of a message's bytes a command needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Need {
    /// The index entry is enough (flags, size, dates, UID).
    Index,
    /// The top-level header, up to and including the empty line.
    Header,
    /// The whole message.
    Whole,
}

/// What every IMAP session of the server shares.
pub(crate) struct ImapService {
    store: Store,
    base: ServerConfig,
    ids: Arc<SessionIds>,
    recent: RecentMarks,
}

impl ImapService {
    pub(crate) fn new(config: &Config, store: Store, ids: Arc<SessionIds>) -> ImapService {
        let imap = &config.imap;
        let mut base = ServerConfig::default();
        base.greeting = imap.greeting.clone();
        base.login_requires_tls = !imap.allow_plaintext_auth;
        base.limits.bad_commands = imap.max_bad_commands as usize;
        base.limits.autologout = Duration::from_secs(imap.timeout_seconds);
        base.limits.message_size = imap.max_append_size;
        ImapService {
            store,
            base,
            ids,
            recent: RecentMarks::default(),
        }
    }

    fn session_config(&self, listener: &ListenerContext) -> ServerConfig {
        let mut config = self.base.clone();
        config.starttls = listener.mode == TlsMode::Starttls && listener.tls.is_some();
        config.tls_active = listener.mode == TlsMode::ImplicitTls;
        config
    }
}

/// The logged-in account.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub(crate) id: AccountId,
    pub(crate) address: String,
}

/// An APPEND whose message is coming.
struct Appending {
    mailbox: MailboxId,
    flags: Flags,
    date: Option<Timestamp>,
    spool: Option<Spool>,
    failed: bool,
}

/// Runs one IMAP session until it ends.
pub(crate) async fn run(
    service: Arc<ImapService>,
    listener: Arc<ListenerContext>,
    mut conn: Connection,
    mut shutdown: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let peer = conn.peer();
    let Some(id) = begin(&service.ids, &listener, &mut conn).await else {
        return;
    };
    let mut session = ServerSession::new(service.session_config(&listener), Instant::now());
    let mut host = Host {
        service: &service,
        id,
        peer,
        user: None,
        view: None,
        appending: None,
        idling: false,
        start_tls: false,
        commands: 0,
        appended: 0,
    };
    let outcome = drive(&mut host, &mut session, &mut conn, &listener, &mut shutdown).await;
    conn.shutdown().await;
    info!(
        session = %host.id,
        client = %peer.ip(),
        listener = %listener.name,
        tls = conn.tls().map(|t| format!("{} {}", t.version, t.cipher)).as_deref().unwrap_or("no"),
        user = host.user.as_ref().map_or("", |u| u.address.as_str()),
        commands = host.commands,
        appended = host.appended,
        bytes_in = conn.bytes_in,
        bytes_out = conn.bytes_out,
        seconds = format_args!("{:.3}", started.elapsed().as_secs_f64()),
        end = outcome,
        "connection"
    );
}

async fn drive(
    host: &mut Host<'_>,
    session: &mut ServerSession,
    conn: &mut Connection,
    listener: &ListenerContext,
    shutdown: &mut watch::Receiver<bool>,
) -> &'static str {
    let mut out = Vec::new();
    let mut stopping = *shutdown.borrow();
    loop {
        while let Some(event) = session.poll_event() {
            // Boxed: the future of a command (FETCH, APPEND...) is large,
            // and unboxed it would be part of every idle session's task.
            if let Err(why) = Box::pin(host.handle(session, event, conn)).await {
                return why;
            }
        }
        out.clear();
        if session.poll_transmit(&mut out) > 0 && conn.write_all(&out).await.is_err() {
            return "write error";
        }
        // An idle session keeps no output buffer.
        out = Vec::new();
        if session.is_closed() {
            return if stopping { "shutdown" } else { "closed" };
        }
        if stopping {
            session.shutdown("Server shutting down");
            continue;
        }
        if std::mem::take(&mut host.start_tls) {
            if let Err(why) = super::start_tls(listener, conn).await {
                return why;
            }
            if session.tls_established().is_err() {
                return "TLS state error";
            }
            continue;
        }
        let deadline = session.poll_timeout();
        let wants_input = session.wants_input();
        tokio::select! {
            changed = shutdown.changed() => {
                stopping = changed.is_err() || *shutdown.borrow();
            }
            read = conn.read(), if wants_input => match read {
                Ok([]) => return "client closed",
                Ok(bytes) => session.handle_input(Instant::now(), bytes),
                Err(_) => return "read error",
            },
            change = next_change(host.view.as_mut()) => match change {
                Some(change) => host.changed(session, change),
                // The store dropped the subscription (it is closing).
                None => host.view = None,
            },
            () = super::sleep_until(deadline), if deadline.is_some() => {
                session.handle_timeout(Instant::now());
            }
        }
    }
}

/// The next change of the selected mailbox; never, without one.
async fn next_change(view: Option<&mut View>) -> Option<ironpost_store::Change> {
    match view {
        Some(view) => view.next_change().await,
        None => std::future::pending().await,
    }
}

/// The session's side of the decisions.
pub(crate) struct Host<'a> {
    service: &'a ImapService,
    id: String,
    peer: SocketAddr,
    user: Option<User>,
    view: Option<View>,
    appending: Option<Appending>,
    idling: bool,
    start_tls: bool,
    commands: u64,
    appended: u64,
}

impl Host<'_> {
    fn store(&self) -> Store {
        self.service.store.clone()
    }

    /// Answers one event; an error ends the connection (with why).
    async fn handle(
        &mut self,
        session: &mut ServerSession,
        event: Event,
        conn: &mut Connection,
    ) -> Result<(), &'static str> {
        let answered = match event {
            Event::Connect(req) => session.accept_connection(req),
            Event::StartTls => {
                self.start_tls = true;
                Ok(())
            }
            Event::Login(req) => self.login(session, req).await,
            Event::Request(req) => {
                self.commands += 1;
                return self.request(session, req, conn).await;
            }
            Event::Append(req) => {
                self.commands += 1;
                self.append(session, req).await
            }
            Event::AppendChunk(chunk) => {
                self.append_chunk(chunk).await;
                Ok(())
            }
            Event::AppendEnd(req) => self.append_end(session, req).await,
            Event::AppendAborted => {
                self.appending = None;
                Ok(())
            }
            Event::Idle(req) => self.idle(session, req),
            Event::IdleDone(req) => self.idle_done(session, req),
            Event::ClientId(fields) => {
                info!(session = %self.id, client = ?fields, "client id");
                Ok(())
            }
            _ => Ok(()),
        };
        if let Err(misuse) = answered {
            warn!(session = %self.id, error = %misuse, "IMAP driver error");
        }
        Ok(())
    }

    async fn login(
        &mut self,
        session: &mut ServerSession,
        req: LoginRequest,
    ) -> Result<(), Misuse> {
        let failed = || {
            Status::new(
                StatusKind::No,
                Some(Code::AuthenticationFailed),
                "Authentication failed",
            )
        };
        let Some(username) = req.username.to_str().map(str::to_string) else {
            return session.reject_login(req, failed());
        };
        if req
            .authzid
            .as_deref()
            .is_some_and(|z| !z.is_empty() && !z.eq_ignore_ascii_case(&username))
        {
            return session.reject_login(req, failed());
        }
        let Ok(password) = String::from_utf8(req.password.expose().to_vec()) else {
            return session.reject_login(req, failed());
        };
        let store = self.store();
        let name = username.clone();
        match blocking(move || store.authenticate(&name, &password)).await {
            Some(Ok(account)) => {
                info!(session = %self.id, client = %self.peer.ip(), user = %account.address, "logged in");
                self.user = Some(User {
                    id: account.id,
                    address: account.address,
                });
                session.accept_login(req)
            }
            Some(Err(AuthError::Store(e))) => {
                warn!(session = %self.id, error = %e, "login: store error");
                let status =
                    Status::new(StatusKind::No, Some(Code::Unavailable), "Try again later");
                session.reject_login(req, status)
            }
            Some(Err(e)) => {
                let reason = match e {
                    AuthError::Disabled(_) => "account disabled",
                    _ => "invalid credentials",
                };
                info!(session = %self.id, client = %self.peer.ip(), user = %username, reason, "authentication failed");
                session.reject_login(req, failed())
            }
            None => {
                let status = Status::new(StatusKind::No, Some(Code::ServerBug), "Try again later");
                session.reject_login(req, status)
            }
        }
    }

    /// A change of the selected mailbox arrived from the feed: told at once
    /// during IDLE, kept for the end of the next command otherwise.
    fn changed(&mut self, session: &mut ServerSession, change: ironpost_store::Change) {
        let Some(view) = self.view.as_mut() else {
            return;
        };
        view.receive(change);
        if self.idling {
            self.report(session, true);
        }
    }

    /// Tells the client what changed in the selected mailbox, as far as the
    /// moment allows (`allow_expunge`).
    fn report(&mut self, session: &mut ServerSession, allow_expunge: bool) {
        let Some(view) = self.view.as_mut() else {
            return;
        };
        view.receive_waiting();
        if view.overflowed() {
            // Rare: reloading needs the store; the next command does it.
            return;
        }
        for data in view.flush(allow_expunge, &self.service.recent) {
            let _ = session.push(data);
        }
    }

    async fn request(
        &mut self,
        session: &mut ServerSession,
        req: Request,
        conn: &mut Connection,
    ) -> Result<(), &'static str> {
        let Some(user) = self.user.clone() else {
            let _ = session.complete(req, Status::bad("Log in first"));
            return Ok(());
        };
        let status = match selected::is_selected_command(&req.command) {
            true => self.selected(session, &req, &user, conn).await?,
            false => self.mailbox_command(session, &req, &user).await,
        };
        let allow_expunge = selected::allows_expunge(&req.command);
        if status.kind == StatusKind::Ok || self.view.is_some() {
            self.reload_if_needed(session, allow_expunge).await;
            self.report(session, allow_expunge);
        }
        if let Err(misuse) = session.complete(req, status) {
            warn!(session = %self.id, error = %misuse, "IMAP driver error");
        }
        Ok(())
    }

    /// After the feed overflowed (a session that read nothing while a
    /// mailbox changed a lot), the view is rebuilt from the store.
    async fn reload_if_needed(&mut self, session: &mut ServerSession, allow_expunge: bool) {
        let Some(view) = self.view.as_ref() else {
            return;
        };
        if !view.overflowed() {
            return;
        }
        let (store, mailbox) = (self.store(), view.mailbox);
        let Some(Ok((_, messages))) = blocking(move || store.index(mailbox)).await else {
            return;
        };
        if let Some(view) = self.view.as_mut() {
            for data in view.reload(messages, allow_expunge, &self.service.recent) {
                let _ = session.push(data);
            }
        }
    }

    async fn append(
        &mut self,
        session: &mut ServerSession,
        req: AppendRequest,
    ) -> Result<(), Misuse> {
        let Some(user) = self.user.clone() else {
            return session.reject_append(req, Status::bad("Log in first"));
        };
        let Some(name) = mailbox::name(&req.mailbox) else {
            return session.reject_append(req, Status::no("Invalid mailbox name"));
        };
        let store = self.store();
        let size = req.size;
        let checked = blocking(move || {
            let mailbox = store.mailbox(user.id, &name)?;
            let account = store.account_by_id(user.id)?;
            let full = account.quota_bytes > 0
                && account.used_bytes.saturating_add(size) > account.quota_bytes;
            Ok::<_, ironpost_store::Error>((mailbox.id, full))
        })
        .await;
        match checked {
            Some(Ok((_, true))) => {
                let status = Status::new(StatusKind::No, Some(Code::OverQuota), "Quota exceeded");
                session.reject_append(req, status)
            }
            Some(Ok((mailbox, false))) => {
                self.appending = Some(Appending {
                    mailbox,
                    flags: convert::store_flags(&req.flags),
                    date: req.date.map(|d| d.unix_timestamp()),
                    spool: Some(Spool::new(self.store(), Vec::new())),
                    failed: false,
                });
                session.accept_append(req)
            }
            // RFC 3501 6.3.11: a mailbox that could be created is TRYCREATE.
            Some(Err(ironpost_store::Error::MailboxNotFound(_))) => {
                let status = Status::new(StatusKind::No, Some(Code::TryCreate), "No such mailbox");
                session.reject_append(req, status)
            }
            Some(Err(e)) => session.reject_append(req, mailbox::store_status(&e)),
            None => session.reject_append(req, mailbox::server_bug()),
        }
    }

    async fn append_chunk(&mut self, chunk: Bytes) {
        let Some(appending) = self.appending.as_mut() else {
            return;
        };
        if appending.failed {
            return;
        }
        if let Some(spool) = appending.spool.as_mut()
            && let Err(e) = spool.push(chunk).await
        {
            warn!(session = %self.id, error = %e, "APPEND: cannot spool the message");
            appending.failed = true;
        }
    }

    async fn append_end(
        &mut self,
        session: &mut ServerSession,
        req: AppendEndRequest,
    ) -> Result<(), Misuse> {
        let Some(mut appending) = self.appending.take() else {
            return session.complete_append(req, mailbox::server_bug());
        };
        let spool = appending.spool.take();
        let spooled = match spool {
            Some(spool) if !appending.failed => spool.finish().await,
            _ => return session.complete_append(req, mailbox::server_bug()),
        };
        let spooled = match spooled {
            Ok(spooled) => spooled,
            Err(e) => {
                warn!(session = %self.id, error = %e, "APPEND: cannot store the message");
                return session.complete_append(req, mailbox::server_bug());
            }
        };
        let store = self.store();
        let Appending {
            mailbox,
            flags,
            date,
            ..
        } = appending;
        let stored = blocking(move || match spooled {
            Spooled::Inline(bytes) => store.append(mailbox, &bytes, flags, date),
            Spooled::Blob(blob) => store
                .deliver(blob, &[mailbox], flags, date)?
                .pop()
                .unwrap_or(Err(ironpost_store::Error::NoSuchMailbox(mailbox))),
        })
        .await;
        let status = match stored {
            Some(Ok(appended)) => {
                self.appended += 1;
                match (
                    std::num::NonZeroU32::new(appended.uidvalidity),
                    std::num::NonZeroU32::new(appended.uid),
                ) {
                    (Some(uid_validity), Some(uid)) => Status::new(
                        StatusKind::Ok,
                        Some(Code::AppendUid {
                            uid_validity,
                            uids: ironpost_imap_proto::types::SequenceSet::single(uid),
                        }),
                        "APPEND completed",
                    ),
                    _ => Status::ok("APPEND completed"),
                }
            }
            Some(Err(e)) => mailbox::store_status(&e),
            None => mailbox::server_bug(),
        };
        // The new message is in the selected mailbox's feed already.
        self.report(session, true);
        session.complete_append(req, status)
    }

    fn idle(&mut self, session: &mut ServerSession, req: IdleRequest) -> Result<(), Misuse> {
        session.accept_idle(req)?;
        self.idling = true;
        self.report(session, true);
        Ok(())
    }

    fn idle_done(
        &mut self,
        session: &mut ServerSession,
        req: IdleDoneRequest,
    ) -> Result<(), Misuse> {
        self.idling = false;
        self.report(session, true);
        session.complete_idle(req)
    }
}

/// An atom known to be valid.
pub(crate) fn atom(name: &str) -> Option<Atom> {
    Atom::new(name).ok()
}
