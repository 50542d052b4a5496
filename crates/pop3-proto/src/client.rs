//! The client session: one POP3 connection as seen by the side that fetches
//! mail (for external accounts, SPEC A-7).

use std::collections::VecDeque;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::{Bytes, BytesMut};

use crate::command::Command;
use crate::dot::DotReader;
use crate::limits::ClientLimits;
use crate::response::{Response, ResponseError, starts_with_ignore_case};
use crate::types::{Credentials, Secret};

/// When the client uses STLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// Never, even when offered.
    Never,
    /// When the server offers it; plaintext otherwise.
    #[default]
    Opportunistic,
    /// Always: a server that does not offer it (or refuses it) fails the
    /// session.
    Required,
}

/// How a client session behaves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The account to log in to.
    pub credentials: Credentials,
    /// STLS policy.
    pub tls: TlsMode,
    /// The connection is TLS from the start (POP3S, port 995).
    pub tls_active: bool,
    /// Never send credentials over a connection without TLS. Default true.
    pub login_requires_tls: bool,
    /// Line bounds and the response timeout.
    pub limits: ClientLimits,
}

impl ClientConfig {
    /// Defaults for the given account.
    pub fn new(credentials: Credentials) -> Self {
        ClientConfig {
            credentials,
            tls: TlsMode::Opportunistic,
            tls_active: false,
            login_requires_tls: true,
            limits: ClientLimits::default(),
        }
    }
}

/// What the server listed in its CAPA response (RFC 2449 section 6).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// The server answered CAPA (false for plain RFC 1939 servers, whose
    /// abilities are then unknown).
    pub capa: bool,
    /// TOP.
    pub top: bool,
    /// UIDL.
    pub uidl: bool,
    /// USER (USER/PASS logins).
    pub user: bool,
    /// The SASL mechanisms, in upper case.
    pub sasl: Vec<String>,
    /// RESP-CODES.
    pub resp_codes: bool,
    /// AUTH-RESP-CODE.
    pub auth_resp_code: bool,
    /// PIPELINING: the session sends commands without waiting.
    pub pipelining: bool,
    /// STLS.
    pub stls: bool,
    /// LOGIN-DELAY, in seconds.
    pub login_delay: Option<u64>,
    /// EXPIRE, as given (`NEVER` or a number of days, maybe with `USER`).
    pub expire: Option<String>,
    /// IMPLEMENTATION.
    pub implementation: Option<String>,
}

impl Capabilities {
    /// Adds one line of a CAPA response. Unknown capabilities are ignored.
    pub fn add_line(&mut self, line: &str) {
        let (keyword, rest) = line.split_once(' ').unwrap_or((line, ""));
        match keyword.to_ascii_uppercase().as_str() {
            "TOP" => self.top = true,
            "UIDL" => self.uidl = true,
            "USER" => self.user = true,
            "SASL" => {
                for name in rest.split(' ').filter(|w| !w.is_empty()) {
                    let name = name.to_ascii_uppercase();
                    if !self.sasl.contains(&name) {
                        self.sasl.push(name);
                    }
                }
            }
            "RESP-CODES" => self.resp_codes = true,
            "AUTH-RESP-CODE" => self.auth_resp_code = true,
            "PIPELINING" => self.pipelining = true,
            "STLS" => self.stls = true,
            "LOGIN-DELAY" => {
                self.login_delay = rest.split(' ').next().and_then(|n| n.parse().ok());
            }
            "EXPIRE" => self.expire = Some(rest.to_owned()),
            "IMPLEMENTATION" => self.implementation = Some(rest.to_owned()),
            _ => {}
        }
    }
}

