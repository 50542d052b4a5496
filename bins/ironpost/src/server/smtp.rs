//! The SMTP driver: runs an smtp-proto [`ServerSession`] on a connection and
//! answers its decisions with the store and the relay policy.
//!
//! Policy, in the plain form of the two default IP ranges of SPEC X-1:
//! - "My computer" is the loopback host itself (127.0.0.1 and ::1): it may
//!   relay and send as a local sender without AUTH;
//! - everyone else is "Internet": mail for local domains is accepted from
//!   anyone, relaying to other domains needs AUTH, and so does a sender
//!   address in a local domain;
//! - a listener with `auth_required` (submission, SMTPS) takes MAIL only
//!   after AUTH;
//! - an authenticated session's account is checked again at every MAIL
//!   (S-6): disabled since the login, it gets `550`.
//!
//! A message is answered `250` only once its body is durable in the blob
//! store and its queue record is committed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironpost_smtp_proto::{
    AbortReason, AuthRequest, BodyType, EnhancedStatus, Event, Extensions, ForwardPath, MailParams,
    MailRequest, RcptParams, RcptRequest, Reply, ReplyId, Ret, ReversePath, ServerConfig,
    ServerSession,
};
use ironpost_store::{AuthError, NewQueueEntry, NewRecipient, ResolveError, Sender, Store};
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

use super::conn::Connection;
use super::listen::ListenerContext;
use super::spool::{Spool, Spooled};
use super::{SessionIds, begin, blocking, sleep_until, start_tls};
use crate::config::{BareLf, Config, TlsMode};

/// What every SMTP session of the server shares.
pub(crate) struct SmtpService {
    store: Store,
    hostname: String,
    base: ServerConfig,
    /// Woken after each accepted message, for the delivery worker.
    queued: Arc<Notify>,
    ids: Arc<SessionIds>,
}

impl SmtpService {
    pub(crate) fn new(
        config: &Config,
        store: Store,
        queued: Arc<Notify>,
        ids: Arc<SessionIds>,
    ) -> SmtpService {
        let smtp = &config.smtp;
        let mut base = ServerConfig::new(config.server.hostname.clone());
        base.banner = smtp.banner.clone();
        base.auth_requires_tls = !smtp.allow_plaintext_auth;
        base.accept_null_sender = smtp.accept_null_sender;
        base.bare_line_endings = match smtp.bare_lf {
            BareLf::Reject => ironpost_smtp_proto::BareLineEndings::Reject,
            _ => ironpost_smtp_proto::BareLineEndings::Normalize,
        };
        let limits = &mut base.limits;
        limits.message_size = smtp.max_message_size;
        limits.recipients = smtp.max_recipients as usize;
        limits.bad_commands = smtp.max_bad_commands as usize;
        limits.command_timeout = Duration::from_secs(smtp.timeout_seconds);
        limits.data_timeout = Duration::from_secs(smtp.timeout_seconds);
        SmtpService {
            store,
            hostname: config.server.hostname.clone(),
            base,
            queued,
            ids,
        }
    }

    fn session_config(&self, listener: &ListenerContext) -> ServerConfig {
        let mut config = self.base.clone();
        config.extensions = Extensions::default();
        config.extensions.starttls = listener.mode == TlsMode::Starttls;
        config.tls_active = listener.mode == TlsMode::ImplicitTls;
        config
    }
}

/// Runs one SMTP session on `tcp` until it ends.
pub(crate) async fn run(
    service: Arc<SmtpService>,
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
        listener: &listener,
        id,
        peer,
        my_computer: is_my_computer(peer.ip()),
        extended: false,
        helo: String::new(),
        user: None,
        txn: None,
        messages: 0,
        start_tls: false,
        tls: None,
    };
    host.tls = conn.tls().map(|t| format!("{} {}", t.version, t.cipher));
    let outcome = drive(&mut host, &mut session, &mut conn, &mut shutdown).await;
    conn.shutdown().await;
    info!(
        session = %host.id,
        client = %peer.ip(),
        listener = %listener.name,
        helo = session.helo_name().unwrap_or(""),
        tls = host.tls.as_deref().unwrap_or("no"),
        user = host.user.as_deref().unwrap_or(""),
        messages = host.messages,
        bytes_in = conn.bytes_in,
        bytes_out = conn.bytes_out,
        seconds = format_args!("{:.3}", started.elapsed().as_secs_f64()),
        end = outcome,
        "connection"
    );
}

