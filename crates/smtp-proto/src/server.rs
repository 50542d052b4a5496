//! The server session: one SMTP connection as seen by the receiving side.

use std::collections::VecDeque;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::{Buf, Bytes, BytesMut};

use crate::command::{Command, ParseError};
use crate::data::{BareLineEndings, DataReader};
use crate::limits::Limits;
use crate::reply::{Reply, ReplyId, ReplyTexts};
use crate::types::{BodyType, ForwardPath, MailParams, Mechanism, RcptParams, ReversePath, Secret};

/// The ESMTP extensions a server session advertises in its EHLO reply and
/// honours. A disabled extension is neither advertised nor accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Extensions {
    /// PIPELINING (RFC 2920).
    pub pipelining: bool,
    /// SIZE (RFC 1870), advertising [`Limits::message_size`].
    pub size: bool,
    /// 8BITMIME (RFC 6152).
    pub eight_bit_mime: bool,
    /// ENHANCEDSTATUSCODES (RFC 2034).
    pub enhanced_status_codes: bool,
    /// SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// CHUNKING: the BDAT command (RFC 3030).
    pub chunking: bool,
    /// BINARYMIME (RFC 3030); needs `chunking`.
    pub binary_mime: bool,
    /// DSN (RFC 3461).
    pub dsn: bool,
    /// STARTTLS (RFC 3207): enable it when the host has a certificate.
    pub starttls: bool,
}

impl Default for Extensions {
    /// Everything but STARTTLS, which needs a certificate from the host.
    fn default() -> Self {
        Extensions {
            pipelining: true,
            size: true,
            eight_bit_mime: true,
            enhanced_status_codes: true,
            smtputf8: true,
            chunking: true,
            binary_mime: true,
            dsn: true,
            starttls: false,
        }
    }
}

/// How a server session behaves: its name, extensions, policy switches the
/// session can apply alone, limits and reply texts.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The host name in the greeting and the EHLO reply.
    pub hostname: String,
    /// The greeting text after the host name (L-3).
    pub banner: String,
    /// Advertised extensions.
    pub extensions: Extensions,
    /// AUTH mechanisms offered (PLAIN and LOGIN are implemented); empty
    /// means no AUTH.
    pub auth_mechanisms: Vec<Mechanism>,
    /// Refuse AUTH (`538`) and do not advertise it before TLS. Default true.
    pub auth_requires_tls: bool,
    /// The connection is TLS from the start (SMTPS, port 465).
    pub tls_active: bool,
    /// Ask the host about VRFY ([`Event::Verify`]); otherwise answer `252`.
    pub vrfy: bool,
    /// Ask the host about EXPN ([`Event::Verify`]); otherwise answer `502`.
    pub expn: bool,
    /// Accept the null sender `<>` (default true; SPEC S-3).
    pub accept_null_sender: bool,
    /// What to do with a bare CR or LF in DATA (SPEC S-3).
    pub bare_line_endings: BareLineEndings,
    /// Buffer sizes, counts and timeouts.
    pub limits: Limits,
    /// Replacement texts for the replies the session sends on its own.
    pub texts: ReplyTexts,
}

impl ServerConfig {
    /// A configuration with the defaults and the given host name.
    pub fn new(hostname: impl Into<String>) -> Self {
        ServerConfig {
            hostname: hostname.into(),
            banner: "ESMTP ready".into(),
            extensions: Extensions::default(),
            auth_mechanisms: vec![Mechanism::Plain, Mechanism::Login],
            auth_requires_tls: true,
            tls_active: false,
            vrfy: false,
            expn: false,
            accept_null_sender: true,
            bare_line_endings: BareLineEndings::Normalize,
            limits: Limits::default(),
            texts: ReplyTexts::default(),
        }
    }
}

/// Identifies one decision of one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct DecisionId(u64);

