//! The client session: one SMTP connection as seen by the sending side (for
//! delivery to remote servers and to a smarthost).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::BytesMut;

use crate::command::Command;
use crate::data::DotStuffer;
use crate::limits::ClientLimits;
use crate::reply::{EnhancedStatus, Reply, ReplyError, ReplyReader};
use crate::types::{
    BodyType, Credentials, ForwardPath, MailParams, Mechanism, RcptParams, ReversePath,
};

/// When the client uses STARTTLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// Never, even when offered.
    Never,
    /// When the server offers it; plaintext otherwise.
    #[default]
    Opportunistic,
    /// Always: a server that does not offer it (or refuses it) fails the session.
    Required,
}

/// How a client session behaves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The name sent with EHLO/HELO.
    pub helo_name: String,
    /// STARTTLS policy.
    pub tls: TlsMode,
    /// The connection is TLS from the start (port 465).
    pub tls_active: bool,
    /// Credentials for AUTH (PLAIN, or LOGIN when PLAIN is not offered).
    pub credentials: Option<Credentials>,
    /// Never send credentials over a connection without TLS. Default true.
    pub auth_requires_tls: bool,
    /// Use BDAT when the server offers CHUNKING and PIPELINING. Messages
    /// with `BODY=BINARYMIME` always use BDAT.
    pub prefer_chunking: bool,
    /// Timeouts and parser bounds.
    pub limits: ClientLimits,
}

impl ClientConfig {
    /// Defaults with the given EHLO name.
    pub fn new(helo_name: impl Into<String>) -> Self {
        ClientConfig {
            helo_name: helo_name.into(),
            tls: TlsMode::Opportunistic,
            tls_active: false,
            credentials: None,
            auth_requires_tls: true,
            prefer_chunking: false,
            limits: ClientLimits::default(),
        }
    }
}

/// What the server offered in its EHLO reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// The server answered EHLO (false after a HELO fallback).
    pub esmtp: bool,
    /// PIPELINING.
    pub pipelining: bool,
    /// SIZE, with the limit (`Some(0)`: no fixed limit).
    pub size: Option<u64>,
    /// 8BITMIME.
    pub eight_bit_mime: bool,
    /// SMTPUTF8.
    pub smtputf8: bool,
    /// CHUNKING.
    pub chunking: bool,
    /// BINARYMIME.
    pub binary_mime: bool,
    /// DSN.
    pub dsn: bool,
    /// STARTTLS.
    pub starttls: bool,
    /// ENHANCEDSTATUSCODES.
    pub enhanced_status_codes: bool,
    /// AUTH mechanisms.
    pub auth: Vec<Mechanism>,
}

impl Capabilities {
    /// Reads the extension lines of an EHLO reply (all but the first).
    pub fn from_ehlo(reply: &Reply) -> Self {
        let mut caps = Capabilities {
            esmtp: true,
            ..Capabilities::default()
        };
        for line in reply.lines().skip(1) {
            let mut words = line.split([' ', '=']).filter(|w| !w.is_empty());
            let Some(keyword) = words.next() else {
                continue;
            };
            match keyword.to_ascii_uppercase().as_str() {
                "PIPELINING" => caps.pipelining = true,
                "SIZE" => caps.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                "8BITMIME" => caps.eight_bit_mime = true,
                "SMTPUTF8" => caps.smtputf8 = true,
                "CHUNKING" => caps.chunking = true,
                "BINARYMIME" => caps.binary_mime = true,
                "DSN" => caps.dsn = true,
                "STARTTLS" => caps.starttls = true,
                "ENHANCEDSTATUSCODES" => caps.enhanced_status_codes = true,
                "AUTH" => {
                    for name in words {
                        let mechanism = Mechanism::from_name(name);
                        if !caps.auth.contains(&mechanism) {
                            caps.auth.push(mechanism);
                        }
                    }
                }
                _ => {}
            }
        }
        caps
    }
}

