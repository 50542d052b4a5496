//! The server session: one IMAP connection as the server sees it.

use std::collections::VecDeque;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::{Bytes, BytesMut};

use crate::command::{Command, CommandBody, ParseError, Validity};
use crate::framing::{Fragment, Fragmenter, FrameError};
use crate::limits::Limits;
use crate::parse;
use crate::response::{Code, Continue, Data, Response, Status, StatusKind, Text};
use crate::types::{AString, Atom, DateTime, Flag, Mailbox, Secret, Tag};

/// A SASL mechanism the session implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mechanism {
    /// PLAIN (RFC 4616).
    Plain,
    /// LOGIN (draft-murchison-sasl-login).
    Login,
}

impl Mechanism {
    /// The mechanism's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        }
    }
}

/// How a server session behaves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The text of the greeting (L-3).
    pub greeting: String,
    /// Offer STARTTLS: enable it when the host has a certificate.
    pub starttls: bool,
    /// The connection is TLS from the start (IMAPS, port 993).
    pub tls_active: bool,
    /// Refuse LOGIN and AUTHENTICATE before TLS and advertise
    /// LOGINDISABLED (RFC 3501 section 6.2.3). Default true.
    pub login_requires_tls: bool,
    /// AUTHENTICATE mechanisms offered.
    pub mechanisms: Vec<Mechanism>,
    /// The capabilities advertised after `IMAP4rev1` (the session adds
    /// STARTTLS, LOGINDISABLED and AUTH= itself). The default lists every
    /// extension this crate parses and the host is expected to serve; add
    /// ACL, CONDSTORE, ... when the host implements them.
    pub capabilities: Vec<Atom>,
    /// Capabilities ENABLE may turn on (RFC 5161). Default none.
    pub enableable: Vec<Atom>,
    /// The server's answer to ID (RFC 2971).
    pub id: crate::types::IdParams,
    /// Buffer sizes, counts and timeouts.
    pub limits: Limits,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let atoms = |names: &[&str]| {
            names
                .iter()
                .filter_map(|n| Atom::new(*n).ok())
                .collect::<Vec<_>>()
        };
        let pair = |k: &str, v: &str| {
            (
                AString::try_from(k).unwrap_or_default(),
                AString::try_from(v).ok(),
            )
        };
        ServerConfig {
            greeting: "Ironpost IMAP ready".into(),
            starttls: false,
            tls_active: false,
            login_requires_tls: true,
            mechanisms: vec![Mechanism::Plain, Mechanism::Login],
            capabilities: atoms(&[
                "LITERAL+",
                "SASL-IR",
                "ID",
                "ENABLE",
                "IDLE",
                "NAMESPACE",
                "UIDPLUS",
                "MOVE",
                "QUOTA",
                "SORT",
                "CHILDREN",
                "SPECIAL-USE",
                "UNSELECT",
            ]),
            enableable: Vec::new(),
            id: Some(vec![pair("name", "Ironpost")]),
            limits: Limits::default(),
        }
    }
}

/// The protocol state (RFC 3501 section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// Before login.
    NotAuthenticated,
    /// Logged in, no mailbox selected.
    Authenticated,
    /// A mailbox is selected.
    Selected {
        /// EXAMINE, or SELECT answered with `[READ-ONLY]`.
        read_only: bool,
    },
    /// The session is over.
    Logout,
}

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
    /// `* OK` greeting) or [`ServerSession::refuse_connection`] (`* BYE`).
    ConnectRequest {}
}

request! {
    /// Credentials from LOGIN or AUTHENTICATE: check them, then answer
    /// [`ServerSession::accept_login`] or [`ServerSession::reject_login`].
    LoginRequest {
        /// The command's tag.
        pub tag: Tag,
        /// `None` for LOGIN, else the SASL mechanism.
        pub mechanism: Option<Mechanism>,
        /// The authorization identity, when it differs from the user name.
        pub authzid: Option<String>,
        /// The user name.
        pub username: AString,
        /// The password.
        pub password: Secret,
    }
}

request! {
    /// A mailbox or message command for the host: send its untagged data
    /// with [`ServerSession::respond`], then end it with
    /// [`ServerSession::complete`]. The session has checked that the command
    /// is valid in the current state.
    Request {
        /// The command's tag.
        pub tag: Tag,
        /// The command.
        pub command: CommandBody,
    }
}

request! {
    /// APPEND, before the message comes: answer
    /// [`ServerSession::accept_append`] (the message then streams out as
    /// [`Event::AppendChunk`]s) or [`ServerSession::reject_append`] (for
    /// example `NO [TRYCREATE]` or `NO [OVERQUOTA]`). The session has
    /// already refused messages over [`Limits::message_size`].
    AppendRequest {
        /// The command's tag.
        pub tag: Tag,
        /// The target mailbox.
        pub mailbox: Mailbox,
        /// Flags to set.
        pub flags: Vec<Flag>,
        /// Internal date to set.
        pub date: Option<DateTime>,
        /// Size of the message in octets.
        pub size: u64,
    }
}