macro_rules! request {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* pub $field:ident : $ty:ty,)* }) => {
        $(#[$doc])*
        #[derive(Debug, PartialEq, Eq)]
        #[must_use = "every request must be answered, or the session waits forever"]
        #[non_exhaustive]
        pub struct $name {
            id: DecisionId,
            $($(#[$fdoc])* pub $field: $ty,)*
        }
    };
}

request! {
    /// A new connection: answer [`ServerSession::accept_connection`] (the
    /// greeting is sent) or [`ServerSession::refuse_connection`] (`554`, or
    /// `421` to close at once).
    ConnectRequest {}
}

request! {
    /// HELO or EHLO: answer [`ServerSession::accept_helo`] or
    /// [`ServerSession::reject_helo`].
    HeloRequest {
        /// The domain or address literal the client gave.
        pub domain: String,
        /// EHLO (true) or HELO (false).
        pub extended: bool,
    }
}

request! {
    /// Credentials from AUTH: check them, then answer
    /// [`ServerSession::accept_auth`] or [`ServerSession::reject_auth`]
    /// (usually with `535`).
    AuthRequest {
        /// The mechanism used.
        pub mechanism: Mechanism,
        /// The authorization identity, when it differs from the user name.
        pub authzid: Option<String>,
        /// The user name.
        pub username: String,
        /// The password.
        pub password: Secret,
    }
}

request! {
    /// MAIL FROM: answer [`ServerSession::accept_mail`] or
    /// [`ServerSession::reject_mail`]. The session has already checked the
    /// syntax, the parameters against the advertised extensions, and SIZE.
    MailRequest {
        /// The sender.
        pub from: ReversePath,
        /// The parameters.
        pub params: MailParams,
        /// The authenticated user of the session, if any. Re-check it: an
        /// account disabled since AUTH gets `550` (SPEC S-6).
        pub authenticated: Option<String>,
    }
}

request! {
    /// RCPT TO: answer [`ServerSession::accept_rcpt`] or
    /// [`ServerSession::reject_rcpt`]. Several may be outstanding at once
    /// (up to [`Limits::pending_decisions`]); answer them in any order.
    RcptRequest {
        /// The recipient.
        pub to: ForwardPath,
        /// The parameters.
        pub params: RcptParams,
    }
}

request! {
    /// The start of the message (DATA, or the first BDAT): answer
    /// [`ServerSession::accept_data`] or [`ServerSession::reject_data`].
    DataRequest {
        /// BDAT (true) or DATA (false).
        pub chunking: bool,
        /// Recipients accepted in this transaction.
        pub recipients: usize,
    }
}

request! {
    /// The whole message has arrived as [`Event::DataChunk`]s. Store it
    /// durably, then answer [`ServerSession::accept_message`] (usually `250`
    /// with the queue id) or [`ServerSession::reject_message`].
    MessageRequest {
        /// The size of the message in octets.
        pub size: u64,
    }
}

request! {
    /// VRFY or EXPN when the configuration asks the host: answer with
    /// [`ServerSession::answer_verify`].
    VerifyRequest {
        /// The argument of the command.
        pub argument: String,
        /// EXPN (true) or VRFY (false).
        pub expand: bool,
    }
}

/// Why the session discards a message it was receiving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AbortReason {
    /// The message went over [`Limits::message_size`]; `552` follows.
    TooBig,
    /// A bare CR or LF under [`BareLineEndings::Reject`]; `554` follows.
    BareLineEnding,
}

/// What the session tells the host: a decision to answer, body bytes, or a
/// state change.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A decision: greet or refuse the client.
    Connect(ConnectRequest),
    /// A decision: HELO/EHLO.
    Helo(HeloRequest),
    /// The `220` answer to STARTTLS is in the transmit buffer: write it out,
    /// run the TLS handshake on the connection, then call
    /// [`ServerSession::tls_established`]. Input received before that is
    /// discarded (RFC 3207 command injection).
    StartTls,
    /// A decision: credentials to check.
    Auth(AuthRequest),
    /// A decision: the sender.
    Mail(MailRequest),
    /// A decision: one recipient.
    Rcpt(RcptRequest),
    /// A decision: the start of the message.
    Data(DataRequest),
    /// The next bytes of the message (dot-unstuffed; with BDAT, as sent).
    DataChunk(Bytes),
    /// A decision: the message is complete.
    MessageEnd(MessageRequest),
    /// The message being received will not be accepted; drop what was
    /// spooled. The transaction is over.
    MessageAborted(AbortReason),
    /// A decision: VRFY or EXPN.
    Verify(VerifyRequest),
    /// The transaction in progress (after an accepted MAIL) was abandoned by
    /// RSET, HELO/EHLO or STARTTLS.
    Reset,
    /// The session is over: write out what [`ServerSession::poll_transmit`]
    /// gives, then close the connection.
    Closed,
}

/// A call that does not fit the session's state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Misuse {
    /// The request does not belong to this session or was answered already.
    #[error("the request is not outstanding in this session")]
    UnknownRequest,
    /// `tls_established` without a STARTTLS in progress.
    #[error("no STARTTLS handshake is in progress")]
    NoTlsPending,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pending {
    Connect,
    Helo {
        domain: String,
        extended: bool,
    },
    Auth {
        username: String,
    },
    Mail {
        from: ReversePath,
        params: MailParams,
    },
    Rcpt,
    Data {
        bdat: Option<(u64, bool)>,
    },
    Message,
    Verify,
}

#[derive(Debug)]
enum Slot {
    Ready(Reply),
    Waiting(DecisionId),
}

#[derive(Debug)]
enum AuthStep {
    /// PLAIN without an initial response: waiting for it.
    Plain,
    /// LOGIN: waiting for the user name.
    LoginUser,
    /// LOGIN: waiting for the password.
    LoginPassword { username: String },
}

#[derive(Debug)]
struct Bdat {
    remaining: u64,
    last: bool,
    /// The reply after the chunk if it is refused; `None` when it is kept.
    refused: Option<Reply>,
}

#[derive(Debug)]
enum Phase {
    /// Waiting for the host's answer to the connection.
    Connecting,
    /// The connection was refused: only QUIT is served.
    Refused,
    Commands,
    Auth(AuthStep),
    Data(DataReader),
    Bdat(Bdat),
    /// STARTTLS answered; waiting for the host's handshake.
    AwaitingTls,
    Closed,
}

#[derive(Debug, Default)]
struct Transaction {
    from: Option<(ReversePath, MailParams)>,
    recipients: usize,
    rcpt_pending: usize,
    rcpt_attempted: bool,
    /// BDAT chunks have started (DATA is no longer allowed).
    chunking: bool,
    size: u64,
    /// A refused BDAT transaction: every further chunk gets this reply.
    failed: Option<Reply>,
}

/// Outcome of looking for a line in the input.
enum Line {
    Complete(Bytes),
    TooLong,
    Unterminated,
    Incomplete,
}

