//! The POP3 driver: runs a pop3-proto [`ServerSession`] on a connection,
//! serving the account's INBOX as its maildrop (SPEC P-2).
//!
//! - Login is with the account's address; credentials are checked against
//!   the store, then the maildrop is locked in the store (one POP3 session
//!   per account; a second gets `-ERR [IN-USE]`, and `ironpost account
//!   unlock-pop3` releases a lock a stuck session holds).
//! - The listing is the INBOX at login: sizes and sizes alone come from the
//!   index, unique-ids are `UIDVALIDITY.UID`, so they stay the same across
//!   sessions and match what IMAP sees.
//! - RETR and TOP stream the message (prefix and body) from the store in
//!   chunks while the session byte-stuffs them.
//! - DELE takes effect only at QUIT (the UPDATE state); a connection that
//!   drops deletes nothing. The lock is released however the session ends.

use std::io::{Read, Seek};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironpost_pop3_proto::{
    Event, LoginRequest, Maildrop, MessageProgress, Refusal, ResponseCode, RetrieveRequest,
    ServerConfig, ServerSession, UniqueId, UpdateRequest,
};
use ironpost_store::{AccountId, AuthError, MailboxId, MessageReader, Store, pop3_uidl};
use tokio::sync::watch;
use tracing::{info, warn};

use super::conn::Connection;
use super::listen::ListenerContext;
use super::{SessionIds, begin, blocking};
use crate::config::{Config, TlsMode};

/// Bytes of a message read from the store at a time.
const CHUNK: usize = 256 * 1024;

/// What every POP3 session of the server shares.
pub(crate) struct Pop3Service {
    store: Store,
    base: ServerConfig,
    ids: Arc<SessionIds>,
}

impl Pop3Service {
    pub(crate) fn new(config: &Config, store: Store, ids: Arc<SessionIds>) -> Pop3Service {
        let pop3 = &config.pop3;
        let mut base = ServerConfig::new(config.server.hostname.clone());
        base.banner = pop3.banner.clone();
        base.login_requires_tls = !pop3.allow_plaintext_auth;
        base.limits.bad_commands = pop3.max_bad_commands as usize;
        base.limits.idle_timeout = Duration::from_secs(pop3.timeout_seconds);
        Pop3Service { store, base, ids }
    }

    fn session_config(&self, listener: &ListenerContext) -> ServerConfig {
        let mut config = self.base.clone();
        config.stls = listener.mode == TlsMode::Starttls;
        config.tls_active = listener.mode == TlsMode::ImplicitTls;
        config
    }
}

/// The maildrop of a logged-in session.
struct OpenMaildrop {
    account: AccountId,
    address: String,
    mailbox: MailboxId,
    /// The UID of each message number (number n is `uids[n - 1]`).
    uids: Vec<u32>,
}

/// Runs one POP3 session until it ends.
pub(crate) async fn run(
    service: Arc<Pop3Service>,
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
        store: &service.store,
        id,
        peer,
        maildrop: None,
        retrieved: 0,
        deleted: 0,
        start_tls: false,
    };
    let outcome = drive(&mut host, &mut session, &mut conn, &listener, &mut shutdown).await;
    conn.shutdown().await;
    if let Some(maildrop) = &host.maildrop {
        // However the session ended, the maildrop is free again.
        let (store, account, holder) = (service.store.clone(), maildrop.account, host.id.clone());
        if let Some(Err(e)) = blocking(move || store.unlock_maildrop(account, Some(&holder))).await
        {
            warn!(session = %host.id, error = %e, "cannot release the POP3 lock");
        }
    }
    info!(
        session = %host.id,
        client = %peer.ip(),
        listener = %listener.name,
        tls = conn.tls().map(|t| format!("{} {}", t.version, t.cipher)).as_deref().unwrap_or("no"),
        user = host.maildrop.as_ref().map_or("", |m| m.address.as_str()),
        retrieved = host.retrieved,
        deleted = host.deleted,
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
    let mut out = Vec::with_capacity(1024);
    let mut stopping = *shutdown.borrow();
    loop {
        // The session stops taking commands while its output is full, so
        // events and transmission alternate until both are drained.
        loop {
            while let Some(event) = session.poll_event() {
                if let Err(why) = host.handle(session, event, conn).await {
                    return why;
                }
            }
            out.clear();
            if session.poll_transmit(&mut out) == 0 {
                break;
            }
            if conn.write_all(&out).await.is_err() {
                return "write error";
            }
        }
        if session.is_closed() {
            return if stopping { "shutdown" } else { "closed" };
        }
        if stopping {
            let refusal = Refusal::new("Server shutting down").with_code(ResponseCode::SYS_TEMP);
            session.shutdown(refusal);
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
            () = super::sleep_until(deadline), if deadline.is_some() => {
                session.handle_timeout(Instant::now());
            }
        }
    }
}