request! {
    /// The whole message of an accepted APPEND has come: store it, then
    /// answer [`ServerSession::complete_append`] (usually `OK [APPENDUID
    /// ...]`).
    AppendEndRequest {
        /// The command's tag.
        pub tag: Tag,
    }
}

request! {
    /// The client ended IDLE: push the last updates, then answer
    /// [`ServerSession::complete_idle`] (the session sends `OK`, or `BAD`
    /// when the line was not DONE).
    IdleDoneRequest {
        /// The IDLE command's tag.
        pub tag: Tag,
        /// The client sent DONE (false: another line, which is a protocol
        /// error that ends IDLE too).
        pub done: bool,
    }
}

request! {
    /// IDLE (RFC 2177): answer [`ServerSession::accept_idle`] once the
    /// host watches the mailbox for changes (then push them with
    /// [`ServerSession::push`]), or [`ServerSession::reject_idle`].
    IdleRequest {
        /// The command's tag.
        pub tag: Tag,
    }
}

/// What the session tells the host: a decision to answer, message bytes, or
/// a state change.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A decision: greet or refuse the client.
    Connect(ConnectRequest),
    /// A decision: credentials to check.
    Login(LoginRequest),
    /// A decision: a command for the host to carry out.
    Request(Request),
    /// A decision: an APPEND before its message.
    Append(AppendRequest),
    /// The next octets of the message of an accepted APPEND.
    AppendChunk(Bytes),
    /// A decision: the message of an accepted APPEND is complete.
    AppendEnd(AppendEndRequest),
    /// The APPEND whose message was streaming will not complete (what
    /// followed the message was not a line end); drop what was received.
    /// The session has answered `BAD`.
    AppendAborted,
    /// A decision: IDLE.
    Idle(IdleRequest),
    /// A decision: the client ended IDLE.
    IdleDone(IdleDoneRequest),
    /// The client sent ID: its fields, or `None` for `ID NIL`.
    ClientId(crate::types::IdParams),
    /// ENABLE turned these capabilities on.
    Enabled(Vec<Atom>),
    /// The answer to STARTTLS is in the transmit buffer: write it out, run
    /// the TLS handshake, then call [`ServerSession::tls_established`].
    /// Input received meanwhile is discarded (command injection, RFC 3501
    /// section 11.1).
    StartTls,
    /// The session is over: write out what
    /// [`ServerSession::poll_transmit`] gives, then close the connection.
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
    /// A tagged status must be OK, NO or BAD.
    #[error("a command completes with OK, NO or BAD")]
    InvalidStatus,
    /// Untagged data before login or after the end.
    #[error("the session is not in a state to send data")]
    NotAuthenticated,
}

#[derive(Debug)]
enum Pending {
    Connect,
    Login,
    Request(CommandBody),
    Append { sync: bool, head: usize },
    AppendEnd,
    Idle,
    IdleDone,
}

#[derive(Debug)]
enum AuthStep {
    Plain,
    LoginUser,
    LoginPassword(String),
}

#[derive(Debug)]
enum Phase {
    Connecting,
    Commands,
    Auth { tag: Tag, step: AuthStep },
    Idle { tag: Tag },
    Appending { tag: Tag, head: usize },
    AwaitingTls,
    Closed,
}