/// The session's event loop. Returns how the connection ended, for the log.
async fn drive(
    host: &mut Host<'_>,
    session: &mut ServerSession,
    conn: &mut Connection,
    shutdown: &mut watch::Receiver<bool>,
) -> &'static str {
    let mut out = Vec::with_capacity(1024);
    let mut stopping = *shutdown.borrow();
    loop {
        while let Some(event) = session.poll_event() {
            host.handle(session, event).await;
        }
        if stopping && host.txn.is_none() && !session.is_closed() {
            // Between transactions: nothing acknowledged can be lost.
            session.shutdown(Reply::from_id(ReplyId::ServiceClosing));
        }
        out.clear();
        session.poll_transmit(&mut out);
        if !out.is_empty() && conn.write_all(&out).await.is_err() {
            return "write error";
        }
        if session.is_closed() {
            return if stopping { "shutdown" } else { "closed" };
        }
        if std::mem::take(&mut host.start_tls) {
            if let Err(why) = start_tls(host.listener, conn).await {
                return why;
            }
            host.tls = conn.tls().map(|t| format!("{} {}", t.version, t.cipher));
            if session.tls_established().is_err() {
                return "TLS state error";
            }
            continue;
        }
        let deadline = session.poll_timeout();
        let wants_input = session.wants_input();
        tokio::select! {
            changed = shutdown.changed(), if !stopping => {
                stopping = changed.is_err() || *shutdown.borrow();
            }
            read = conn.read(), if wants_input => match read {
                Ok([]) => return "client closed",
                Ok(bytes) => session.handle_input(Instant::now(), bytes),
                Err(_) => return "read error",
            },
            () = sleep_until(deadline), if deadline.is_some() => {
                session.handle_timeout(Instant::now());
            }
        }
    }
}

/// "My computer": the machine itself.
fn is_my_computer(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4 == std::net::Ipv4Addr::LOCALHOST,
        IpAddr::V6(v6) => {
            v6 == std::net::Ipv6Addr::LOCALHOST
                || v6.to_ipv4_mapped() == Some(std::net::Ipv4Addr::LOCALHOST)
        }
    }
}

/// The transaction in progress.
struct Transaction {
    /// The envelope sender, empty for `<>`.
    sender: String,
    params: MailParams,
    recipients: Vec<NewRecipient>,
    spool: Option<Spool>,
    /// Why the body could not be spooled; the message gets `451`.
    spool_error: Option<String>,
}

/// The session's side of the decisions.
struct Host<'a> {
    service: &'a SmtpService,
    listener: &'a ListenerContext,
    id: String,
    peer: SocketAddr,
    my_computer: bool,
    /// EHLO (true) or HELO.
    extended: bool,
    /// The HELO/EHLO name.
    helo: String,
    /// The authenticated account's address.
    user: Option<String>,
    txn: Option<Transaction>,
    messages: u32,
    /// The session asked for the TLS handshake.
    start_tls: bool,
    /// The TLS version and cipher, once on TLS.
    tls: Option<String>,
}