/// Why a client session failed. [`ClientEvent::Closed`] follows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The greeting was `-ERR`.
    #[error("the server refused the connection: {0}")]
    Greeting(Response),
    /// TLS is required but the server does not offer STLS.
    #[error("TLS is required but the server does not offer STLS")]
    TlsNotOffered,
    /// STLS was refused while TLS is required.
    #[error("the server refused STLS: {0}")]
    StartTls(Response),
    /// No way to log in: neither AUTH PLAIN nor USER is offered, the
    /// connection has no TLS and credentials must not go in clear, or the
    /// credentials hold a CR, LF or NUL.
    #[error("cannot log in: no usable method on this connection")]
    LoginUnavailable,
    /// The login was refused (look at the response code: `IN-USE`,
    /// `LOGIN-DELAY`, `AUTH`, `SYS/TEMP`...).
    #[error("login refused: {0}")]
    Login(Response),
    /// The server sent something that is not POP3.
    #[error("protocol violation: {0}")]
    Protocol(#[from] ResponseError),
    /// A response did not come in time.
    #[error("timeout waiting for the server")]
    Timeout,
}

/// What the client session tells the host.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The server accepted STLS: write out the transmit buffer, run the TLS
    /// handshake, then call [`ClientSession::tls_established`].
    StartTls,
    /// Logged in: the TRANSACTION state. Commands may be given now;
    /// [`ClientSession::capabilities`] is known.
    Ready,
    /// The answer to STAT, before its [`ClientEvent::Done`].
    Stat {
        /// Messages in the maildrop.
        messages: u32,
        /// Their size in octets.
        octets: u64,
    },
    /// One line of LIST (or the answer to LIST with a number).
    Scan {
        /// The message number.
        message: u32,
        /// Its size in octets.
        size: u64,
    },
    /// One line of UIDL (or the answer to UIDL with a number). The id is
    /// kept as the server sent it, even beyond RFC 1939's 70 characters.
    UniqueId {
        /// The message number.
        message: u32,
        /// Its unique-id.
        uid: String,
    },
    /// The next bytes of the message of RETR or TOP, dot-unstuffed, line
    /// ends as sent.
    MessageChunk(Bytes),
    /// A command is answered, in the order the commands were given. After
    /// a multi-line response this comes once the whole response was read.
    Done {
        /// The command.
        command: Command,
        /// The status line (`+OK` or `-ERR`).
        response: Response,
    },
    /// The session cannot go on.
    Failed(ClientError),
    /// The session is over: write out the transmit buffer and close.
    Closed,
}

/// A call that does not fit the client session's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientMisuse {
    /// A command before [`ClientEvent::Ready`], after QUIT, or after the
    /// session failed.
    #[error("the session is not in the TRANSACTION state")]
    NotReady,
    /// `tls_established` without a STLS in progress.
    #[error("no STLS handshake is in progress")]
    NoTlsPending,
}

/// What a response that is due answers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    Greeting,
    Capa,
    Stls,
    User,
    Pass,
    /// AUTH PLAIN without an initial response: waiting for `+ `.
    AuthContinue,
    Auth,
    Command(Command),
}

/// What the lines being read belong to.
#[derive(Debug)]
enum Reading {
    /// The next line is a status line.
    Status,
    Capa(Capabilities),
    Scans(Response),
    UniqueIds(Response),
    Message(DotReader, Response),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Greeting, CAPA, STLS and login.
    Opening,
    TlsHandshake,
    /// TRANSACTION: the host gives commands.
    Ready,
    /// QUIT was given.
    Quitting,
    Closed,
}