/// One IMAP connection, server side, without I/O.
///
/// Feed the client's bytes to [`handle_input`](Self::handle_input) and the
/// clock to [`handle_timeout`](Self::handle_timeout); after each call, drain
/// the outputs in this order:
///
/// 1. [`poll_event`](Self::poll_event) until `None`, answering each decision
///    (now or later — the session waits, and pipelined commands wait with
///    it; at most one decision is outstanding at a time);
/// 2. [`poll_transmit`](Self::poll_transmit), writing the bytes to the peer;
/// 3. [`poll_timeout`](Self::poll_timeout), the instant to call
///    `handle_timeout` at (`None`: no timer, e.g. while the host decides).
///
/// Answers may produce more events and bytes, so drain again after them.
/// Read from the socket only while [`wants_input`](Self::wants_input). On
/// [`Event::StartTls`] write out the transmit buffer, then run the
/// handshake; on [`Event::Closed`] write it out, then close.
///
/// ```
/// use std::time::Instant;
/// use ironpost_imap_proto::response::{Code, Data, FetchItem, Status};
/// use ironpost_imap_proto::session::{Event, ServerConfig, ServerSession};
/// use ironpost_imap_proto::types::Flag;
/// use ironpost_imap_proto::CommandBody;
///
/// let mut config = ServerConfig::default();
/// config.login_requires_tls = false; // a test without TLS
/// let mut session = ServerSession::new(config, Instant::now());
/// let client = b"a1 LOGIN fred {6+}\r\nsecret\r\na2 SELECT inbox\r\n\
///     a3 FETCH 1 FLAGS\r\na4 APPEND Sent {5}\r\nHello\r\na5 LOGOUT\r\n";
/// let (mut wire, mut message) = (Vec::new(), Vec::new());
/// let mut input: &[u8] = client;
/// loop {
///     while let Some(event) = session.poll_event() {
///         match event {
///             Event::Connect(req) => session.accept_connection(req).unwrap(),
///             Event::Login(req) => {
///                 assert_eq!(req.password.expose(), b"secret");
///                 session.accept_login(req).unwrap();
///             }
///             Event::Request(req) => {
///                 if let CommandBody::Fetch { .. } = req.command {
///                     let seq = 1.try_into().unwrap();
///                     let items = vec![FetchItem::Flags(vec![Flag::Seen])];
///                     session.respond(&req, Data::Fetch { seq, items }).unwrap();
///                 }
///                 session.complete(req, Status::ok("done")).unwrap();
///             }
///             Event::Append(req) => session.accept_append(req).unwrap(),
///             Event::AppendChunk(bytes) => message.extend_from_slice(&bytes),
///             Event::AppendEnd(req) => session.complete_append(req, Status::ok("stored")).unwrap(),
///             Event::Idle(req) => session.accept_idle(req).unwrap(),
///             Event::IdleDone(req) => session.complete_idle(req).unwrap(),
///             Event::Closed => break,
///             _ => {}
///         }
///     }
///     session.poll_transmit(&mut wire);
///     if session.is_closed() || input.is_empty() {
///         break;
///     }
///     // A socket read would go here; take 7 bytes at a time.
///     let n = input.len().min(7);
///     session.handle_input(Instant::now(), &input[..n]);
///     input = &input[n..];
/// }
/// assert_eq!(message, b"Hello");
/// let wire = String::from_utf8(wire).unwrap();
/// assert!(wire.contains("* 1 FETCH (FLAGS (\\Seen))\r\na3 OK done\r\n"));
/// assert!(wire.contains("+ Ready for literal data\r\na4 OK stored\r\n"));
/// assert!(wire.ends_with("* BYE Logging out\r\na5 OK LOGOUT completed\r\n"));
/// ```
#[derive(Debug)]
pub struct ServerSession {
    config: ServerConfig,
    input: BytesMut,
    fragmenter: Fragmenter,
    out: Vec<u8>,
    events: VecDeque<Event>,
    pending: Option<(DecisionId, Pending)>,
    next_id: u64,
    phase: Phase,
    state: State,
    tls: bool,
    user: Option<AString>,
    enabled: Vec<Atom>,
    bad_commands: usize,
    /// The answer to send when the fragmenter rejects the command whose
    /// literal the session refused.
    refusal: Option<Status>,
    last_activity: Instant,
}

impl ServerSession {
    /// A new session for a connection accepted at `now`. The first event is
    /// [`Event::Connect`].
    pub fn new(config: ServerConfig, now: Instant) -> Self {
        let fragmenter = Fragmenter::new(&config.limits);
        let tls = config.tls_active;
        let mut session = ServerSession {
            config,
            input: BytesMut::new(),
            fragmenter,
            out: Vec::new(),
            events: VecDeque::new(),
            pending: None,
            next_id: 0,
            phase: Phase::Connecting,
            state: State::NotAuthenticated,
            tls,
            user: None,
            enabled: Vec::new(),
            bad_commands: 0,
            refusal: None,
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

    /// The protocol state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The user the host accepted.
    pub fn user(&self) -> Option<&AString> {
        self.user.as_ref()
    }

    /// Whether the connection is protected by TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The capabilities turned on with ENABLE.
    pub fn enabled(&self) -> &[Atom] {
        &self.enabled
    }

    /// Whether the session is over ([`Event::Closed`] was emitted).
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// Whether the host should read more from the connection now: false
    /// while the output is over [`Limits::output`], while the session waits
    /// for the host with a line's worth of input buffered, during the TLS
    /// handshake, and once closed.
    #[must_use]
    pub fn wants_input(&self) -> bool {
        match self.phase {
            Phase::Closed | Phase::AwaitingTls | Phase::Connecting => false,
            _ => {
                self.out.len() < self.config.limits.output
                    && (self.pending.is_none() || self.input.len() < self.config.limits.line)
            }
        }
    }

    /// Bytes received from the client at `now`.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        match self.phase {
            // Plaintext after STARTTLS and before the handshake is an
            // injection attempt: dropped.
            Phase::Closed | Phase::AwaitingTls => return,
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
            self.bye("Autologout; idle for too long");
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next:
    /// [`Limits::login_timeout`] after the last input before login,
    /// [`Limits::autologout`] after it, IDLE included. `None` while the host
    /// owes an answer, during the TLS handshake and once closed.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.pending.is_some() {
            return None;
        }
        match self.phase {
            Phase::Connecting | Phase::AwaitingTls | Phase::Closed => None,
            _ => {
                let limits = &self.config.limits;
                let timeout = if self.user.is_some() {
                    limits.autologout
                } else {
                    limits.login_timeout
                };
                Some(self.last_activity + timeout)
            }
        }
    }

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Appends the bytes to send to the client to `out`; returns how many.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> usize {
        let n = self.out.len();
        if out.is_empty() {
            // The buffer goes to the host whole: the session keeps no
            // capacity from a large answer.
            std::mem::swap(out, &mut self.out);
        } else {
            out.append(&mut self.out);
        }
        n
    }