/// One SMTP connection, server side, without I/O.
///
/// Feed the client's bytes to [`handle_input`](Self::handle_input) and the
/// clock to [`handle_timeout`](Self::handle_timeout); after each call, drain
/// the outputs in this order:
///
/// 1. [`poll_event`](Self::poll_event) until `None`, answering each decision
///    (now or later — the session waits, and pipelined input waits with it);
/// 2. [`poll_transmit`](Self::poll_transmit), writing the bytes to the peer;
/// 3. [`poll_timeout`](Self::poll_timeout), the instant to call
///    `handle_timeout` at (`None`: no timer, e.g. while the host decides).
///
/// Answers may produce more events and bytes, so drain again after them.
/// Read from the socket only while [`wants_input`](Self::wants_input).
/// On [`Event::StartTls`] write out the transmit buffer, then run the
/// handshake; on [`Event::Closed`] write it out, then close.
///
/// ```
/// use std::time::Instant;
/// use ironpost_smtp_proto::{Event, Reply, ServerConfig, ServerSession};
///
/// let mut session = ServerSession::new(ServerConfig::new("mx.example.org"), Instant::now());
/// let mut wire = Vec::new();
/// let mut message = Vec::new();
/// let client = b"EHLO client.example\r\nMAIL FROM:<a@client.example>\r\n\
///     RCPT TO:<b@example.org>\r\nDATA\r\nSubject: hi\r\n\r\nHello\r\n.\r\nQUIT\r\n";
/// let mut input: &[u8] = client;
/// loop {
///     while let Some(event) = session.poll_event() {
///         match event {
///             Event::Connect(req) => session.accept_connection(req).unwrap(),
///             Event::Helo(req) => session.accept_helo(req).unwrap(),
///             Event::Mail(req) => session.accept_mail(req).unwrap(),
///             Event::Rcpt(req) => session.accept_rcpt(req).unwrap(),
///             Event::Data(req) => session.accept_data(req).unwrap(),
///             Event::DataChunk(bytes) => message.extend_from_slice(&bytes),
///             Event::MessageEnd(req) => {
///                 // Store `message` durably here, then:
///                 let ok = Reply::new(250, None, "2.0.0 queued as 1").unwrap();
///                 session.accept_message(req, ok).unwrap();
///             }
///             Event::Closed => break,
///             _ => {}
///         }
///     }
///     session.poll_transmit(&mut wire);
///     if session.is_closed() || input.is_empty() {
///         break;
///     }
///     // A socket read would go here; take 16 bytes at a time.
///     let n = input.len().min(16);
///     session.handle_input(Instant::now(), &input[..n]);
///     input = &input[n..];
/// }
/// assert_eq!(message, b"Subject: hi\r\n\r\nHello\r\n");
/// let wire = String::from_utf8(wire).unwrap();
/// assert!(wire.starts_with("220 mx.example.org ESMTP ready\r\n"));
/// assert!(wire.ends_with("250 2.0.0 queued as 1\r\n221 2.0.0 Bye\r\n"));
/// ```
#[derive(Debug)]
pub struct ServerSession {
    config: ServerConfig,
    input: BytesMut,
    /// How far `input` was already searched for a line end.
    scanned: usize,
    /// Bytes of an over-long line thrown away so far.
    discarding: Option<usize>,
    out: Vec<u8>,
    events: VecDeque<Event>,
    slots: VecDeque<Slot>,
    pending: Vec<(DecisionId, Pending)>,
    next_id: u64,
    phase: Phase,
    helo: Option<String>,
    tls: bool,
    authenticated: Option<String>,
    txn: Transaction,
    bad_commands: usize,
    /// Once set, no more input is read; the session closes when every reply
    /// before the last one has been sent.
    closing: bool,
    last_activity: Instant,
}