/// One POP3 connection, client side, without I/O.
///
/// Feed the server's bytes to [`handle_input`](Self::handle_input) and the
/// clock to [`handle_timeout`](Self::handle_timeout); after each call, and
/// after each command, drain [`poll_event`](Self::poll_event) (which reads
/// the input, one event at a time, so act on each before polling the
/// next), then [`poll_transmit`](Self::poll_transmit), then read
/// [`poll_timeout`](Self::poll_timeout). The session reads the greeting,
/// asks CAPA, runs STLS as configured (and CAPA again), logs in with AUTH
/// PLAIN or USER/PASS, then emits [`ClientEvent::Ready`]. Commands
/// ([`stat`](Self::stat), [`list`](Self::list), [`retr`](Self::retr)...)
/// are pipelined when the server offers PIPELINING and sent one at a time
/// otherwise; each gets one [`ClientEvent::Done`], in order.
///
/// A session that fails after login does not say QUIT: a connection closed
/// without QUIT deletes nothing on the server (RFC 1939 section 6).
///
/// ```
/// use std::time::Instant;
/// use ironpost_pop3_proto::*;
///
/// let now = Instant::now();
/// let mut config = ClientConfig::new(Credentials::new("alice", "secret"));
/// config.tls = TlsMode::Never;
/// config.login_requires_tls = false;
/// let mut client = ClientSession::new(config, now);
/// // The server's side of the conversation, as one read.
/// client.handle_input(
///     now,
///     b"+OK POP3 ready\r\n+OK\r\nUSER\r\nPIPELINING\r\n.\r\n+OK\r\n+OK logged in\r\n\
///       +OK 1 5\r\n+OK 5 octets\r\n..hi\r\n.\r\n+OK deleted\r\n+OK bye\r\n",
/// );
/// let mut message = Vec::new();
/// let mut responses = Vec::new();
/// while let Some(event) = client.poll_event() {
///     match event {
///         ClientEvent::Ready => {
///             client.stat(now).unwrap();
///             client.retr(now, 1).unwrap();
///             client.dele(now, 1).unwrap();
///             client.quit(now).unwrap();
///         }
///         ClientEvent::MessageChunk(bytes) => message.extend_from_slice(&bytes),
///         ClientEvent::Done { response, .. } => responses.push(response.is_ok()),
///         _ => {}
///     }
/// }
/// let mut wire = Vec::new();
/// client.poll_transmit(&mut wire);
/// assert_eq!(message, b".hi\r\n");
/// assert_eq!(responses, [true, true, true, true]);
/// assert_eq!(wire, b"CAPA\r\nUSER alice\r\nPASS secret\r\nSTAT\r\nRETR 1\r\nDELE 1\r\nQUIT\r\n");
/// assert!(client.is_closed());
/// ```
#[derive(Debug)]
pub struct ClientSession {
    config: ClientConfig,
    input: BytesMut,
    /// How far `input` was already searched for a line end.
    scanned: usize,
    out: Vec<u8>,
    events: VecDeque<ClientEvent>,
    /// Responses due, in order.
    expect: VecDeque<Expect>,
    /// Commands given but not sent yet (no PIPELINING).
    queued: VecDeque<Command>,
    reading: Reading,
    phase: Phase,
    caps: Capabilities,
    tls: bool,
    /// The PLAIN response to send after `+ `.
    auth_response: Option<Secret>,
    progress_at: Instant,
}

impl ClientSession {
    /// A session on a connection opened at `now`; the server speaks first.
    pub fn new(config: ClientConfig, now: Instant) -> Self {
        let tls = config.tls_active;
        ClientSession {
            config,
            input: BytesMut::new(),
            scanned: 0,
            out: Vec::new(),
            events: VecDeque::new(),
            expect: VecDeque::from([Expect::Greeting]),
            queued: VecDeque::new(),
            reading: Reading::Status,
            phase: Phase::Opening,
            caps: Capabilities::default(),
            tls,
            auth_response: None,
            progress_at: now,
        }
    }

    /// What the server offered (after [`ClientEvent::Ready`]: the list it
    /// gave last, under TLS if STLS was used).
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// Whether the connection is protected by TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Whether the session is over.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Whether the host should read more from the connection now. False
    /// during the TLS handshake, once closed, and while no response is due
    /// but bytes are already buffered (they wait for the next command).
    #[must_use]
    pub fn wants_input(&self) -> bool {
        match self.phase {
            Phase::Closed | Phase::TlsHandshake => false,
            _ => !self.expect.is_empty() || self.input.is_empty(),
        }
    }