    // ---- answers ----

    /// Greets the client: `* OK [CAPABILITY ...] greeting`.
    pub fn accept_connection(&mut self, req: ConnectRequest) -> Result<(), Misuse> {
        self.take(req.id)?;
        self.phase = Phase::Commands;
        let code = Code::Capability(self.capabilities());
        let greeting = Status::new(StatusKind::Ok, Some(code), &self.config.greeting);
        self.send(&Response::Untagged(greeting));
        self.process();
        Ok(())
    }

    /// Refuses the client: `* BYE text`, and the session closes.
    pub fn refuse_connection(&mut self, req: ConnectRequest, text: &str) -> Result<(), Misuse> {
        self.take(req.id)?;
        self.bye(text);
        Ok(())
    }

    /// Accepts the credentials: `OK [CAPABILITY ...]`, authenticated state.
    pub fn accept_login(&mut self, req: LoginRequest) -> Result<(), Misuse> {
        self.take(req.id)?;
        self.user = Some(req.username);
        self.state = State::Authenticated;
        let code = Code::Capability(self.capabilities());
        let ok = Status::new(StatusKind::Ok, Some(code), "Logged in");
        self.send(&Response::Tagged(req.tag, ok));
        self.process();
        Ok(())
    }

    /// Refuses the credentials with `status` (a `NO`, usually with
    /// `[AUTHENTICATIONFAILED]`). A refused login counts as a bad command,
    /// so one connection cannot try passwords without end.
    pub fn reject_login(&mut self, req: LoginRequest, status: Status) -> Result<(), Misuse> {
        check_tagged(&status)?;
        self.take(req.id)?;
        self.send(&Response::Tagged(req.tag, status));
        self.count_bad();
        self.process();
        Ok(())
    }

    /// Sends untagged data for the outstanding request `req`.
    pub fn respond(&mut self, req: &Request, data: Data) -> Result<(), Misuse> {
        match &self.pending {
            Some((id, Pending::Request(_))) if *id == req.id => {
                self.send(&Response::Data(data));
                Ok(())
            }
            _ => Err(Misuse::UnknownRequest),
        }
    }

    /// Ends the request with its tagged `status` (OK, NO or BAD). SELECT and
    /// EXAMINE move to the selected state on OK (read-only for EXAMINE or a
    /// `[READ-ONLY]` code) and leave it otherwise; CLOSE and UNSELECT leave
    /// it on OK.
    pub fn complete(&mut self, req: Request, status: Status) -> Result<(), Misuse> {
        check_tagged(&status)?;
        let Pending::Request(command) = self.take(req.id)? else {
            return Err(Misuse::UnknownRequest);
        };
        let ok = status.kind == StatusKind::Ok;
        match command {
            CommandBody::Select { .. } | CommandBody::Examine { .. } => {
                self.state = if ok {
                    State::Selected {
                        read_only: matches!(command, CommandBody::Examine { .. })
                            || status.code == Some(Code::ReadOnly),
                    }
                } else {
                    State::Authenticated
                };
            }
            CommandBody::Close | CommandBody::Unselect if ok => {
                self.state = State::Authenticated;
            }
            _ => {}
        }
        self.send(&Response::Tagged(req.tag, status));
        self.process();
        Ok(())
    }

    /// Lets the APPEND message come: `+` for a synchronising literal, then
    /// [`Event::AppendChunk`]s and [`Event::AppendEnd`].
    pub fn accept_append(&mut self, req: AppendRequest) -> Result<(), Misuse> {
        let Pending::Append { sync, head } = self.take(req.id)? else {
            return Err(Misuse::UnknownRequest);
        };
        self.fragmenter.stream();
        if sync {
            self.continuation("Ready for literal data");
        }
        self.phase = Phase::Appending { tag: req.tag, head };
        self.process();
        Ok(())
    }