/// One message to send: the sender, the recipients and their parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Envelope {
    /// The sender.
    pub from: ReversePath,
    /// MAIL parameters. SIZE is set from [`Envelope::size`]; parameters of
    /// extensions the server does not offer are left out (BODY, DSN).
    pub params: MailParams,
    /// The recipients, with their RCPT parameters.
    pub recipients: Vec<(ForwardPath, RcptParams)>,
    /// The size of the body in octets, when known: announced with SIZE and
    /// checked against the server's limit before anything is sent.
    pub size: Option<u64>,
}

impl Envelope {
    /// An envelope without parameters.
    pub fn new(from: ReversePath, recipients: impl IntoIterator<Item = ForwardPath>) -> Self {
        Envelope {
            from,
            params: MailParams::default(),
            recipients: recipients
                .into_iter()
                .map(|r| (r, RcptParams::default()))
                .collect(),
            size: None,
        }
    }
}

/// The replies of one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The reply to MAIL (or a reply made up by the session when the
    /// message could not be offered, e.g. too big for the server's SIZE).
    pub mail: Reply,
    /// The reply to each RCPT, in the envelope's order.
    pub recipients: Vec<Reply>,
    /// The reply after the message, if the message was sent.
    pub data: Option<Reply>,
}

impl Outcome {
    /// The final result for recipient `index`: the refusal of MAIL or of its
    /// RCPT, otherwise the reply to the message.
    pub fn result(&self, index: usize) -> &Reply {
        if !self.mail.is_positive() {
            return &self.mail;
        }
        match (&self.recipients[index], &self.data) {
            (rcpt, _) if !rcpt.is_positive() => rcpt,
            (_, Some(data)) => data,
            (rcpt, None) => rcpt,
        }
    }

    /// The indexes of the recipients the server took responsibility for.
    pub fn delivered(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.recipients.len()).filter(|&i| self.result(i).code() / 100 == 2)
    }
}

/// Why a client session failed. After [`ClientEvent::Failed`] comes
/// [`ClientEvent::Closed`] once the session has said QUIT where that is
/// still possible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The greeting was not `220`.
    #[error("the server refused the connection: {0}")]
    Greeting(Reply),
    /// EHLO and HELO were refused.
    #[error("the server refused EHLO/HELO: {0}")]
    Helo(Reply),
    /// TLS is required but the server does not offer STARTTLS.
    #[error("TLS is required but the server does not offer STARTTLS")]
    TlsNotOffered,
    /// STARTTLS was refused while TLS is required.
    #[error("the server refused STARTTLS: {0}")]
    StartTls(Reply),
    /// Credentials are set but the server offers neither PLAIN nor LOGIN,
    /// or the connection has no TLS and credentials must not go in clear.
    #[error("cannot authenticate: no usable mechanism on this connection")]
    AuthUnavailable,
    /// AUTH was refused.
    #[error("authentication failed: {0}")]
    Auth(Reply),
    /// The server sent something that is not an SMTP reply.
    #[error("malformed reply: {0}")]
    Protocol(#[from] ReplyError),
    /// The server closed the session (`421`).
    #[error("the server closed the session: {0}")]
    ServiceClosing(Reply),
    /// A reply did not come in time (RFC 5321 section 4.5.3.2).
    #[error("timeout waiting for the server")]
    Timeout,
}

/// What the client session tells the host.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The server accepted STARTTLS: write out the transmit buffer, run the
    /// TLS handshake, then call [`ClientSession::tls_established`].
    StartTls,
    /// The session is ready for [`ClientSession::send_mail`] or
    /// [`ClientSession::quit`]; [`ClientSession::capabilities`] is known.
    Ready,
    /// The server waits for the body: push it with
    /// [`ClientSession::send_body`], then call [`ClientSession::finish_body`].
    SendBody,
    /// A transaction is over; the session is ready again.
    Done(Outcome),
    /// The session cannot go on.
    Failed(ClientError),
    /// The session is over: write out the transmit buffer and close.
    Closed,
}