impl ServerSession {
    /// A new session for a connection accepted at `now`. The first event is
    /// [`Event::Connect`].
    pub fn new(config: ServerConfig, now: Instant) -> Self {
        let tls = config.tls_active;
        let mut session = ServerSession {
            config,
            input: BytesMut::new(),
            scanned: 0,
            discarding: None,
            out: Vec::new(),
            events: VecDeque::new(),
            slots: VecDeque::new(),
            pending: Vec::new(),
            next_id: 0,
            phase: Phase::Connecting,
            helo: None,
            tls,
            authenticated: None,
            txn: Transaction::default(),
            bad_commands: 0,
            closing: false,
            last_activity: now,
        };
        let id = session.decide(Pending::Connect);
        session
            .events
            .push_back(Event::Connect(ConnectRequest { id }));
        session
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The HELO/EHLO name the client gave and the host accepted.
    pub fn helo_name(&self) -> Option<&str> {
        self.helo.as_deref()
    }

    /// The user the host accepted in AUTH.
    pub fn authenticated(&self) -> Option<&str> {
        self.authenticated.as_deref()
    }

    /// Whether the connection is protected by TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Whether the session is over ([`Event::Closed`] was emitted).
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// Whether the host should read more from the connection now. False
    /// while the session waits for the host (a decision, a TLS handshake)
    /// with input already buffered, and once closed.
    #[must_use]
    pub fn wants_input(&self) -> bool {
        match self.phase {
            Phase::Closed | Phase::AwaitingTls => false,
            _ if self.closing => false,
            _ => self.pending.is_empty() || self.input.len() < self.config.limits.command_line,
        }
    }

    /// Bytes received from the client at `now`.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        match self.phase {
            Phase::Closed => return,
            // Plaintext bytes after STARTTLS and before the handshake are
            // an injection attempt (RFC 3207 section 6): dropped.
            Phase::AwaitingTls => return,
            _ => {}
        }
        self.last_activity = now;
        self.input.extend_from_slice(bytes);
        self.process();
    }

    /// The clock: call it at (or after) the instant of
    /// [`poll_timeout`](Self::poll_timeout).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_some_and(|deadline| now >= deadline) {
            self.drop_pending();
            let reply = self.reply(ReplyId::Timeout);
            self.close_with(reply);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.pending.is_empty() || self.closing {
            return None;
        }
        let timeout = match self.phase {
            Phase::Connecting | Phase::AwaitingTls | Phase::Closed => return None,
            Phase::Data(_) | Phase::Bdat(_) => self.config.limits.data_timeout,
            _ => self.config.limits.command_timeout,
        };
        Some(self.last_activity + timeout)
    }

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Appends the bytes to send to the client to `out`; returns how many.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> usize {
        let n = self.out.len();
        out.append(&mut self.out);
        n
    }

    /// Greets the client.
    pub fn accept_connection(&mut self, req: ConnectRequest) -> Result<(), Misuse> {
        self.take(req.id)?;
        self.phase = Phase::Commands;
        let greeting = format!("{} {}", self.config.hostname, self.config.banner);
        let reply = Reply::new(220, None, greeting)
            .unwrap_or_else(|_| Reply::new(220, None, "ESMTP").expect("a valid reply"));
        self.answer(req.id, reply);
        Ok(())
    }

    /// Refuses the client: with a `421` the session closes at once; with
    /// any other reply (usually `554`) it waits for QUIT and answers every
    /// other command with `503` (RFC 5321 section 3.1).
    pub fn refuse_connection(&mut self, req: ConnectRequest, reply: Reply) -> Result<(), Misuse> {
        self.take(req.id)?;
        if reply.code() == 421 {
            self.closing = true;
        } else {
            self.phase = Phase::Refused;
        }
        self.answer(req.id, reply);
        Ok(())
    }

    /// Accepts HELO/EHLO: the reply lists the extensions for EHLO.
    pub fn accept_helo(&mut self, req: HeloRequest) -> Result<(), Misuse> {
        let Pending::Helo { domain, extended } = self.take(req.id)? else {
            return Err(Misuse::UnknownRequest);
        };
        self.reset_transaction();
        let reply = if extended {
            self.ehlo_reply(&domain)
        } else {
            Reply::new(250, None, self.config.hostname.clone())
                .unwrap_or_else(|_| Reply::from_id(ReplyId::Ok))
        };
        // State changes before the answer: answering resumes pipelined input.
        self.helo = Some(domain);
        self.answer(req.id, reply);
        Ok(())
    }

    /// Refuses HELO/EHLO with `reply`.
    pub fn reject_helo(&mut self, req: HeloRequest, reply: Reply) -> Result<(), Misuse> {
        self.reject(req.id, reply)
    }

    /// Accepts the credentials: `235`.
    pub fn accept_auth(&mut self, req: AuthRequest) -> Result<(), Misuse> {
        let Pending::Auth { username } = self.take(req.id)? else {
            return Err(Misuse::UnknownRequest);
        };
        self.authenticated = Some(username);
        let reply = self.reply(ReplyId::AuthSucceeded);
        self.answer(req.id, reply);
        Ok(())
    }

    /// Refuses the credentials with `reply` (usually `535`).
    pub fn reject_auth(&mut self, req: AuthRequest, reply: Reply) -> Result<(), Misuse> {
        self.reject(req.id, reply)
    }

    /// Accepts the sender: a transaction starts.
    pub fn accept_mail(&mut self, req: MailRequest) -> Result<(), Misuse> {
        let Pending::Mail { from, params } = self.take(req.id)? else {
            return Err(Misuse::UnknownRequest);
        };
        self.txn = Transaction {
            from: Some((from, params)),
            ..Transaction::default()
        };
        let reply = self.reply(ReplyId::SenderOk);
        self.answer(req.id, reply);
        Ok(())
    }

    /// Refuses the sender with `reply`.
    pub fn reject_mail(&mut self, req: MailRequest, reply: Reply) -> Result<(), Misuse> {
        self.reject(req.id, reply)
    }

    /// Accepts the recipient.
    pub fn accept_rcpt(&mut self, req: RcptRequest) -> Result<(), Misuse> {
        self.take(req.id)?;
        self.txn.rcpt_pending -= 1;
        self.txn.recipients += 1;
        let reply = self.reply(ReplyId::RecipientOk);
        self.answer(req.id, reply);
        Ok(())
    }

    /// Refuses the recipient with `reply`.
    pub fn reject_rcpt(&mut self, req: RcptRequest, reply: Reply) -> Result<(), Misuse> {
        self.take(req.id)?;
        self.txn.rcpt_pending -= 1;
        self.answer(req.id, reply);
        Ok(())
    }

    /// Lets the message come: `354` for DATA; for BDAT the chunk is read.
    pub fn accept_data(&mut self, req: DataRequest) -> Result<(), Misuse> {
        let Pending::Data { bdat } = self.take(req.id)? else {
            return Err(Misuse::UnknownRequest);
        };
        match bdat {
            None => {
                self.phase = Phase::Data(DataReader::new(
                    self.config.bare_line_endings,
                    self.config.limits.message_size,
                ));
                let reply = self.reply(ReplyId::StartData);
                self.answer(req.id, reply);
            }
            Some((size, last)) => {
                self.txn.chunking = true;
                self.remove_slot(req.id);
                self.start_chunk(size, last);
            }
        }
        self.resume();
        Ok(())
    }

    /// Refuses the message with `reply`. For BDAT the chunk is read and
    /// discarded first, and every further chunk of the transaction gets the
    /// same reply.
    pub fn reject_data(&mut self, req: DataRequest, reply: Reply) -> Result<(), Misuse> {
        self.reject(req.id, reply)
    }

    /// The message is stored: send `reply` (a `250`) and end the transaction.
    pub fn accept_message(&mut self, req: MessageRequest, reply: Reply) -> Result<(), Misuse> {
        self.reject(req.id, reply)
    }

    /// The message is refused with `reply`; the transaction ends.
    pub fn reject_message(&mut self, req: MessageRequest, reply: Reply) -> Result<(), Misuse> {
        self.reject(req.id, reply)
    }

    /// Answers VRFY or EXPN with `reply`.
    pub fn answer_verify(&mut self, req: VerifyRequest, reply: Reply) -> Result<(), Misuse> {
        self.reject(req.id, reply)
    }

    /// The TLS handshake after STARTTLS succeeded: the session starts over
    /// (RFC 3207 section 4.2), and the client must send EHLO again.
    pub fn tls_established(&mut self) -> Result<(), Misuse> {
        if !matches!(self.phase, Phase::AwaitingTls) {
            return Err(Misuse::NoTlsPending);
        }
        self.tls = true;
        self.phase = Phase::Commands;
        Ok(())
    }

    /// Ends the session now with `reply` (a `421` when the server shuts
    /// down). Outstanding decisions are dropped.
    pub fn shutdown(&mut self, reply: Reply) {
        if self.is_closed() {
            return;
        }
        self.drop_pending();
        self.close_with(reply);
    }

    // ---- decisions ----

    fn decide(&mut self, kind: Pending) -> DecisionId {
        let id = DecisionId(self.next_id);
        self.next_id += 1;
        self.pending.push((id, kind));
        self.slots.push_back(Slot::Waiting(id));
        id
    }

    fn take(&mut self, id: DecisionId) -> Result<Pending, Misuse> {
        let i = self
            .pending
            .iter()
            .position(|(p, _)| *p == id)
            .ok_or(Misuse::UnknownRequest)?;
        Ok(self.pending.remove(i).1)
    }

    /// Answers decision `id` with `reply` (whatever its kind) and resumes.
    fn reject(&mut self, id: DecisionId, reply: Reply) -> Result<(), Misuse> {
        match self.take(id)? {
            Pending::Rcpt => self.txn.rcpt_pending -= 1,
            Pending::Message => self.txn = Transaction::default(),
            Pending::Data {
                bdat: Some((size, last)),
            } => {
                // The chunk follows the command: read it, then answer.
                self.remove_slot(id);
                self.txn.chunking = true;
                self.txn.failed = Some(reply.clone());
                self.discard_chunk(size, last, reply);
                self.resume();
                return Ok(());
            }
            _ => {}
        }
        self.answer(id, reply);
        Ok(())
    }

    fn answer(&mut self, id: DecisionId, reply: Reply) {
        if let Some(slot) = self
            .slots
            .iter_mut()
            .find(|s| matches!(s, Slot::Waiting(w) if *w == id))
        {
            *slot = Slot::Ready(reply);
        }
        self.resume();
    }

    fn remove_slot(&mut self, id: DecisionId) {
        self.slots
            .retain(|s| !matches!(s, Slot::Waiting(w) if *w == id));
    }

    fn drop_pending(&mut self) {
        self.pending.clear();
        self.slots.retain(|s| matches!(s, Slot::Ready(_)));
    }

    fn resume(&mut self) {
        self.flush_slots();
        self.process();
    }

    fn flush_slots(&mut self) {
        while let Some(Slot::Ready(_)) = self.slots.front() {
            if let Some(Slot::Ready(reply)) = self.slots.pop_front() {
                reply.encode(&mut self.out);
            }
        }
        if self.closing && self.slots.is_empty() && !self.is_closed() {
            self.phase = Phase::Closed;
            self.input.clear();
            self.events.push_back(Event::Closed);
        }
    }

    fn push_reply(&mut self, reply: Reply) {
        self.slots.push_back(Slot::Ready(reply));
        self.flush_slots();
    }

    fn reply(&self, id: ReplyId) -> Reply {
        self.config.texts.reply(id)
    }

    fn close_with(&mut self, reply: Reply) {
        self.closing = true;
        self.push_reply(reply);
    }

    fn bad_command(&mut self, reply: Reply) {
        self.push_reply(reply);
        self.bad_commands += 1;
        if self.bad_commands >= self.config.limits.bad_commands {
            let reply = self.reply(ReplyId::TooManyErrors);
            self.close_with(reply);
        }
    }

    fn reset_transaction(&mut self) {
        if self.txn.from.is_some() {
            self.events.push_back(Event::Reset);
        }
        self.txn = Transaction::default();
    }

    // ---- input ----

    /// Whether processing must wait for the host. Consecutive RCPT commands
    /// may be decided in parallel, up to the limit.
    fn blocked(&self) -> bool {
        if self.pending.is_empty() {
            return false;
        }
        let all_rcpt = self.pending.iter().all(|(_, p)| *p == Pending::Rcpt);
        !(all_rcpt
            && matches!(self.phase, Phase::Commands)
            && self.pending.len() < self.config.limits.pending_decisions
            && self.next_line_is_rcpt())
    }

    fn next_line_is_rcpt(&self) -> bool {
        self.discarding.is_none()
            && self.input.len() >= 5
            && self.input[..5].eq_ignore_ascii_case(b"RCPT ")
            && memchr::memchr(b'\n', &self.input)
                .is_some_and(|i| i < self.config.limits.command_line)
    }

    fn process(&mut self) {
        while !self.closing && !self.blocked() {
            let progressed = match self.phase {
                Phase::Closed | Phase::AwaitingTls | Phase::Connecting => false,
                Phase::Data(_) => self.process_data(),
                Phase::Bdat(_) => self.process_bdat(),
                Phase::Commands | Phase::Refused | Phase::Auth(_) => self.process_line(),
            };
            if !progressed {
                break;
            }
        }
    }

    /// Looks for a complete line; `limit` is the longest allowed, CRLF included.
    fn take_line(&mut self, limit: usize) -> Line {
        let unterminated = self.config.limits.unterminated_line;
        if let Some(discarded) = self.discarding {
            return match memchr::memchr(b'\n', &self.input) {
                Some(i) if discarded + i > unterminated => Line::Unterminated,
                Some(i) => {
                    self.input.advance(i + 1);
                    self.discarding = None;
                    Line::TooLong
                }
                None => {
                    let total = discarded + self.input.len();
                    self.input.clear();
                    self.discarding = Some(total);
                    if total > unterminated {
                        Line::Unterminated
                    } else {
                        Line::Incomplete
                    }
                }
            };
        }
        match memchr::memchr(b'\n', &self.input[self.scanned..]) {
            Some(i) => {
                let end = self.scanned + i;
                self.scanned = 0;
                if end > unterminated {
                    return Line::Unterminated;
                }
                let line = self.input.split_to(end + 1).freeze();
                if line.len() > limit {
                    Line::TooLong
                } else {
                    Line::Complete(line)
                }
            }
            None if self.input.len() > unterminated => Line::Unterminated,
            None if self.input.len() > limit => {
                self.discarding = Some(self.input.len());
                self.input.clear();
                self.scanned = 0;
                Line::Incomplete
            }
            None => {
                self.scanned = self.input.len();
                Line::Incomplete
            }
        }
    }

    fn process_line(&mut self) -> bool {
        let limits = &self.config.limits;
        let in_auth = matches!(self.phase, Phase::Auth(_));
        let longest = if in_auth {
            limits.auth_line
        } else {
            limits.command_line.max(limits.auth_line)
        };
        let line = match self.take_line(longest) {
            Line::Incomplete => return false,
            Line::Unterminated => {
                let reply = self.reply(ReplyId::UnterminatedLine);
                self.close_with(reply);
                return false;
            }
            Line::TooLong => {
                if in_auth {
                    self.phase = Phase::Commands;
                }
                let reply = self.reply(ReplyId::LineTooLong);
                self.bad_command(reply);
                return true;
            }
            Line::Complete(line) => line,
        };
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if in_auth {
            self.auth_response(text);
            return true;
        }
        let is_auth = text.len() >= 5 && text[..5].eq_ignore_ascii_case(b"AUTH ");
        if !is_auth && line.len() > self.config.limits.command_line {
            let reply = self.reply(ReplyId::LineTooLong);
            self.bad_command(reply);
            return true;
        }
        match Command::parse(text) {
            Ok(command) => self.command(command),
            Err(error) => self.parse_error(&error),
        }
        true
    }

    fn parse_error(&mut self, error: &ParseError) {
        if matches!(self.phase, Phase::Refused) {
            let reply = self.reply(ReplyId::NoService);
            return self.bad_command(reply);
        }
        let reply = self.reply(error.reply_id());
        self.bad_command(reply);
    }

    fn command(&mut self, command: Command) {
        if matches!(self.phase, Phase::Refused) {
            if command == Command::Quit {
                let reply = self.reply(ReplyId::Bye);
                self.close_with(reply);
            } else {
                let reply = self.reply(ReplyId::NoService);
                self.bad_command(reply);
            }
            return;
        }
        match command {
            Command::Helo(domain) => self.helo(domain, false),
            Command::Ehlo(domain) => self.helo(domain, true),
            Command::Mail { from, params } => self.mail(from, params),
            Command::Rcpt { to, params } => self.rcpt(to, params),
            Command::Data => self.data(),
            Command::Bdat { size, last } => self.bdat(size, last),
            Command::Rset => {
                self.reset_transaction();
                let reply = self.reply(ReplyId::Ok);
                self.push_reply(reply);
            }
            Command::Noop(_) => {
                let reply = self.reply(ReplyId::Ok);
                self.push_reply(reply);
            }
            Command::Quit => {
                let reply = self.reply(ReplyId::Bye);
                self.close_with(reply);
            }
            Command::Vrfy(argument) => self.verify(argument, false),
            Command::Expn(argument) => self.verify(argument, true),
            Command::Help(_) => {
                let reply = self.reply(ReplyId::Help);
                self.push_reply(reply);
            }
            Command::StartTls => self.starttls(),
            Command::Auth { mechanism, initial } => self.auth(mechanism, initial),
        }
    }

    fn helo(&mut self, domain: String, extended: bool) {
        let id = self.decide(Pending::Helo {
            domain: domain.clone(),
            extended,
        });
        self.events.push_back(Event::Helo(HeloRequest {
            id,
            domain,
            extended,
        }));
    }

    fn ehlo_reply(&self, client: &str) -> Reply {
        let ext = &self.config.extensions;
        let mut lines = vec![format!("{} Hello {client}", self.config.hostname)];
        let size = format!("SIZE {}", self.config.limits.message_size);
        let offered = [
            (ext.pipelining, "PIPELINING"),
            (ext.size, size.as_str()),
            (ext.eight_bit_mime, "8BITMIME"),
            (ext.enhanced_status_codes, "ENHANCEDSTATUSCODES"),
            (ext.smtputf8, "SMTPUTF8"),
            (ext.chunking, "CHUNKING"),
            (ext.chunking && ext.binary_mime, "BINARYMIME"),
            (ext.dsn, "DSN"),
            (ext.starttls && !self.tls, "STARTTLS"),
        ];
        lines.extend(
            offered
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, line)| (*line).to_owned()),
        );
        if self.auth_offered() {
            let names: Vec<&str> = self
                .config
                .auth_mechanisms
                .iter()
                .map(Mechanism::as_str)
                .collect();
            lines.push(format!("AUTH {}", names.join(" ")));
        }
        lines.push("HELP".to_owned());
        Reply::multiline(250, None, lines).unwrap_or_else(|_| Reply::from_id(ReplyId::Ok))
    }

    fn auth_offered(&self) -> bool {
        !self.config.auth_mechanisms.is_empty()
            && self.authenticated.is_none()
            && (self.tls || !self.config.auth_requires_tls)
    }

    /// Checks MAIL parameters against the advertised extensions.
    fn check_mail_params(&self, from: &ReversePath, params: &MailParams) -> Option<ReplyId> {
        let ext = &self.config.extensions;
        let unsupported = !params.other.is_empty()
            || (params.size.is_some() && !ext.size)
            || (params.body == Some(BodyType::EightBitMime) && !ext.eight_bit_mime)
            || (params.body == Some(BodyType::BinaryMime) && !(ext.binary_mime && ext.chunking))
            || (params.smtputf8 && !ext.smtputf8)
            || ((params.ret.is_some() || params.envid.is_some()) && !ext.dsn)
            || (params.auth.is_some() && self.config.auth_mechanisms.is_empty());
        if unsupported {
            return Some(ReplyId::ParamNotRecognized);
        }
        if params
            .size
            .is_some_and(|s| s > self.config.limits.message_size)
        {
            return Some(ReplyId::MessageTooBig);
        }
        if from.address().is_some_and(|a| !a.is_ascii()) && !params.smtputf8 {
            return Some(ReplyId::Utf8Required);
        }
        if *from == ReversePath::Null && !self.config.accept_null_sender {
            return Some(ReplyId::NullSenderRefused);
        }
        None
    }

    fn mail(&mut self, from: ReversePath, params: MailParams) {
        let refused = if self.helo.is_none() {
            Some(ReplyId::HeloFirst)
        } else if self.txn.from.is_some() {
            Some(ReplyId::NestedMail)
        } else {
            self.check_mail_params(&from, &params)
        };
        if let Some(id) = refused {
            let reply = self.reply(id);
            return match id {
                ReplyId::HeloFirst | ReplyId::NestedMail => self.bad_command(reply),
                _ => self.push_reply(reply),
            };
        }
        let id = self.decide(Pending::Mail {
            from: from.clone(),
            params: params.clone(),
        });
        let authenticated = self.authenticated.clone();
        self.events.push_back(Event::Mail(MailRequest {
            id,
            from,
            params,
            authenticated,
        }));
    }

    fn rcpt(&mut self, to: ForwardPath, params: RcptParams) {
        let ext = &self.config.extensions;
        let smtputf8 = self.txn.from.as_ref().is_some_and(|(_, p)| p.smtputf8);
        let refused = if self.helo.is_none() {
            Some(ReplyId::HeloFirst)
        } else if self.txn.from.is_none() {
            Some(ReplyId::NeedMail)
        } else if !params.other.is_empty()
            || ((params.notify.is_some() || params.orcpt.is_some()) && !ext.dsn)
        {
            Some(ReplyId::ParamNotRecognized)
        } else if !to.is_ascii() && !smtputf8 {
            Some(ReplyId::Utf8Required)
        } else if self.txn.recipients + self.txn.rcpt_pending >= self.config.limits.recipients {
            Some(ReplyId::TooManyRecipients)
        } else {
            None
        };
        if let Some(id) = refused {
            let reply = self.reply(id);
            return match id {
                ReplyId::HeloFirst | ReplyId::NeedMail => self.bad_command(reply),
                _ => self.push_reply(reply),
            };
        }
        self.txn.rcpt_pending += 1;
        self.txn.rcpt_attempted = true;
        let id = self.decide(Pending::Rcpt);
        self.events
            .push_back(Event::Rcpt(RcptRequest { id, to, params }));
    }

    /// Why DATA or the first BDAT cannot start, if it cannot.
    fn message_refusal(&self) -> Option<ReplyId> {
        if self.helo.is_none() {
            Some(ReplyId::HeloFirst)
        } else if self.txn.from.is_none() {
            Some(ReplyId::NeedMail)
        } else if self.txn.recipients == 0 && self.txn.rcpt_attempted {
            Some(ReplyId::NoValidRecipients)
        } else if self.txn.recipients == 0 {
            Some(ReplyId::NeedRcpt)
        } else {
            None
        }
    }

    fn data(&mut self) {
        let binary = self
            .txn
            .from
            .as_ref()
            .is_some_and(|(_, p)| p.body == Some(BodyType::BinaryMime));
        let refused = self.message_refusal().or(if binary || self.txn.chunking {
            Some(ReplyId::DataNotAllowed)
        } else {
            None
        });
        if let Some(id) = refused {
            let reply = self.reply(id);
            return if id == ReplyId::NoValidRecipients {
                self.push_reply(reply)
            } else {
                self.bad_command(reply)
            };
        }
        let id = self.decide(Pending::Data { bdat: None });
        let recipients = self.txn.recipients;
        self.events.push_back(Event::Data(DataRequest {
            id,
            chunking: false,
            recipients,
        }));
    }

    fn bdat(&mut self, size: u64, last: bool) {
        if !self.config.extensions.chunking {
            // The octets still follow the command: read them so that they
            // are never taken for commands.
            let reply = self.reply(ReplyId::NotImplemented);
            self.bad_commands += 1;
            return self.discard_chunk(size, last, reply);
        }
        if let Some(reply) = self.txn.failed.clone() {
            return self.discard_chunk(size, last, reply);
        }
        if !self.txn.chunking {
            if let Some(id) = self.message_refusal() {
                let reply = self.reply(id);
                self.bad_commands += 1;
                return self.discard_chunk(size, last, reply);
            }
            let id = self.decide(Pending::Data {
                bdat: Some((size, last)),
            });
            let recipients = self.txn.recipients;
            self.events.push_back(Event::Data(DataRequest {
                id,
                chunking: true,
                recipients,
            }));
            return;
        }
        self.start_chunk(size, last);
    }

    fn discard_chunk(&mut self, size: u64, last: bool, reply: Reply) {
        self.phase = Phase::Bdat(Bdat {
            remaining: size,
            last,
            refused: Some(reply),
        });
    }

    /// Starts reading a BDAT chunk of an accepted transaction.
    fn start_chunk(&mut self, size: u64, last: bool) {
        let limit = self.config.limits.message_size;
        let total = self.txn.size.saturating_add(size);
        let refused = if total > limit {
            self.events
                .push_back(Event::MessageAborted(AbortReason::TooBig));
            let reply = self.too_big(total);
            self.txn.failed = Some(reply.clone());
            Some(reply)
        } else {
            self.txn.size = total;
            None
        };
        self.phase = Phase::Bdat(Bdat {
            remaining: size,
            last,
            refused,
        });
    }

    fn too_big(&self, size: u64) -> Reply {
        let reply = self.reply(ReplyId::MessageTooBig);
        let text = format!(
            "{} ({size} octets, the maximum is {})",
            reply.text(),
            self.config.limits.message_size
        );
        reply.with_text(text)
    }

    fn process_bdat(&mut self) -> bool {
        let Phase::Bdat(chunk) = &mut self.phase else {
            return false;
        };
        if chunk.remaining > 0 {
            if self.input.is_empty() {
                return false;
            }
            let n = chunk.remaining.min(self.input.len() as u64) as usize;
            chunk.remaining -= n as u64;
            let bytes = self.input.split_to(n).freeze();
            self.scanned = 0;
            if chunk.refused.is_none() {
                self.events.push_back(Event::DataChunk(bytes));
            }
            if chunk.remaining > 0 {
                return false;
            }
        }
        let last = chunk.last;
        let refused = chunk.refused.take();
        self.phase = Phase::Commands;
        match refused {
            Some(reply) => {
                if last {
                    self.txn = Transaction::default();
                }
                self.push_reply(reply);
            }
            None if last => {
                let size = self.txn.size;
                let id = self.decide(Pending::Message);
                self.events
                    .push_back(Event::MessageEnd(MessageRequest { id, size }));
            }
            None => {
                let reply = self.reply(ReplyId::ChunkReceived);
                self.push_reply(reply);
            }
        }
        true
    }

    fn process_data(&mut self) -> bool {
        let Phase::Data(reader) = &mut self.phase else {
            return false;
        };
        let was_failed = reader.failed();
        let mut chunks = Vec::new();
        let ended = reader.read(&mut self.input, &mut chunks);
        self.scanned = 0;
        let newly_failed = !was_failed && reader.failed();
        let (too_big, bare, size) = (reader.too_big, reader.bare, reader.size);
        self.events.extend(chunks.into_iter().map(Event::DataChunk));
        if newly_failed {
            let reason = if too_big {
                AbortReason::TooBig
            } else {
                AbortReason::BareLineEnding
            };
            self.events.push_back(Event::MessageAborted(reason));
        }
        if !ended {
            return false;
        }
        self.phase = Phase::Commands;
        if too_big || bare {
            self.txn = Transaction::default();
            let reply = if too_big {
                self.too_big(size)
            } else {
                self.reply(ReplyId::BareLineEnding)
            };
            self.push_reply(reply);
        } else {
            let id = self.decide(Pending::Message);
            self.events
                .push_back(Event::MessageEnd(MessageRequest { id, size }));
        }
        true
    }

    fn verify(&mut self, argument: String, expand: bool) {
        let asks = if expand {
            self.config.expn
        } else {
            self.config.vrfy
        };
        if !asks {
            let reply = self.reply(if expand {
                ReplyId::ExpnDisabled
            } else {
                ReplyId::CannotVrfy
            });
            return self.push_reply(reply);
        }
        let id = self.decide(Pending::Verify);
        self.events.push_back(Event::Verify(VerifyRequest {
            id,
            argument,
            expand,
        }));
    }

    fn starttls(&mut self) {
        if self.tls {
            let reply = self.reply(ReplyId::TlsActive);
            return self.bad_command(reply);
        }
        if !self.config.extensions.starttls {
            let reply = self.reply(ReplyId::TlsNotAvailable);
            return self.bad_command(reply);
        }
        let reply = self.reply(ReplyId::ReadyToStartTls);
        self.push_reply(reply);
        // Everything the client pipelined after STARTTLS is dropped.
        self.input.clear();
        self.scanned = 0;
        self.reset_transaction();
        self.helo = None;
        self.authenticated = None;
        self.phase = Phase::AwaitingTls;
        self.events.push_back(Event::StartTls);
    }

    fn auth(&mut self, mechanism: Mechanism, initial: Option<String>) {
        let refused = if self.helo.is_none() {
            Some(ReplyId::HeloFirst)
        } else if self.authenticated.is_some() {
            Some(ReplyId::AlreadyAuthenticated)
        } else if self.txn.from.is_some() {
            Some(ReplyId::AuthInTransaction)
        } else if self.config.auth_mechanisms.is_empty() {
            Some(ReplyId::NotImplemented)
        } else if !self.tls && self.config.auth_requires_tls {
            Some(ReplyId::EncryptionRequired)
        } else if !self.config.auth_mechanisms.contains(&mechanism)
            || matches!(mechanism, Mechanism::Other(_))
        {
            Some(ReplyId::MechanismNotSupported)
        } else {
            None
        };
        if let Some(id) = refused {
            let reply = self.reply(id);
            return if matches!(
                id,
                ReplyId::EncryptionRequired | ReplyId::MechanismNotSupported
            ) {
                self.push_reply(reply)
            } else {
                self.bad_command(reply)
            };
        }
        match (mechanism, initial) {
            (Mechanism::Plain, None) => self.challenge(AuthStep::Plain, ""),
            (Mechanism::Plain, Some(ir)) => self.auth_response_plain(ir.as_bytes()),
            (Mechanism::Login, None) => self.challenge(AuthStep::LoginUser, "VXNlcm5hbWU6"),
            (Mechanism::Login, Some(ir)) => match decode(ir.as_bytes()) {
                Some(user) => {
                    self.challenge(AuthStep::LoginPassword { username: user }, "UGFzc3dvcmQ6")
                }
                None => self.auth_malformed(),
            },
            (Mechanism::Other(_), _) => unreachable!("refused above"),
        }
    }

    fn challenge(&mut self, step: AuthStep, text: &'static str) {
        self.phase = Phase::Auth(step);
        let reply = Reply::new(334, None, text).expect("a valid reply");
        self.push_reply(reply);
    }

    fn auth_malformed(&mut self) {
        self.phase = Phase::Commands;
        let reply = self.reply(ReplyId::AuthMalformed);
        self.push_reply(reply);
    }

    fn auth_response(&mut self, line: &[u8]) {
        let Phase::Auth(step) = std::mem::replace(&mut self.phase, Phase::Commands) else {
            return;
        };
        if line == b"*" {
            let reply = self.reply(ReplyId::AuthCancelled);
            return self.push_reply(reply);
        }
        match step {
            AuthStep::Plain => self.auth_response_plain(line),
            AuthStep::LoginUser => match decode(line) {
                Some(user) => {
                    self.challenge(AuthStep::LoginPassword { username: user }, "UGFzc3dvcmQ6")
                }
                None => self.auth_malformed(),
            },
            AuthStep::LoginPassword { username } => match decode(line) {
                Some(password) => self.auth_decision(Mechanism::Login, None, username, password),
                None => self.auth_malformed(),
            },
        }
    }

    /// `message = [authzid] UTF8NUL authcid UTF8NUL passwd` (RFC 4616).
    fn auth_response_plain(&mut self, b64: &[u8]) {
        let Some(message) = decode(b64) else {
            return self.auth_malformed();
        };
        let mut parts = message.split('\0');
        let (Some(authzid), Some(authcid), Some(passwd), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return self.auth_malformed();
        };
        if authcid.is_empty() {
            return self.auth_malformed();
        }
        let authzid = (!authzid.is_empty() && authzid != authcid).then(|| authzid.to_owned());
        self.auth_decision(
            Mechanism::Plain,
            authzid,
            authcid.to_owned(),
            passwd.to_owned(),
        );
    }

    fn auth_decision(
        &mut self,
        mechanism: Mechanism,
        authzid: Option<String>,
        username: String,
        password: String,
    ) {
        self.phase = Phase::Commands;
        let id = self.decide(Pending::Auth {
            username: username.clone(),
        });
        self.events.push_back(Event::Auth(AuthRequest {
            id,
            mechanism,
            authzid,
            username,
            password: Secret::new(password),
        }));
    }
}

/// Decodes a base64 SASL response into UTF-8 (`=` is the empty response).
fn decode(b64: &[u8]) -> Option<String> {
    if b64 == b"=" {
        return Some(String::new());
    }
    let bytes = BASE64.decode(b64).ok()?;
    String::from_utf8(bytes).ok()
}