    /// Refuses the APPEND with `status` (usually a `NO`). A message sent as
    /// a non-synchronising literal is read and dropped first.
    pub fn reject_append(&mut self, req: AppendRequest, status: Status) -> Result<(), Misuse> {
        check_tagged(&status)?;
        self.take(req.id)?;
        self.refusal = Some(status);
        self.fragmenter.refuse();
        self.process();
        Ok(())
    }

    /// Ends an APPEND whose message was received with `status`: `OK
    /// [APPENDUID ...]` once stored, or a `NO`.
    pub fn complete_append(&mut self, req: AppendEndRequest, status: Status) -> Result<(), Misuse> {
        check_tagged(&status)?;
        self.take(req.id)?;
        self.send(&Response::Tagged(req.tag, status));
        self.process();
        Ok(())
    }

    /// Starts IDLE: `+ idling`. The session waits for DONE.
    pub fn accept_idle(&mut self, req: IdleRequest) -> Result<(), Misuse> {
        self.take(req.id)?;
        self.continuation("idling");
        self.phase = Phase::Idle { tag: req.tag };
        self.process();
        Ok(())
    }

    /// Ends IDLE: `OK IDLE terminated`, or `BAD` when the client sent
    /// something else than DONE.
    pub fn complete_idle(&mut self, req: IdleDoneRequest) -> Result<(), Misuse> {
        let Pending::IdleDone = self.take(req.id)? else {
            return Err(Misuse::UnknownRequest);
        };
        if req.done {
            self.tagged(req.tag, Status::ok("IDLE terminated"));
        } else {
            self.bad(Some(req.tag), Status::bad("Expected DONE"));
        }
        self.process();
        Ok(())
    }

    /// Refuses IDLE with `status`.
    pub fn reject_idle(&mut self, req: IdleRequest, status: Status) -> Result<(), Misuse> {
        check_tagged(&status)?;
        self.take(req.id)?;
        self.send(&Response::Tagged(req.tag, status));
        self.process();
        Ok(())
    }

    /// Sends untagged data now: changes made by other sessions (EXISTS,
    /// EXPUNGE, FETCH FLAGS), during IDLE or with the answer to a command.
    /// RFC 3501 section 7.4.1: send EXPUNGE only while no command is in
    /// progress or in answer to NOOP, CHECK, IDLE or a command of the host's
    /// choosing that allows it — never during FETCH, STORE or SEARCH.
    pub fn push(&mut self, data: Data) -> Result<(), Misuse> {
        if self.user.is_none() || self.is_closed() {
            return Err(Misuse::NotAuthenticated);
        }
        self.send(&Response::Data(data));
        Ok(())
    }

    /// Sends an untagged status (`* OK [ALERT] ...`, `* NO ...`).
    pub fn push_status(&mut self, status: Status) -> Result<(), Misuse> {
        check_tagged(&status)?;
        if self.is_closed() {
            return Err(Misuse::NotAuthenticated);
        }
        self.send(&Response::Untagged(status));
        Ok(())
    }

    /// The TLS handshake after STARTTLS succeeded: commands are read again,
    /// and CAPABILITY now tells what is offered over TLS.
    pub fn tls_established(&mut self) -> Result<(), Misuse> {
        if !matches!(self.phase, Phase::AwaitingTls) {
            return Err(Misuse::NoTlsPending);
        }
        self.tls = true;
        self.phase = Phase::Commands;
        self.process();
        Ok(())
    }

    /// Ends the session now with `* BYE text` (the server shuts down).
    /// An outstanding decision is dropped.
    pub fn shutdown(&mut self, text: &str) {
        if !self.is_closed() {
            self.bye(text);
        }
    }

    // ---- internals ----

    fn decide(&mut self, kind: Pending) -> DecisionId {
        let id = DecisionId(self.next_id);
        self.next_id += 1;
        self.pending = Some((id, kind));
        id
    }

    fn take(&mut self, id: DecisionId) -> Result<Pending, Misuse> {
        match self.pending.take() {
            Some((p, kind)) if p == id => Ok(kind),
            other => {
                self.pending = other;
                Err(Misuse::UnknownRequest)
            }
        }
    }

    fn send(&mut self, response: &Response) {
        response.encode(&mut self.out);
    }

    fn continuation(&mut self, text: &str) {
        self.send(&Response::Continue(Continue::Text(Text::lossy(text))));
    }

    fn tagged(&mut self, tag: Tag, status: Status) {
        self.send(&Response::Tagged(tag, status));
    }

    /// `BAD`, tagged when the tag is known, counted towards the limit.
    fn bad(&mut self, tag: Option<Tag>, status: Status) {
        match tag {
            Some(tag) => self.tagged(tag, status),
            None => self.send(&Response::Untagged(status)),
        }
        self.count_bad();
    }

    fn count_bad(&mut self) {
        self.bad_commands += 1;
        if self.bad_commands >= self.config.limits.bad_commands {
            self.bye("Too many invalid commands");
        }
    }