impl Host<'_> {
    async fn handle(&mut self, session: &mut ServerSession, event: Event) {
        // A misuse is a bug of this driver, never the client's doing.
        let answered = match event {
            Event::Connect(req) => session.accept_connection(req),
            Event::Helo(req) => {
                self.extended = req.extended;
                self.helo.clone_from(&req.domain);
                self.txn = None;
                session.accept_helo(req)
            }
            Event::StartTls => {
                self.txn = None;
                self.start_tls = true;
                Ok(())
            }
            Event::Auth(req) => self.auth(session, req).await,
            Event::Mail(req) => self.mail(session, req).await,
            Event::Rcpt(req) => self.rcpt(session, req).await,
            Event::Data(req) => {
                let head = self.received(session);
                if let Some(txn) = &mut self.txn {
                    txn.spool = Some(Spool::new(self.service.store.clone(), head));
                }
                session.accept_data(req)
            }
            Event::DataChunk(bytes) => {
                if let Some(txn) = &mut self.txn
                    && let Some(spool) = &mut txn.spool
                    && let Err(e) = spool.push(bytes).await
                {
                    txn.spool = None;
                    txn.spool_error = Some(e.to_string());
                }
                Ok(())
            }
            Event::MessageEnd(req) => {
                let reply = self.finish_message().await;
                if reply.is_positive() {
                    session.accept_message(req, reply)
                } else {
                    session.reject_message(req, reply)
                }
            }
            Event::MessageAborted(reason) => {
                if let Some(txn) = self.txn.take() {
                    let why = match reason {
                        AbortReason::TooBig => "refused: too big",
                        AbortReason::BareLineEnding => "refused: bare line ending",
                        _ => "refused",
                    };
                    self.log_message(&txn, None, why);
                }
                Ok(())
            }
            Event::Verify(req) => session.answer_verify(req, Reply::from_id(ReplyId::CannotVrfy)),
            Event::Reset => {
                self.txn = None;
                Ok(())
            }
            Event::Closed => Ok(()),
            _ => Ok(()),
        };
        if let Err(misuse) = answered {
            warn!(session = %self.id, error = %misuse, "SMTP driver error");
        }
    }

    async fn auth(
        &mut self,
        session: &mut ServerSession,
        req: AuthRequest,
    ) -> Result<(), ironpost_smtp_proto::Misuse> {
        if req
            .authzid
            .as_deref()
            .is_some_and(|z| !z.is_empty() && !z.eq_ignore_ascii_case(&req.username))
        {
            info!(session = %self.id, client = %self.peer.ip(), user = %req.username, "authentication refused: another authorization identity");
            return session.reject_auth(req, Reply::from_id(ReplyId::AuthFailed));
        }
        let store = self.service.store.clone();
        let username = req.username.clone();
        let password = req.password.expose().to_string();
        let result = blocking(move || store.authenticate(&username, &password)).await;
        match result {
            Some(Ok(account)) => {
                info!(session = %self.id, client = %self.peer.ip(), user = %account.address, "authenticated");
                self.user = Some(account.address);
                session.accept_auth(req)
            }
            Some(Err(AuthError::Store(e))) => {
                warn!(session = %self.id, error = %e, "authentication: store error");
                session.reject_auth(req, Reply::from_id(ReplyId::LocalError))
            }
            Some(Err(e)) => {
                info!(session = %self.id, client = %self.peer.ip(), user = %req.username, reason = %e, "authentication failed");
                session.reject_auth(req, Reply::from_id(ReplyId::AuthFailed))
            }
            None => session.reject_auth(req, Reply::from_id(ReplyId::LocalError)),
        }
    }

    async fn mail(
        &mut self,
        session: &mut ServerSession,
        req: MailRequest,
    ) -> Result<(), ironpost_smtp_proto::Misuse> {
        if let Some(user) = self.user.clone() {
            let store = self.service.store.clone();
            let valid = blocking(move || account_usable(&store, &user)).await;
            match valid {
                Some(Ok(true)) => {}
                Some(Ok(false)) => {
                    return session.reject_mail(req, Reply::from_id(ReplyId::CredentialsRevoked));
                }
                _ => return session.reject_mail(req, Reply::from_id(ReplyId::LocalError)),
            }
        } else if self.listener.auth_required {
            return session.reject_mail(req, Reply::from_id(ReplyId::AuthRequired));
        }
        let sender = match &req.from {
            ReversePath::Null => String::new(),
            ReversePath::Mailbox(address) => address.as_str().to_string(),
        };
        if self.user.is_none() && !self.my_computer && !sender.is_empty() {
            let store = self.service.store.clone();
            let domain = domain_of(&sender).to_string();
            match blocking(move || is_local_domain(&store, &domain)).await {
                Some(Ok(false)) => {}
                Some(Ok(true)) => {
                    let reply = Reply::from_id(ReplyId::AuthRequired)
                        .with_text("Authentication required to send as a local sender");
                    return session.reject_mail(req, reply);
                }
                _ => return session.reject_mail(req, Reply::from_id(ReplyId::LocalError)),
            }
        }
        self.txn = Some(Transaction {
            sender,
            params: req.params.clone(),
            recipients: Vec::new(),
            spool: None,
            spool_error: None,
        });
        session.accept_mail(req)
    }

    async fn rcpt(
        &mut self,
        session: &mut ServerSession,
        req: RcptRequest,
    ) -> Result<(), ironpost_smtp_proto::Misuse> {
        let Some(txn) = &self.txn else {
            return session.reject_rcpt(req, Reply::from_id(ReplyId::NeedMail));
        };
        let address = match &req.to {
            ForwardPath::Mailbox(address) => address.as_str().to_string(),
            ForwardPath::Postmaster => format!("postmaster@{}", self.service.hostname),
        };
        let store = self.service.store.clone();
        let sender = Sender {
            address: txn.sender.clone(),
            authenticated: self.user.is_some(),
        };
        let lookup = address.clone();
        let resolved = blocking(move || store.resolve(&lookup, &sender)).await;
        let reply = match resolved {
            None => Some(Reply::from_id(ReplyId::LocalError)),
            Some(Err(e)) => Some(resolve_reply(&e)),
            Some(Ok(resolution)) => {
                let relay = resolution.local.is_empty()
                    && resolution.remote.len() == 1
                    && resolution.remote[0].eq_ignore_ascii_case(&address);
                (relay && self.user.is_none() && !self.my_computer)
                    .then(|| Reply::from_id(ReplyId::RelayDenied))
            }
        };
        if let Some(reply) = reply {
            return session.reject_rcpt(req, reply);
        }
        if let Some(txn) = &mut self.txn {
            let mut recipient = NewRecipient::new(address);
            recipient.params = rcpt_params(&req.params);
            txn.recipients.push(recipient);
        }
        session.accept_rcpt(req)
    }

    /// The `Received:` line that starts the message (RFC 5321 section 4.4).
    fn received(&self, session: &ServerSession) -> Vec<u8> {
        let helo = session.helo_name().unwrap_or("unknown");
        let ip = match self.peer.ip() {
            IpAddr::V4(v4) => format!("[{v4}]"),
            IpAddr::V6(v6) => format!("[IPv6:{v6}]"),
        };
        let utf8 = self.txn.as_ref().is_some_and(|t| t.params.smtputf8);
        let mut with = String::from(match (utf8, self.extended) {
            (true, _) => "UTF8SMTP",
            (false, true) => "ESMTP",
            (false, false) => "SMTP",
        });
        if self.tls.is_some() {
            with.push('S');
        }
        if self.user.is_some() {
            with.push('A');
        }
        let tls = self
            .tls
            .as_deref()
            .map(|t| format!("\r\n\t({t})"))
            .unwrap_or_default();
        let recipient = match self.txn.as_ref().map(|t| t.recipients.as_slice()) {
            Some([only]) => format!("\r\n\tfor <{}>", only.address),
            _ => String::new(),
        };
        let date = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap_or_default();
        format!(
            "Received: from {helo} ({ip})\r\n\tby {} (Ironpost) with {with} id {}.{}{tls}{recipient};\r\n\t{date}\r\n",
            self.service.hostname,
            self.id,
            self.messages + 1,
        )
        .into_bytes()
    }

    /// Spools the end of the message and queues it: the reply to send.
    async fn finish_message(&mut self) -> Reply {
        let Some(mut txn) = self.txn.take() else {
            return Reply::from_id(ReplyId::LocalError);
        };
        let Some(spool) = txn.spool.take() else {
            let why = txn.spool_error.clone().unwrap_or_default();
            warn!(session = %self.id, error = %why, "cannot spool the message");
            self.log_message(&txn, None, "failed: spool");
            return Reply::from_id(ReplyId::LocalError);
        };
        let size = spool.size();
        let spooled = match spool.finish().await {
            Ok(spooled) => spooled,
            Err(e) => {
                warn!(session = %self.id, error = %e, "cannot spool the message");
                self.log_message(&txn, Some(size), "failed: spool");
                return Reply::from_id(ReplyId::LocalError);
            }
        };
        let (sender, recipients) = (txn.sender.clone(), txn.recipients.clone());
        let mut entry = match spooled {
            Spooled::Inline(body) => NewQueueEntry::inline(body, sender, recipients),
            Spooled::Blob(blob) => NewQueueEntry::new(blob, sender, recipients),
        };
        entry.mail_params = mail_params(&txn.params);
        entry.client = self.peer.ip().to_string();
        entry.helo = self.helo.clone();
        entry.auth_user = self.user.clone().unwrap_or_default();
        let store = self.service.store.clone();
        match blocking(move || store.enqueue(entry)).await {
            Some(Ok(queue_id)) => {
                self.messages += 1;
                self.service.queued.notify_one();
                self.log_message(&txn, Some(size), &format!("queued as {queue_id}"));
                Reply::new(
                    250,
                    Some(EnhancedStatus::new(2, 0, 0)),
                    format!("Message accepted for delivery as {queue_id}"),
                )
                .unwrap_or_else(|_| Reply::from_id(ReplyId::MessageAccepted))
            }
            Some(Err(e)) => {
                warn!(session = %self.id, error = %e, "cannot queue the message");
                self.log_message(&txn, Some(size), "failed: queue");
                Reply::from_id(ReplyId::LocalError)
            }
            None => Reply::from_id(ReplyId::LocalError),
        }
    }

    fn log_message(&self, txn: &Transaction, size: Option<u64>, result: &str) {
        let recipients: Vec<&str> = txn.recipients.iter().map(|r| r.address.as_str()).collect();
        info!(
            session = %self.id,
            client = %self.peer.ip(),
            from = %txn.sender,
            to = %recipients.join(","),
            size = size.unwrap_or(0),
            result,
            "message"
        );
    }
}