/// A call that does not fit the client session's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientMisuse {
    /// `send_mail` or `quit` before [`ClientEvent::Ready`] or during a transaction.
    #[error("the session is not ready")]
    NotReady,
    /// `send_body` or `finish_body` outside [`ClientEvent::SendBody`].
    #[error("the session is not sending a body")]
    NotSendingBody,
    /// An envelope without recipients.
    #[error("an envelope needs at least one recipient")]
    NoRecipients,
    /// `tls_established` without a STARTTLS in progress.
    #[error("no STARTTLS handshake is in progress")]
    NoTlsPending,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    AuthPlain,
    AuthLogin(u8),
    Rset,
    Mail,
    Rcpt(usize),
    Data,
    Chunk,
    DataEnd,
    Quit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Opening,
    TlsHandshake,
    Ready,
    Transaction,
    Body,
    Quitting,
    Closed,
}

#[derive(Debug)]
struct Transaction {
    commands: VecDeque<Command>,
    rcpts_sent: usize,
    pipelined: bool,
    chunking: bool,
    mail: Option<Reply>,
    recipients: Vec<Option<Reply>>,
    stuffer: DotStuffer,
    chunk_failure: Option<Reply>,
}

/// One SMTP connection, client side, without I/O.
///
/// Feed the server's bytes to [`handle_input`](Self::handle_input) and the
/// clock to [`handle_timeout`](Self::handle_timeout); after each call drain
/// [`poll_event`](Self::poll_event), then [`poll_transmit`](Self::poll_transmit),
/// then read [`poll_timeout`](Self::poll_timeout). The session greets, says
/// EHLO (HELO if refused), runs STARTTLS and AUTH as configured, then emits
/// [`ClientEvent::Ready`].
///
/// ```
/// use std::time::Instant;
/// use ironpost_smtp_proto::*;
///
/// let now = Instant::now();
/// let mut server = ServerSession::new(ServerConfig::new("mx.example.org"), now);
/// let mut client = ClientSession::new(ClientConfig::new("client.example"), now);
/// let from = ReversePath::Mailbox(Address::parse("a@client.example").unwrap());
/// let to = ForwardPath::Mailbox(Address::parse("b@example.org").unwrap());
/// let mut envelope = Some(Envelope::new(from, [to]));
/// let mut received = Vec::new();
/// let mut outcome = None;
/// while !client.is_closed() {
///     while let Some(event) = server.poll_event() {
///         match event {
///             Event::Connect(r) => server.accept_connection(r).unwrap(),
///             Event::Helo(r) => server.accept_helo(r).unwrap(),
///             Event::Mail(r) => server.accept_mail(r).unwrap(),
///             Event::Rcpt(r) => server.accept_rcpt(r).unwrap(),
///             Event::Data(r) => server.accept_data(r).unwrap(),
///             Event::DataChunk(b) => received.extend_from_slice(&b),
///             Event::MessageEnd(r) => server
///                 .accept_message(r, Reply::from_id(ReplyId::MessageAccepted))
///                 .unwrap(),
///             _ => {}
///         }
///     }
///     while let Some(event) = client.poll_event() {
///         match event {
///             ClientEvent::Ready => client.send_mail(now, envelope.take().unwrap()).unwrap(),
///             ClientEvent::SendBody => {
///                 client.send_body(now, b"Subject: hi\r\n\r\n.Hello\r\n").unwrap();
///                 client.finish_body(now).unwrap();
///             }
///             ClientEvent::Done(o) => {
///                 outcome = Some(o);
///                 client.quit(now).unwrap();
///             }
///             _ => {}
///         }
///     }
///     let (mut to_server, mut to_client) = (Vec::new(), Vec::new());
///     client.poll_transmit(&mut to_server);
///     server.poll_transmit(&mut to_client);
///     server.handle_input(now, &to_server);
///     client.handle_input(now, &to_client);
/// }
/// assert_eq!(received, b"Subject: hi\r\n\r\n.Hello\r\n");
/// assert_eq!(outcome.unwrap().delivered().count(), 1);
/// assert!(server.is_closed());
/// ```
#[derive(Debug)]
pub struct ClientSession {
    config: ClientConfig,
    input: BytesMut,
    scanned: usize,
    reader: ReplyReader,
    out: Vec<u8>,
    events: VecDeque<ClientEvent>,
    expect: VecDeque<Expect>,
    phase: Phase,
    caps: Capabilities,
    tls: bool,
    authenticated: bool,
    needs_rset: bool,
    txn: Option<Transaction>,
    progress_at: Instant,
}