    fn bye(&mut self, text: &str) {
        self.pending = None;
        self.send(&Response::Untagged(Status::new(
            StatusKind::Bye,
            None,
            text,
        )));
        self.close();
    }

    fn close(&mut self) {
        if !self.is_closed() {
            self.phase = Phase::Closed;
            self.state = State::Logout;
            self.input.clear();
            self.events.push_back(Event::Closed);
        }
    }

    fn capabilities(&self) -> Vec<Atom> {
        let mut caps = vec![Atom::new("IMAP4rev1").expect("an atom")];
        if self.user.is_none() {
            if self.config.starttls && !self.tls {
                caps.push(Atom::new("STARTTLS").expect("an atom"));
            }
            if self.login_allowed() {
                for m in &self.config.mechanisms {
                    caps.extend(Atom::new(format!("AUTH={}", m.as_str())).ok());
                }
            } else {
                caps.push(Atom::new("LOGINDISABLED").expect("an atom"));
            }
        }
        caps.extend(self.config.capabilities.iter().cloned());
        caps
    }

    fn login_allowed(&self) -> bool {
        self.tls || !self.config.login_requires_tls
    }

    fn process(&mut self) {
        while self.pending.is_none() {
            match self.phase {
                Phase::Commands
                | Phase::Auth { .. }
                | Phase::Idle { .. }
                | Phase::Appending { .. } => {}
                _ => return,
            }
            let Some(fragment) = self.fragmenter.next(&mut self.input) else {
                return;
            };
            self.fragment(fragment);
        }
    }

    fn fragment(&mut self, fragment: Fragment) {
        match fragment {
            Fragment::Command(bytes) => match std::mem::replace(&mut self.phase, Phase::Commands) {
                Phase::Auth { tag, step } => self.auth_response(tag, step, &bytes),
                Phase::Idle { tag } => self.idle_line(tag, &bytes),
                Phase::Appending { tag, head } => self.append_end(tag, head, &bytes),
                phase => {
                    self.phase = phase;
                    self.command(&bytes);
                }
            },
            Fragment::Literal { length, sync } => self.literal(length, sync),
            Fragment::Chunk(bytes) => self.events.push_back(Event::AppendChunk(bytes)),
            Fragment::Rejected { tag, error } => {
                self.restore_line_limit();
                match std::mem::replace(&mut self.phase, Phase::Commands) {
                    Phase::Appending { .. } => self.events.push_back(Event::AppendAborted),
                    // The refused line was to be the SASL response or DONE:
                    // the command waiting for it ends as a bad line ends it.
                    Phase::Auth { tag, .. } => {
                        self.refusal = None;
                        return self.auth_malformed(tag);
                    }
                    Phase::Idle { tag } => {
                        self.refusal = None;
                        return self.idle_line(tag, b"");
                    }
                    _ => {}
                }
                let status = self.refusal.take().unwrap_or_else(|| match error {
                    FrameError::LiteralRefused => {
                        Status::bad("Literal too big").with_code(Code::TooBig)
                    }
                    other => Status::bad(&format!("Command refused: {other}")),
                });
                if status.kind == StatusKind::Bad {
                    self.bad(tag, status);
                } else if let Some(tag) = tag {
                    self.tagged(tag, status);
                }
            }
            Fragment::Unterminated => self.bye("Line too long"),
        }
    }

    /// A literal announced by a command line: the APPEND message goes to
    /// the host; other literals are collected if they fit.
    fn literal(&mut self, length: u64, sync: bool) {
        if !matches!(self.phase, Phase::Commands) {
            // Literals have no place in SASL responses, DONE or after an
            // APPEND message.
            self.refusal = Some(Status::bad("Unexpected literal"));
            return self.fragmenter.refuse();
        }
        let so_far = self.fragmenter.command_so_far();
        if let Some(start) = parse::append_start(so_far) {
            let head = so_far.len();
            if self.user.is_none() {
                self.refusal = Some(Status::bad("Command not valid in this state"));
                return self.fragmenter.refuse();
            }
            if length > self.config.limits.message_size {
                self.refusal = Some(Status::no("Message too big").with_code(Code::TooBig));
                return self.fragmenter.refuse();
            }
            let id = self.decide(Pending::Append { sync, head });
            self.events.push_back(Event::Append(AppendRequest {
                id,
                tag: start.tag,
                mailbox: start.mailbox,
                flags: start.flags,
                date: start.date,
                size: length,
            }));
            return;
        }
        if self.fragmenter.collect() {
            if sync {
                self.continuation("Ready for literal data");
            }
        } else {
            self.fragmenter.refuse();
        }
    }