/// Whether an authenticated account may still send: it and its domain are
/// enabled (S-6).
fn account_usable(store: &Store, address: &str) -> Result<bool, ironpost_store::Error> {
    let account = match store.account(address) {
        Ok(account) => account,
        Err(ironpost_store::Error::AccountNotFound(_)) => return Ok(false),
        Err(e) => return Err(e),
    };
    if !account.enabled {
        return Ok(false);
    }
    Ok(store.domain(domain_of(address))?.enabled)
}

fn is_local_domain(store: &Store, domain: &str) -> Result<bool, ironpost_store::Error> {
    match store.domain(domain) {
        Ok(_) => Ok(true),
        Err(
            ironpost_store::Error::DomainNotFound(_)
            | ironpost_store::Error::InvalidName { .. }
            | ironpost_store::Error::InvalidAddress { .. },
        ) => Ok(false),
        Err(e) => Err(e),
    }
}

fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, d)| d)
}

/// The reply to a recipient that resolution refused.
fn resolve_reply(error: &ResolveError) -> Reply {
    let (code, status, text) = error.smtp_reply();
    let status = parse_status(status);
    let text = match error {
        ResolveError::Store(e) => {
            warn!(error = %e, "resolution: store error");
            text.to_string()
        }
        _ => format!("{}{}", text[..1].to_ascii_uppercase(), &text[1..]),
    };
    Reply::new(code, status, text).unwrap_or_else(|_| Reply::from_id(ReplyId::LocalError))
}