impl ClientSession {
    /// A session on a connection opened at `now`; the server speaks first.
    pub fn new(config: ClientConfig, now: Instant) -> Self {
        let reader = ReplyReader::new(config.limits.reply.clone());
        let tls = config.tls_active;
        ClientSession {
            config,
            input: BytesMut::new(),
            scanned: 0,
            reader,
            out: Vec::new(),
            events: VecDeque::new(),
            expect: VecDeque::from([Expect::Greeting]),
            phase: Phase::Opening,
            caps: Capabilities::default(),
            tls,
            authenticated: false,
            needs_rset: false,
            txn: None,
            progress_at: now,
        }
    }

    /// What the server offered.
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// Whether the connection is protected by TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Whether the session authenticated.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// Whether the session is over.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Bytes received from the server at `now`.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        if matches!(self.phase, Phase::Closed | Phase::TlsHandshake) {
            return;
        }
        self.progress_at = now;
        self.input.extend_from_slice(bytes);
        self.process_input(now);
    }

    /// Reads replies while some command waits for one. Replies that come
    /// while the host decides (after `Ready` or `SendBody`) wait in the
    /// buffer, bounded by the reply line limit, so that what the session does
    /// never depends on how the input was split.
    fn process_input(&mut self, now: Instant) {
        while !matches!(self.phase, Phase::Closed | Phase::TlsHandshake) {
            if self.expect.is_empty() {
                if self.input.len() > self.config.limits.reply.line {
                    self.fail(ClientError::Protocol(ReplyError::LineTooLong), false);
                }
                break;
            }
            let Some(i) = memchr::memchr(b'\n', &self.input[self.scanned..]) else {
                self.scanned = self.input.len();
                if self.input.len() > self.config.limits.reply.line {
                    self.fail(ClientError::Protocol(ReplyError::LineTooLong), false);
                }
                break;
            };
            let end = self.scanned + i + 1;
            self.scanned = 0;
            let line = self.input.split_to(end);
            match self.reader.push_line(&line) {
                Ok(None) => {}
                Ok(Some(reply)) => self.on_reply(now, reply),
                Err(error) => self.fail(ClientError::Protocol(error), false),
            }
        }
    }

    /// The clock.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_some_and(|deadline| now >= deadline) {
            self.fail(ClientError::Timeout, false);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let limits = &self.config.limits;
        let wait = match (self.phase, self.expect.front()) {
            (Phase::Closed | Phase::TlsHandshake, _) => return None,
            (Phase::Body, _) => limits.data_block,
            (_, None) => return None,
            (_, Some(expect)) => self.timeout_for(*expect),
        };
        Some(self.progress_at + wait)
    }

    fn timeout_for(&self, expect: Expect) -> Duration {
        let limits = &self.config.limits;
        match expect {
            Expect::Greeting => limits.greeting,
            Expect::Mail => limits.mail,
            Expect::Rcpt(_) => limits.rcpt,
            Expect::Data => limits.data_initiation,
            Expect::Chunk | Expect::DataEnd => limits.data_termination,
            _ => limits.command,
        }
    }

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Appends the bytes to send to the server to `out`; returns how many.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> usize {
        let n = self.out.len();
        out.append(&mut self.out);
        n
    }

    /// The TLS handshake after STARTTLS succeeded: EHLO is sent again.
    pub fn tls_established(&mut self, now: Instant) -> Result<(), ClientMisuse> {
        if self.phase != Phase::TlsHandshake {
            return Err(ClientMisuse::NoTlsPending);
        }
        self.tls = true;
        self.phase = Phase::Opening;
        self.caps = Capabilities::default();
        self.input.clear();
        self.scanned = 0;
        self.send(
            now,
            &Command::Ehlo(self.config.helo_name.clone()),
            Expect::Ehlo,
        );
        Ok(())
    }

    /// Starts a transaction. The replies come back as one
    /// [`ClientEvent::Done`]; [`ClientEvent::SendBody`] comes first if a
    /// recipient was accepted.
    pub fn send_mail(&mut self, now: Instant, envelope: Envelope) -> Result<(), ClientMisuse> {
        if self.phase != Phase::Ready {
            return Err(ClientMisuse::NotReady);
        }
        if envelope.recipients.is_empty() {
            return Err(ClientMisuse::NoRecipients);
        }
        if let Some(refusal) = self.refuse_before_sending(&envelope) {
            let n = envelope.recipients.len();
            self.events.push_back(ClientEvent::Done(Outcome {
                mail: refusal.clone(),
                recipients: vec![refusal; n],
                data: None,
            }));
            return Ok(());
        }
        let caps = &self.caps;
        let binary = envelope.params.body == Some(BodyType::BinaryMime);
        let chunking = caps.chunking && caps.pipelining && (self.config.prefer_chunking || binary);
        let mut params = envelope.params.clone();
        params.size = envelope.size.filter(|_| caps.size.is_some());
        params.body = params.body.filter(|b| match b {
            BodyType::SevenBit | BodyType::EightBitMime => caps.eight_bit_mime,
            BodyType::BinaryMime => caps.binary_mime,
        });
        if !caps.dsn {
            params.ret = None;
            params.envid = None;
        }
        if caps.auth.is_empty() {
            params.auth = None;
        }
        let mut commands = VecDeque::new();
        if self.needs_rset {
            commands.push_back(Command::Rset);
        }
        commands.push_back(Command::Mail {
            from: envelope.from.clone(),
            params,
        });
        for (to, rcpt_params) in &envelope.recipients {
            let mut rcpt_params = rcpt_params.clone();
            if !caps.dsn {
                rcpt_params.notify = None;
                rcpt_params.orcpt = None;
            }
            commands.push_back(Command::Rcpt {
                to: to.clone(),
                params: rcpt_params,
            });
        }
        if !chunking {
            commands.push_back(Command::Data);
        }
        let pipelined = caps.pipelining;
        self.txn = Some(Transaction {
            commands,
            rcpts_sent: 0,
            pipelined,
            chunking,
            mail: None,
            recipients: vec![None; envelope.recipients.len()],
            stuffer: DotStuffer::new(),
            chunk_failure: None,
        });
        self.phase = Phase::Transaction;
        self.needs_rset = false;
        self.send_next_commands(now);
        Ok(())
    }

    /// A reply the session makes up when the message cannot be offered to
    /// this server at all.
    fn refuse_before_sending(&self, envelope: &Envelope) -> Option<Reply> {
        let caps = &self.caps;
        let too_big = match (envelope.size, caps.size) {
            (Some(size), Some(max)) => max > 0 && size > max,
            _ => false,
        };
        if too_big {
            return Some(made_up(
                552,
                (5, 3, 4),
                "Message too big for the receiving server",
            ));
        }
        let needs_utf8 = envelope.params.smtputf8
            || envelope.from.address().is_some_and(|a| !a.is_ascii())
            || envelope.recipients.iter().any(|(r, _)| !r.is_ascii());
        if needs_utf8 && !caps.smtputf8 {
            return Some(made_up(
                553,
                (5, 6, 7),
                "The receiving server does not support SMTPUTF8",
            ));
        }
        let binary = envelope.params.body == Some(BodyType::BinaryMime);
        if binary && !(caps.binary_mime && caps.chunking && caps.pipelining) {
            return Some(made_up(
                554,
                (5, 6, 3),
                "The receiving server does not accept binary content",
            ));
        }
        None
    }

    /// Sends the next commands of the transaction: all of them when the
    /// server pipelines, otherwise one.
    fn send_next_commands(&mut self, now: Instant) {
        let Some(txn) = self.txn.as_mut() else {
            return;
        };
        let mut batch = Vec::new();
        while let Some(command) = txn.commands.pop_front() {
            let expect = match &command {
                Command::Rset => Expect::Rset,
                Command::Mail { .. } => Expect::Mail,
                Command::Rcpt { .. } => {
                    txn.rcpts_sent += 1;
                    Expect::Rcpt(txn.rcpts_sent - 1)
                }
                _ => Expect::Data,
            };
            batch.push((command, expect));
            if !txn.pipelined {
                break;
            }
        }
        for (command, expect) in batch {
            self.send(now, &command, expect);
        }
    }

    /// Pushes the next part of the body (the session dot-stuffs it for DATA).
    pub fn send_body(&mut self, now: Instant, chunk: &[u8]) -> Result<(), ClientMisuse> {
        if self.phase != Phase::Body {
            return Err(ClientMisuse::NotSendingBody);
        }
        self.progress_at = now;
        let txn = self.txn.as_mut().ok_or(ClientMisuse::NotSendingBody)?;
        if !txn.chunking {
            txn.stuffer.push(chunk, &mut self.out);
        } else if !chunk.is_empty() && txn.chunk_failure.is_none() {
            Command::Bdat {
                size: chunk.len() as u64,
                last: false,
            }
            .encode(&mut self.out);
            self.out.extend_from_slice(chunk);
            self.expect.push_back(Expect::Chunk);
            self.process_input(now);
        }
        Ok(())
    }

    /// Ends the body; the reply comes with [`ClientEvent::Done`].
    pub fn finish_body(&mut self, now: Instant) -> Result<(), ClientMisuse> {
        if self.phase != Phase::Body {
            return Err(ClientMisuse::NotSendingBody);
        }
        let txn = self.txn.as_mut().ok_or(ClientMisuse::NotSendingBody)?;
        if txn.chunking {
            Command::Bdat {
                size: 0,
                last: true,
            }
            .encode(&mut self.out);
        } else {
            txn.stuffer.finish(&mut self.out);
        }
        self.phase = Phase::Transaction;
        self.progress_at = now;
        self.expect.push_back(Expect::DataEnd);
        self.process_input(now);
        Ok(())
    }

    /// Says QUIT; [`ClientEvent::Closed`] follows the server's reply.
    pub fn quit(&mut self, now: Instant) -> Result<(), ClientMisuse> {
        if self.phase != Phase::Ready {
            return Err(ClientMisuse::NotReady);
        }
        self.phase = Phase::Quitting;
        self.send(now, &Command::Quit, Expect::Quit);
        Ok(())
    }

    fn send(&mut self, now: Instant, command: &Command, expect: Expect) {
        command.encode(&mut self.out);
        self.expect.push_back(expect);
        self.progress_at = now;
        self.process_input(now);
    }

    fn send_raw(&mut self, now: Instant, line: &str, expect: Expect) {
        self.out.extend_from_slice(line.as_bytes());
        self.out.extend_from_slice(b"\r\n");
        self.expect.push_back(expect);
        self.progress_at = now;
        self.process_input(now);
    }

    /// Ends the session: with `quit`, says QUIT first where it can.
    fn fail(&mut self, error: ClientError, quit: bool) {
        if self.phase == Phase::Closed {
            return;
        }
        self.events.push_back(ClientEvent::Failed(error));
        self.expect.clear();
        self.txn = None;
        if quit && self.phase != Phase::Quitting {
            Command::Quit.encode(&mut self.out);
        }
        self.close();
    }

    fn close(&mut self) {
        self.phase = Phase::Closed;
        self.input.clear();
        self.events.push_back(ClientEvent::Closed);
    }

    fn on_reply(&mut self, now: Instant, reply: Reply) {
        let Some(expect) = self.expect.pop_front() else {
            return;
        };
        if reply.code() == 421 && expect != Expect::Quit {
            return self.fail(ClientError::ServiceClosing(reply), false);
        }
        match expect {
            Expect::Greeting if reply.code() == 220 => {
                self.send(
                    now,
                    &Command::Ehlo(self.config.helo_name.clone()),
                    Expect::Ehlo,
                );
            }
            Expect::Greeting => self.fail(ClientError::Greeting(reply), true),
            Expect::Ehlo if reply.code() == 250 => {
                self.caps = Capabilities::from_ehlo(&reply);
                self.after_hello(now);
            }
            Expect::Ehlo if reply.is_permanent() => {
                self.send(
                    now,
                    &Command::Helo(self.config.helo_name.clone()),
                    Expect::Helo,
                );
            }
            Expect::Ehlo => self.fail(ClientError::Helo(reply), true),
            Expect::Helo if reply.code() != 250 => self.fail(ClientError::Helo(reply), true),
            Expect::Helo => {
                self.caps = Capabilities::default();
                self.after_hello(now);
            }
            Expect::StartTls if reply.code() == 220 => {
                self.phase = Phase::TlsHandshake;
                self.events.push_back(ClientEvent::StartTls);
            }
            Expect::StartTls if self.config.tls == TlsMode::Required => {
                self.fail(ClientError::StartTls(reply), true)
            }
            Expect::StartTls => self.authenticate(now),
            Expect::AuthPlain | Expect::AuthLogin(2) if reply.code() == 235 => {
                self.authenticated = true;
                self.ready();
            }
            Expect::AuthLogin(step @ (0 | 1)) if reply.code() == 334 => {
                let Some(credentials) = &self.config.credentials else {
                    return self.fail(ClientError::AuthUnavailable, true);
                };
                let answer = if step == 0 {
                    BASE64.encode(&credentials.username)
                } else {
                    BASE64.encode(credentials.password.expose())
                };
                self.send_raw(now, &answer, Expect::AuthLogin(step + 1));
            }
            Expect::AuthPlain | Expect::AuthLogin(_) => self.fail(ClientError::Auth(reply), true),
            Expect::Rset => {
                if self.txn.as_ref().is_some_and(|t| !t.pipelined) {
                    self.send_next_commands(now);
                }
            }
            Expect::Mail => self.on_mail_reply(now, reply),
            Expect::Rcpt(i) => self.on_rcpt_reply(now, i, reply),
            Expect::Data => self.on_data_reply(now, reply),
            Expect::Chunk => {
                if let Some(txn) = self.txn.as_mut()
                    && !reply.is_positive()
                    && txn.chunk_failure.is_none()
                {
                    txn.chunk_failure = Some(reply);
                }
            }
            Expect::DataEnd => {
                let failure = self.txn.as_mut().and_then(|t| t.chunk_failure.take());
                self.finish_transaction(Some(failure.unwrap_or(reply)));
            }
            Expect::Quit => self.close(),
        }
    }

    fn after_hello(&mut self, now: Instant) {
        let offered = self.caps.starttls;
        if !self.tls && self.config.tls != TlsMode::Never && offered {
            return self.send(now, &Command::StartTls, Expect::StartTls);
        }
        if !self.tls && self.config.tls == TlsMode::Required {
            return self.fail(ClientError::TlsNotOffered, true);
        }
        self.authenticate(now);
    }

    fn authenticate(&mut self, now: Instant) {
        let Some(credentials) = &self.config.credentials else {
            return self.ready();
        };
        if self.authenticated {
            return self.ready();
        }
        if !self.tls && self.config.auth_requires_tls {
            return self.fail(ClientError::AuthUnavailable, true);
        }
        if self.caps.auth.contains(&Mechanism::Plain) {
            let message = format!(
                "\0{}\0{}",
                credentials.username,
                credentials.password.expose()
            );
            let command = Command::Auth {
                mechanism: Mechanism::Plain,
                initial: Some(BASE64.encode(message)),
            };
            self.send(now, &command, Expect::AuthPlain);
        } else if self.caps.auth.contains(&Mechanism::Login) {
            let command = Command::Auth {
                mechanism: Mechanism::Login,
                initial: None,
            };
            self.send(now, &command, Expect::AuthLogin(0));
        } else {
            self.fail(ClientError::AuthUnavailable, true);
        }
    }

    fn ready(&mut self) {
        self.phase = Phase::Ready;
        self.events.push_back(ClientEvent::Ready);
    }

    fn on_mail_reply(&mut self, now: Instant, reply: Reply) {
        let Some(txn) = self.txn.as_mut() else {
            return;
        };
        let accepted = reply.is_positive();
        txn.mail = Some(reply);
        if txn.pipelined {
            // The RCPT and DATA replies are on their way.
            return;
        }
        if accepted {
            self.send_next_commands(now);
        } else {
            self.finish_transaction(None);
        }
    }

    fn on_rcpt_reply(&mut self, now: Instant, index: usize, reply: Reply) {
        let Some(txn) = self.txn.as_mut() else {
            return;
        };
        txn.recipients[index] = Some(reply);
        if !txn.recipients.iter().all(Option::is_some) {
            if !txn.pipelined {
                self.send_next_commands(now);
            }
            return;
        }
        let go_on = txn.mail.as_ref().is_some_and(Reply::is_positive)
            && txn.recipients.iter().flatten().any(Reply::is_positive);
        if txn.chunking {
            if go_on {
                self.phase = Phase::Body;
                self.progress_at = now;
                self.events.push_back(ClientEvent::SendBody);
            } else {
                self.finish_transaction(None);
            }
        } else if !txn.pipelined {
            if go_on {
                self.send_next_commands(now);
            } else {
                self.finish_transaction(None);
            }
        }
        // Pipelined DATA: its reply is on the way.
    }

    fn on_data_reply(&mut self, now: Instant, reply: Reply) {
        let Some(txn) = self.txn.as_mut() else {
            return;
        };
        let go_on = txn.mail.as_ref().is_some_and(Reply::is_positive)
            && txn.recipients.iter().flatten().any(Reply::is_positive);
        if reply.code() != 354 {
            return self.finish_transaction(Some(reply));
        }
        if !go_on {
            // RFC 2920 section 3.1: a 354 after every RCPT failed still
            // needs the end of data: an empty message, whose reply is ignored.
            self.out.extend_from_slice(b".\r\n");
            self.expect.push_back(Expect::DataEnd);
            self.progress_at = now;
            return;
        }
        self.phase = Phase::Body;
        self.progress_at = now;
        self.events.push_back(ClientEvent::SendBody);
    }

    /// Reports the transaction; `data` is the reply after the message (or
    /// to DATA when it was refused).
    fn finish_transaction(&mut self, data: Option<Reply>) {
        let Some(txn) = self.txn.take() else {
            return;
        };
        let mail = txn
            .mail
            .expect("MAIL is answered before a transaction ends");
        let recipients: Vec<Reply> = txn
            .recipients
            .into_iter()
            .map(|r| r.unwrap_or_else(|| mail.clone()))
            .collect();
        let offered = mail.is_positive() && recipients.iter().any(Reply::is_positive);
        let data = data.filter(|_| offered);
        // Unless the message was stored, the server may still hold an open
        // transaction: RSET before the next MAIL.
        self.needs_rset = data.as_ref().is_none_or(|d| d.code() / 100 != 2);
        self.phase = Phase::Ready;
        self.events.push_back(ClientEvent::Done(Outcome {
            mail,
            recipients,
            data,
        }));
    }
}

fn made_up(code: u16, (class, subject, detail): (u8, u16, u16), text: &'static str) -> Reply {
    Reply::new(
        code,
        Some(EnhancedStatus::new(class, subject, detail)),
        text,
    )
    .expect("a valid reply")
}