    fn command(&mut self, bytes: &[u8]) {
        let command = match Command::parse(bytes) {
            Ok(c) => c,
            Err(error) => return self.parse_error(&error),
        };
        let Command { tag, body } = command;
        let valid = match body.validity() {
            Validity::Any => true,
            Validity::NotAuthenticated => self.state == State::NotAuthenticated,
            Validity::Authenticated => self.user.is_some(),
            Validity::Selected => matches!(self.state, State::Selected { .. }),
        };
        if !valid {
            return self.bad(Some(tag), Status::bad("Command not valid in this state"));
        }
        match body {
            CommandBody::Capability => {
                let caps = self.capabilities();
                self.send(&Response::Data(Data::Capability(caps)));
                self.tagged(tag, Status::ok("CAPABILITY completed"));
            }
            CommandBody::Logout => {
                self.send(&Response::Untagged(Status::new(
                    StatusKind::Bye,
                    None,
                    "Logging out",
                )));
                self.tagged(tag, Status::ok("LOGOUT completed"));
                self.close();
            }
            CommandBody::Noop if self.user.is_none() => {
                self.tagged(tag, Status::ok("NOOP completed"));
            }
            CommandBody::Id(params) => {
                self.events.push_back(Event::ClientId(params));
                let id = self.config.id.clone();
                self.send(&Response::Data(Data::Id(id)));
                self.tagged(tag, Status::ok("ID completed"));
            }
            CommandBody::StartTls => self.starttls(tag),
            CommandBody::Login { username, password } => {
                if !self.login_allowed() {
                    let no =
                        Status::no("LOGIN is disabled before TLS").with_code(Code::PrivacyRequired);
                    return self.tagged(tag, no);
                }
                self.login_decision(tag, None, None, username, password);
            }
            CommandBody::Authenticate { mechanism, initial } => {
                self.authenticate(tag, &mechanism, initial);
            }
            CommandBody::Enable(caps) => {
                if matches!(self.state, State::Selected { .. }) {
                    return self.bad(Some(tag), Status::bad("ENABLE only before SELECT"));
                }
                let turned_on: Vec<Atom> = caps
                    .into_iter()
                    .filter(|c| {
                        self.config
                            .enableable
                            .iter()
                            .any(|e| e.eq_ignore_case(c.as_str()))
                            && !self.enabled.iter().any(|e| e.eq_ignore_case(c.as_str()))
                    })
                    .collect();
                self.send(&Response::Data(Data::Enabled(turned_on.clone())));
                self.tagged(tag, Status::ok("ENABLE completed"));
                if !turned_on.is_empty() {
                    self.enabled.extend(turned_on.iter().cloned());
                    self.events.push_back(Event::Enabled(turned_on));
                }
            }
            CommandBody::Idle => {
                let id = self.decide(Pending::Idle);
                self.events.push_back(Event::Idle(IdleRequest { id, tag }));
            }
            command => {
                // APPEND never gets here whole: its message literal was
                // taken by `literal` first. Everything else is the host's.
                let id = self.decide(Pending::Request(command.clone()));
                self.events
                    .push_back(Event::Request(Request { id, tag, command }));
            }
        }
    }

    fn parse_error(&mut self, error: &ParseError) {
        let text = match error {
            ParseError::NoTag => "Missing or invalid tag".to_owned(),
            ParseError::UnknownCommand { .. } => "Unknown command".to_owned(),
            ParseError::InvalidArguments { name, .. } => format!("Invalid arguments to {name}"),
        };
        self.bad(error.tag().cloned(), Status::bad(&text));
    }

    fn starttls(&mut self, tag: Tag) {
        if self.tls {
            return self.bad(Some(tag), Status::bad("TLS is already active"));
        }
        if !self.config.starttls {
            return self.bad(Some(tag), Status::bad("STARTTLS is not available"));
        }
        self.tagged(tag, Status::ok("Begin TLS negotiation now"));
        // Whatever was pipelined after STARTTLS is dropped.
        self.input.clear();
        self.fragmenter.reset();
        self.phase = Phase::AwaitingTls;
        self.events.push_back(Event::StartTls);
    }

    fn authenticate(&mut self, tag: Tag, mechanism: &Atom, initial: Option<Secret>) {
        let mechanism = self
            .config
            .mechanisms
            .iter()
            .copied()
            .find(|m| mechanism.eq_ignore_case(m.as_str()));
        let Some(mechanism) = mechanism else {
            return self.tagged(tag, Status::no("Unsupported authentication mechanism"));
        };
        if !self.login_allowed() {
            let no = Status::no("Authentication is disabled before TLS")
                .with_code(Code::PrivacyRequired);
            return self.tagged(tag, no);
        }
        let initial = initial.map(|ir| ir.expose().to_vec());
        match (mechanism, initial) {
            (Mechanism::Plain, None) => self.challenge(tag, AuthStep::Plain, ""),
            (Mechanism::Plain, Some(ir)) => self.plain(tag, &ir),
            (Mechanism::Login, None) => self.challenge(tag, AuthStep::LoginUser, "VXNlcm5hbWU6"),
            (Mechanism::Login, Some(ir)) => match decode(&ir) {
                Some(user) => {
                    self.challenge(tag, AuthStep::LoginPassword(user), "UGFzc3dvcmQ6");
                }
                None => self.auth_malformed(tag),
            },
        }
    }