fn parse_status(text: &str) -> Option<EnhancedStatus> {
    let mut parts = text.split('.');
    let class = parts.next()?.parse().ok()?;
    let subject = parts.next()?.parse().ok()?;
    let detail = parts.next()?.parse().ok()?;
    Some(EnhancedStatus::new(class, subject, detail))
}

/// The MAIL parameters to relay on, as they go on the wire.
fn mail_params(params: &MailParams) -> String {
    let mut out = Vec::new();
    if let Some(body) = params.body {
        out.push(format!(
            "BODY={}",
            match body {
                BodyType::SevenBit => "7BIT",
                BodyType::EightBitMime => "8BITMIME",
                BodyType::BinaryMime => "BINARYMIME",
            }
        ));
    }
    if params.smtputf8 {
        out.push("SMTPUTF8".into());
    }
    if let Some(ret) = params.ret {
        out.push(match ret {
            Ret::Full => "RET=FULL".into(),
            Ret::Headers => "RET=HDRS".into(),
        });
    }
    if let Some(envid) = &params.envid {
        out.push(format!("ENVID={}", xtext(envid)));
    }
    out.join(" ")
}

/// The RCPT parameters to relay on.
fn rcpt_params(params: &RcptParams) -> String {
    let mut out = Vec::new();
    if let Some(notify) = params.notify {
        let mut kinds = Vec::new();
        if notify.is_never() {
            kinds.push("NEVER");
        }
        if notify.success {
            kinds.push("SUCCESS");
        }
        if notify.failure {
            kinds.push("FAILURE");
        }
        if notify.delay {
            kinds.push("DELAY");
        }
        out.push(format!("NOTIFY={}", kinds.join(",")));
    }
    if let Some(orcpt) = &params.orcpt {
        out.push(format!(
            "ORCPT={};{}",
            orcpt.addr_type,
            xtext(&orcpt.address)
        ));
    }
    out.join(" ")
}

/// xtext (RFC 3461 section 4): `+XX` for `+`, `=`, controls and non-ASCII.
fn xtext(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (33..=126).contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn my_computer_is_the_loopback_host_only() {
        assert!(is_my_computer("127.0.0.1".parse().unwrap()));
        assert!(is_my_computer("::1".parse().unwrap()));
        assert!(is_my_computer("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!is_my_computer("127.0.0.2".parse().unwrap()));
        assert!(!is_my_computer("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn xtext_encodes_plus_equals_and_non_ascii() {
        assert_eq!(xtext("a+b=c d"), "a+2Bb+3Dc+20d");
        assert_eq!(xtext("é"), "+C3+A9");
    }

    #[test]
    fn statuses_parse() {
        assert_eq!(parse_status("5.1.1"), Some(EnhancedStatus::new(5, 1, 1)));
        assert_eq!(parse_status("5.1"), None);
    }
}