/// The session's side of the decisions.
struct Host<'a> {
    store: &'a Store,
    id: String,
    peer: SocketAddr,
    maildrop: Option<OpenMaildrop>,
    retrieved: u32,
    deleted: u32,
    start_tls: bool,
}

impl Host<'_> {
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
            Event::Retrieve(req) => return self.retrieve(session, req, conn).await,
            Event::Update(req) => self.update(session, req).await,
            _ => Ok(()),
        };
        if let Err(misuse) = answered {
            warn!(session = %self.id, error = %misuse, "POP3 driver error");
        }
        Ok(())
    }

    async fn login(
        &mut self,
        session: &mut ServerSession,
        req: LoginRequest,
    ) -> Result<(), ironpost_pop3_proto::Misuse> {
        if req
            .authzid
            .as_deref()
            .is_some_and(|z| !z.is_empty() && !z.eq_ignore_ascii_case(&req.username))
        {
            let refusal = Refusal::new("Authentication failed").with_code(ResponseCode::AUTH);
            return session.reject_login(req, refusal);
        }
        let (store, holder) = (self.store.clone(), self.id.clone());
        let username = req.username.clone();
        let password = req.password.expose().to_string();
        let opened = blocking(move || open_maildrop(&store, &username, &password, &holder)).await;
        match opened {
            Some(Ok((maildrop, listing))) => {
                info!(session = %self.id, client = %self.peer.ip(), user = %maildrop.address, messages = maildrop.uids.len(), "logged in");
                self.maildrop = Some(maildrop);
                session.accept_login(req, listing)
            }
            Some(Err(Refused::Credentials(reason))) => {
                info!(session = %self.id, client = %self.peer.ip(), user = %req.username, reason, "authentication failed");
                let refusal = Refusal::new("Authentication failed").with_code(ResponseCode::AUTH);
                session.reject_login(req, refusal)
            }
            Some(Err(Refused::InUse)) => {
                info!(session = %self.id, client = %self.peer.ip(), user = %req.username, "maildrop in use");
                let refusal = Refusal::new("Maildrop in use by another session")
                    .with_code(ResponseCode::IN_USE);
                session.reject_login(req, refusal)
            }
            Some(Err(Refused::Store(e))) => {
                warn!(session = %self.id, error = %e, "login: store error");
                let refusal = Refusal::new("Try again later").with_code(ResponseCode::SYS_TEMP);
                session.reject_login(req, refusal)
            }
            None => {
                let refusal = Refusal::new("Try again later").with_code(ResponseCode::SYS_TEMP);
                session.reject_login(req, refusal)
            }
        }
    }

    async fn retrieve(
        &mut self,
        session: &mut ServerSession,
        req: RetrieveRequest,
        conn: &mut Connection,
    ) -> Result<(), &'static str> {
        let Some(maildrop) = &self.maildrop else {
            return Err("retrieval without a maildrop");
        };
        let uid = maildrop.uids.get(req.message as usize - 1).copied();
        let (store, mailbox) = (self.store.clone(), maildrop.mailbox);
        // The open and the first chunk (for most messages, all of it) in
        // one trip to the blocking pool.
        let first = match uid {
            Some(uid) => {
                blocking(move || {
                    let reader = store
                        .open_message(mailbox, uid)
                        .map_err(|e| e.to_string())?;
                    read_chunk(reader).map_err(|e| e.to_string())
                })
                .await
            }
            None => None,
        };
        let (mut reader, mut chunk, mut done) = match first {
            Some(Ok(read)) => read,
            other => {
                if let Some(Err(e)) = other {
                    warn!(session = %self.id, message = req.message, error = %e, "cannot read a message");
                }
                let refusal =
                    Refusal::new("Cannot read the message").with_code(ResponseCode::SYS_TEMP);
                let _ = session.fail_message(req, refusal);
                return Ok(());
            }
        };
        let mut out = Vec::new();
        loop {
            while !session.wants_message_chunk() {
                out.clear();
                session.poll_transmit(&mut out);
                conn.write_all(&out).await.map_err(|_| "write error")?;
            }
            if !chunk.is_empty() {
                match session.send_message_chunk(&req, &chunk) {
                    Ok(MessageProgress::WantsMore) => {}
                    Ok(_) => break,
                    Err(misuse) => {
                        warn!(session = %self.id, error = %misuse, "POP3 driver error");
                        return Err("driver error");
                    }
                }
            }
            if done {
                break;
            }
            match blocking(move || read_chunk(reader)).await {
                Some(Ok(next)) => (reader, chunk, done) = next,
                _ => {
                    // Part of the message is sent already: the session
                    // closes the connection rather than end it falsely.
                    let refusal =
                        Refusal::new("Cannot read the message").with_code(ResponseCode::SYS_TEMP);
                    let _ = session.fail_message(req, refusal);
                    return Ok(());
                }
            }
        }
        self.retrieved += 1;
        let _ = session.finish_message(req);
        Ok(())
    }

    async fn update(
        &mut self,
        session: &mut ServerSession,
        req: UpdateRequest,
    ) -> Result<(), ironpost_pop3_proto::Misuse> {
        let Some(maildrop) = &self.maildrop else {
            return session.accept_update(req);
        };
        let uids: Vec<u32> = req
            .deleted
            .iter()
            .filter_map(|n| maildrop.uids.get(*n as usize - 1).copied())
            .collect();
        if uids.is_empty() {
            return session.accept_update(req);
        }
        let (store, mailbox) = (self.store.clone(), maildrop.mailbox);
        let count = uids.len();
        match blocking(move || store.remove_messages(mailbox, &uids)).await {
            Some(Ok(_)) => {
                self.deleted = count as u32;
                session.accept_update(req)
            }
            other => {
                if let Some(Err(e)) = other {
                    warn!(session = %self.id, error = %e, "cannot remove deleted messages");
                }
                let refusal = Refusal::new("Some deleted messages not removed")
                    .with_code(ResponseCode::SYS_TEMP);
                session.reject_update(req, refusal)
            }
        }
    }
}