    fn challenge(&mut self, tag: Tag, step: AuthStep, challenge: &str) {
        self.send(&Response::Continue(Continue::Base64(challenge.to_owned())));
        self.fragmenter
            .set_line_limit(self.config.limits.auth_line.max(self.config.limits.line));
        self.phase = Phase::Auth { tag, step };
    }

    fn restore_line_limit(&mut self) {
        self.fragmenter.set_line_limit(self.config.limits.line);
    }

    fn auth_malformed(&mut self, tag: Tag) {
        self.bad(Some(tag), Status::bad("Invalid SASL response"));
    }

    fn auth_response(&mut self, tag: Tag, step: AuthStep, line: &[u8]) {
        self.restore_line_limit();
        let line = trim_line(line);
        if line == b"*" {
            return self.bad(Some(tag), Status::bad("Authentication cancelled"));
        }
        match step {
            AuthStep::Plain => self.plain(tag, line),
            AuthStep::LoginUser => match decode(line) {
                Some(user) => self.challenge(tag, AuthStep::LoginPassword(user), "UGFzc3dvcmQ6"),
                None => self.auth_malformed(tag),
            },
            AuthStep::LoginPassword(user) => {
                let (Some(password), Ok(username)) = (decode(line), AString::new(user)) else {
                    return self.auth_malformed(tag);
                };
                let Ok(password) = AString::new(password) else {
                    return self.auth_malformed(tag);
                };
                self.login_decision(
                    tag,
                    Some(Mechanism::Login),
                    None,
                    username,
                    Secret::new(password),
                );
            }
        }
    }

    /// `message = [authzid] UTF8NUL authcid UTF8NUL passwd` (RFC 4616).
    fn plain(&mut self, tag: Tag, b64: &[u8]) {
        let Some(message) = decode(b64) else {
            return self.auth_malformed(tag);
        };
        let mut parts = message.split('\0');
        let (Some(authzid), Some(authcid), Some(passwd), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return self.auth_malformed(tag);
        };
        let (Ok(username), Ok(password)) = (AString::try_from(authcid), AString::try_from(passwd))
        else {
            return self.auth_malformed(tag);
        };
        if authcid.is_empty() {
            return self.auth_malformed(tag);
        }
        let authzid = (!authzid.is_empty() && authzid != authcid).then(|| authzid.to_owned());
        self.login_decision(
            tag,
            Some(Mechanism::Plain),
            authzid,
            username,
            Secret::new(password),
        );
    }

    fn login_decision(
        &mut self,
        tag: Tag,
        mechanism: Option<Mechanism>,
        authzid: Option<String>,
        username: AString,
        password: Secret,
    ) {
        let id = self.decide(Pending::Login);
        self.events.push_back(Event::Login(LoginRequest {
            id,
            tag,
            mechanism,
            authzid,
            username,
            password,
        }));
    }

    fn idle_line(&mut self, tag: Tag, line: &[u8]) {
        let done = trim_line(line).eq_ignore_ascii_case(b"DONE");
        let id = self.decide(Pending::IdleDone);
        self.events
            .push_back(Event::IdleDone(IdleDoneRequest { id, tag, done }));
    }

    /// The end of the line that carried an APPEND message: only a line end
    /// may follow the message (MULTIAPPEND and CATENATE are not offered).
    fn append_end(&mut self, tag: Tag, head: usize, command: &[u8]) {
        let rest = command.get(head..).unwrap_or_default();
        if rest == b"\r\n" || rest == b"\n" {
            let id = self.decide(Pending::AppendEnd);
            self.events
                .push_back(Event::AppendEnd(AppendEndRequest { id, tag }));
        } else {
            self.events.push_back(Event::AppendAborted);
            self.bad(Some(tag), Status::bad("Invalid arguments to APPEND"));
        }
    }
}

fn check_tagged(status: &Status) -> Result<(), Misuse> {
    match status.kind {
        StatusKind::Ok | StatusKind::No | StatusKind::Bad => Ok(()),
        _ => Err(Misuse::InvalidStatus),
    }
}

fn trim_line(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Decodes a base64 SASL response into UTF-8 (`=` is the empty response).
fn decode(b64: &[u8]) -> Option<String> {
    if b64 == b"=" {
        return Some(String::new());
    }
    let bytes = BASE64.decode(b64).ok()?;
    String::from_utf8(bytes).ok()
}