    /// Bytes received from the server at `now`.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        if matches!(self.phase, Phase::Closed | Phase::TlsHandshake) {
            return;
        }
        self.progress_at = now;
        self.input.extend_from_slice(bytes);
    }

    /// The clock: call it at (or after) the instant of
    /// [`poll_timeout`](Self::poll_timeout).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_some_and(|deadline| now >= deadline) {
            self.fail(ClientError::Timeout);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next:
    /// while a response is due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.expect.is_empty() || matches!(self.phase, Phase::Closed | Phase::TlsHandshake) {
            return None;
        }
        Some(self.progress_at + self.config.limits.response_timeout)
    }

    /// The next event, if any. The input is read here, and only as far as
    /// the next event: the host acts on each event (gives commands after
    /// [`ClientEvent::Ready`], say) before anything after it is read, so
    /// what the session does never depends on how much had arrived.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        if self.events.is_empty() {
            self.process(self.progress_at);
        }
        self.events.pop_front()
    }

    /// Appends the bytes to send to the server to `out`; returns how many.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> usize {
        let n = self.out.len();
        out.append(&mut self.out);
        n
    }

    /// The TLS handshake after [`ClientEvent::StartTls`] succeeded: the
    /// session forgets the capabilities and asks CAPA again (RFC 2595
    /// section 4).
    pub fn tls_established(&mut self, now: Instant) -> Result<(), ClientMisuse> {
        if self.phase != Phase::TlsHandshake {
            return Err(ClientMisuse::NoTlsPending);
        }
        self.tls = true;
        self.phase = Phase::Opening;
        self.caps = Capabilities::default();
        self.send(now, &Command::Capa, Expect::Capa);
        Ok(())
    }

    /// STAT: [`ClientEvent::Stat`], then [`ClientEvent::Done`].
    pub fn stat(&mut self, now: Instant) -> Result<(), ClientMisuse> {
        self.give(now, Command::Stat)
    }

    /// LIST, of one message or of all: [`ClientEvent::Scan`]s, then
    /// [`ClientEvent::Done`].
    pub fn list(&mut self, now: Instant, message: Option<u32>) -> Result<(), ClientMisuse> {
        self.give(now, Command::List(message))
    }

    /// UIDL, of one message or of all: [`ClientEvent::UniqueId`]s, then
    /// [`ClientEvent::Done`].
    pub fn uidl(&mut self, now: Instant, message: Option<u32>) -> Result<(), ClientMisuse> {
        self.give(now, Command::Uidl(message))
    }

    /// RETR: [`ClientEvent::MessageChunk`]s, then [`ClientEvent::Done`].
    pub fn retr(&mut self, now: Instant, message: u32) -> Result<(), ClientMisuse> {
        self.give(now, Command::Retr(message))
    }

    /// TOP: the header and `lines` lines of the body as
    /// [`ClientEvent::MessageChunk`]s, then [`ClientEvent::Done`].
    pub fn top(&mut self, now: Instant, message: u32, lines: u32) -> Result<(), ClientMisuse> {
        self.give(now, Command::Top { message, lines })
    }

    /// DELE: marks the message; the server removes it at QUIT.
    pub fn dele(&mut self, now: Instant, message: u32) -> Result<(), ClientMisuse> {
        self.give(now, Command::Dele(message))
    }

    /// RSET: unmarks every message.
    pub fn rset(&mut self, now: Instant) -> Result<(), ClientMisuse> {
        self.give(now, Command::Rset)
    }

    /// NOOP.
    pub fn noop(&mut self, now: Instant) -> Result<(), ClientMisuse> {
        self.give(now, Command::Noop)
    }

    /// QUIT: the server removes the deleted messages. Its
    /// [`ClientEvent::Done`] says whether it did (`+OK`), then
    /// [`ClientEvent::Closed`] follows.
    pub fn quit(&mut self, now: Instant) -> Result<(), ClientMisuse> {
        self.give(now, Command::Quit)
    }

    /// Sends a TRANSACTION command now, or queues it behind the one in
    /// flight when the server does not pipeline.
    fn give(&mut self, now: Instant, command: Command) -> Result<(), ClientMisuse> {
        if self.phase != Phase::Ready {
            return Err(ClientMisuse::NotReady);
        }
        if command == Command::Quit {
            self.phase = Phase::Quitting;
        }
        if self.caps.pipelining || (self.expect.is_empty() && self.queued.is_empty()) {
            self.send(now, &command, Expect::Command(command.clone()));
        } else {
            self.queued.push_back(command);
        }
        Ok(())
    }

    /// Writes a command. Responses already buffered are read at the next
    /// `poll_event`, not here, so that the commands a host gives in a row
    /// all go out whatever had arrived.
    fn send(&mut self, now: Instant, command: &Command, expect: Expect) {
        command.encode(&mut self.out);
        self.expect.push_back(expect);
        self.progress_at = now;
    }

    /// Ends the session. Only in the AUTHORIZATION state does it say QUIT
    /// first: later, QUIT would commit deletions.
    fn fail(&mut self, error: ClientError) {
        if self.phase == Phase::Closed {
            return;
        }
        self.events.push_back(ClientEvent::Failed(error));
        let greeted = !matches!(self.expect.front(), Some(Expect::Greeting));
        if self.phase == Phase::Opening && greeted {
            Command::Quit.encode(&mut self.out);
        }
        self.close();
    }

    fn close(&mut self) {
        self.phase = Phase::Closed;
        self.expect.clear();
        self.queued.clear();
        self.reading = Reading::Status;
        self.input.clear();
        self.scanned = 0;
        self.events.push_back(ClientEvent::Closed);
    }

    // ---- input ----

    /// Reads the input until an event is queued or more input is needed.
    fn process(&mut self, now: Instant) {
        while self.events.is_empty() && !matches!(self.phase, Phase::Closed | Phase::TlsHandshake) {
            if self.expect.is_empty() {
                // Nothing is due: what comes waits for a command (and the
                // host stops reading, see `wants_input`). Only the first
                // line is judged, so that the verdict does not depend on
                // how much has arrived.
                let limit = self.config.limits.response_line;
                if self.input.len() > limit && memchr::memchr(b'\n', &self.input[..limit]).is_none()
                {
                    self.fail(ClientError::Protocol(ResponseError::LineTooLong));
                }
                return;
            }
            if let Reading::Message(reader, _) = &mut self.reading {
                let mut chunk = Vec::new();
                let ended = reader.read(&mut self.input, &mut chunk);
                self.scanned = 0;
                if !chunk.is_empty() {
                    self.events
                        .push_back(ClientEvent::MessageChunk(Bytes::from(chunk)));
                }
                if !ended {
                    return;
                }
                let Reading::Message(_, response) =
                    std::mem::replace(&mut self.reading, Reading::Status)
                else {
                    return;
                };
                self.complete(now, response);
                continue;
            }
            match self.take_line() {
                Ok(Some(line)) => self.on_line(now, &line),
                Ok(None) => return,
                Err(error) => return self.fail(ClientError::Protocol(error)),
            }
        }
    }

    /// The next line without its line end, if it is complete.
    fn take_line(&mut self) -> Result<Option<BytesMut>, ResponseError> {
        let limit = self.config.limits.response_line;
        match memchr::memchr(b'\n', &self.input[self.scanned..]) {
            Some(i) => {
                let end = self.scanned + i;
                self.scanned = 0;
                if end + 1 > limit {
                    return Err(ResponseError::LineTooLong);
                }
                let mut line = self.input.split_to(end + 1);
                line.truncate(end);
                if line.last() == Some(&b'\r') {
                    line.truncate(end - 1);
                }
                Ok(Some(line))
            }
            None if self.input.len() > limit => Err(ResponseError::LineTooLong),
            None => {
                self.scanned = self.input.len();
                Ok(None)
            }
        }
    }

    fn on_line(&mut self, now: Instant, line: &[u8]) {
        match &mut self.reading {
            Reading::Status => self.on_status(now, line),
            Reading::Capa(caps) => {
                if line == b"." {
                    let Reading::Capa(caps) = std::mem::replace(&mut self.reading, Reading::Status)
                    else {
                        return;
                    };
                    self.caps = caps;
                    self.expect.pop_front();
                    self.after_capa(now);
                } else {
                    caps.add_line(&String::from_utf8_lossy(unstuff(line)));
                }
            }
            Reading::Scans(_) | Reading::UniqueIds(_) if line == b"." => {
                let (Reading::Scans(response) | Reading::UniqueIds(response)) =
                    std::mem::replace(&mut self.reading, Reading::Status)
                else {
                    return;
                };
                self.complete(now, response);
            }
            Reading::Scans(_) => match scan(unstuff(line)) {
                Some(event) => self.events.push_back(event),
                None => self.fail(ClientError::Protocol(ResponseError::BadListing)),
            },
            Reading::UniqueIds(_) => match unique_id(unstuff(line)) {
                Some(event) => self.events.push_back(event),
                None => self.fail(ClientError::Protocol(ResponseError::BadListing)),
            },
            Reading::Message(..) => {}
        }
    }

    fn on_status(&mut self, now: Instant, line: &[u8]) {
        let Some(expect) = self.expect.front().cloned() else {
            return;
        };
        if expect == Expect::AuthContinue && line.first() == Some(&b'+') {
            if !starts_with_ignore_case(line, b"+OK") {
                self.expect.pop_front();
                let response = self
                    .auth_response
                    .take()
                    .unwrap_or_else(|| Secret::new("="));
                self.out.extend_from_slice(response.expose().as_bytes());
                self.out.extend_from_slice(b"\r\n");
                self.expect.push_back(Expect::Auth);
                self.progress_at = now;
                return;
            }
            return self.fail(ClientError::Protocol(ResponseError::UnexpectedContinuation));
        }
        let response = match Response::parse(line) {
            Ok(response) => response,
            Err(error) => return self.fail(ClientError::Protocol(error)),
        };
        let ok = response.is_ok();
        match expect {
            Expect::Greeting if ok => {
                self.expect.pop_front();
                self.send(now, &Command::Capa, Expect::Capa);
            }
            Expect::Greeting => self.fail(ClientError::Greeting(response)),
            Expect::Capa if ok => {
                self.reading = Reading::Capa(Capabilities {
                    capa: true,
                    ..Capabilities::default()
                });
            }
            Expect::Capa => {
                // An RFC 1939 server: its abilities are unknown.
                self.expect.pop_front();
                self.caps = Capabilities::default();
                self.after_capa(now);
            }
            Expect::Stls if ok => {
                self.expect.pop_front();
                self.phase = Phase::TlsHandshake;
                // Whatever came after the +OK is not ours to read.
                self.input.clear();
                self.scanned = 0;
                self.events.push_back(ClientEvent::StartTls);
            }
            Expect::Stls if self.config.tls == TlsMode::Required => {
                self.fail(ClientError::StartTls(response))
            }
            Expect::Stls => {
                self.expect.pop_front();
                self.login(now);
            }
            Expect::User if ok => {
                self.expect.pop_front();
                let password = self.config.credentials.password.clone();
                self.send(now, &Command::Pass(password), Expect::Pass);
            }
            Expect::User | Expect::Pass | Expect::Auth | Expect::AuthContinue if !ok => {
                self.fail(ClientError::Login(response))
            }
            Expect::Pass | Expect::Auth => {
                self.expect.pop_front();
                self.phase = Phase::Ready;
                self.events.push_back(ClientEvent::Ready);
            }
            Expect::User | Expect::AuthContinue => {
                self.fail(ClientError::Protocol(ResponseError::UnexpectedContinuation))
            }
            Expect::Command(command) => self.on_command_status(now, &command, response),
        }
    }

    fn on_command_status(&mut self, now: Instant, command: &Command, response: Response) {
        if !response.is_ok() {
            return self.complete(now, response);
        }
        match command {
            Command::Stat => match pair(response.text()) {
                Some((messages, octets)) => match octets.parse() {
                    Ok(octets) => {
                        self.events
                            .push_back(ClientEvent::Stat { messages, octets });
                        self.complete(now, response);
                    }
                    Err(_) => self.fail(ClientError::Protocol(ResponseError::BadListing)),
                },
                None => self.fail(ClientError::Protocol(ResponseError::BadListing)),
            },
            Command::List(Some(_)) | Command::Uidl(Some(_)) => {
                let text = response.text().as_bytes();
                let event = if matches!(command, Command::List(_)) {
                    scan(text)
                } else {
                    unique_id(text)
                };
                match event {
                    Some(event) => {
                        self.events.push_back(event);
                        self.complete(now, response);
                    }
                    None => self.fail(ClientError::Protocol(ResponseError::BadListing)),
                }
            }
            Command::List(None) => self.reading = Reading::Scans(response),
            Command::Uidl(None) => self.reading = Reading::UniqueIds(response),
            Command::Retr(_) | Command::Top { .. } => {
                self.reading = Reading::Message(DotReader::new(), response);
            }
            _ => self.complete(now, response),
        }
    }

    /// The response to the command in front is complete.
    fn complete(&mut self, now: Instant, response: Response) {
        let Some(Expect::Command(command)) = self.expect.pop_front() else {
            return;
        };
        let quit = command == Command::Quit;
        self.events
            .push_back(ClientEvent::Done { command, response });
        if quit {
            return self.close();
        }
        if let Some(next) = self.queued.pop_front() {
            self.send(now, &next, Expect::Command(next.clone()));
        }
    }

    fn after_capa(&mut self, now: Instant) {
        if !self.tls && self.config.tls != TlsMode::Never && self.caps.stls {
            return self.send(now, &Command::Stls, Expect::Stls);
        }
        if !self.tls && self.config.tls == TlsMode::Required {
            return self.fail(ClientError::TlsNotOffered);
        }
        self.login(now);
    }

    fn login(&mut self, now: Instant) {
        let credentials = &self.config.credentials;
        let unsendable = |s: &str| s.contains(['\r', '\n', '\0']);
        if (!self.tls && self.config.login_requires_tls)
            || unsendable(&credentials.username)
            || unsendable(credentials.password.expose())
        {
            return self.fail(ClientError::LoginUnavailable);
        }
        if self.caps.sasl.iter().any(|m| m == "PLAIN") {
            let message = format!(
                "\0{}\0{}",
                credentials.username,
                credentials.password.expose()
            );
            let initial = BASE64.encode(message);
            // RFC 5034 section 4: no initial response that would make the
            // command longer than 255 octets.
            if "AUTH PLAIN ".len() + initial.len() + 2 <= 255 {
                let command = Command::Auth {
                    mechanism: "PLAIN".into(),
                    initial: Some(Secret::new(initial)),
                };
                self.send(now, &command, Expect::Auth);
            } else {
                self.auth_response = Some(Secret::new(initial));
                let command = Command::Auth {
                    mechanism: "PLAIN".into(),
                    initial: None,
                };
                self.send(now, &command, Expect::AuthContinue);
            }
        } else if self.caps.user || !self.caps.capa {
            let command = Command::User(credentials.username.clone());
            self.send(now, &command, Expect::User);
        } else {
            self.fail(ClientError::LoginUnavailable);
        }
    }
}

/// Takes the stuffed dot off a line of a multi-line response.
fn unstuff(line: &[u8]) -> &[u8] {
    line.strip_prefix(b".").unwrap_or(line)
}

/// `number SP word [SP anything]` (RFC 1939: nothing is required after the
/// second field, but servers may add more).
fn pair(text: &str) -> Option<(u32, &str)> {
    let mut words = text.split(' ');
    let number = words.next()?;
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value = words.next().filter(|w| !w.is_empty())?;
    Some((number.parse().ok()?, value))
}

/// A scan listing: `msg SP size`.
fn scan(line: &[u8]) -> Option<ClientEvent> {
    let (message, size) = pair(std::str::from_utf8(line).ok()?)?;
    let size = size
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| size.parse().ok())??;
    Some(ClientEvent::Scan { message, size })
}

/// A unique-id listing: `msg SP unique-id`, the id printable ASCII.
fn unique_id(line: &[u8]) -> Option<ClientEvent> {
    let (message, uid) = pair(std::str::from_utf8(line).ok()?)?;
    if !uid.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return None;
    }
    Some(ClientEvent::UniqueId {
        message,
        uid: uid.to_owned(),
    })
}