/// Why a login is refused.
enum Refused {
    Credentials(&'static str),
    InUse,
    Store(ironpost_store::Error),
}

/// Checks the credentials, locks the maildrop and lists it.
fn open_maildrop(
    store: &Store,
    username: &str,
    password: &str,
    holder: &str,
) -> Result<(OpenMaildrop, Maildrop), Refused> {
    let account = match store.authenticate(username, password) {
        Ok(account) => account,
        Err(AuthError::Store(e)) => return Err(Refused::Store(e)),
        Err(AuthError::Disabled(_)) => return Err(Refused::Credentials("account disabled")),
        Err(_) => return Err(Refused::Credentials("invalid credentials")),
    };
    if !store
        .lock_maildrop(account.id, holder)
        .map_err(Refused::Store)?
    {
        return Err(Refused::InUse);
    }
    let listed = (|| {
        let inbox = store.mailbox(account.id, "INBOX")?;
        let messages = store.messages(inbox.id)?;
        Ok::<_, ironpost_store::Error>((inbox, messages))
    })();
    let (inbox, messages) = match listed {
        Ok(listed) => listed,
        Err(e) => {
            let _ = store.unlock_maildrop(account.id, Some(holder));
            return Err(Refused::Store(e));
        }
    };
    let mut listing = Maildrop::new();
    let mut uids = Vec::with_capacity(messages.len());
    for message in &messages {
        // UIDVALIDITY.UID is digits and a dot: always a valid unique-id.
        let Ok(uid) = UniqueId::new(pop3_uidl(&inbox, message.uid)) else {
            continue;
        };
        if listing.push(message.size, uid).is_some() {
            uids.push(message.uid);
        }
    }
    Ok((
        OpenMaildrop {
            account: account.id,
            address: account.address,
            mailbox: inbox.id,
            uids,
        },
        listing,
    ))
}

/// Reads the next chunk of a message (at most [`CHUNK`] octets, into a
/// buffer of the size needed); the flag says whether the message is read
/// to its end.
fn read_chunk(mut reader: MessageReader) -> std::io::Result<(MessageReader, Vec<u8>, bool)> {
    let at = reader.stream_position()?;
    let left = reader.size().saturating_sub(at);
    let want = left.min(CHUNK as u64);
    let mut chunk = Vec::with_capacity(want as usize);
    (&mut reader).take(want).read_to_end(&mut chunk)?;
    let done = chunk.len() as u64 >= left || chunk.is_empty();
    Ok((reader, chunk, done))
}
