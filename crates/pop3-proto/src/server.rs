//! The server session: one POP3 connection as seen by the maildrop's side
//! (RFC 1939, CAPA of RFC 2449, STLS of RFC 2595, AUTH PLAIN of RFC 5034).

use std::collections::VecDeque;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::{Buf, BytesMut};

use crate::command::{Command, ParseError};
use crate::dot::DotStuffer;
use crate::limits::Limits;
use crate::response::{Refusal, ResponseCode, clean_text};
use crate::types::{Maildrop, MaildropEntry, Secret, UniqueId};

/// How a server session behaves: its name, what it offers, and its limits.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The host name in the greeting and the sign-off.
    pub hostname: String,
    /// The greeting text after the host name (SPEC L-3).
    pub banner: String,
    /// Offer STLS (RFC 2595): enable it when the host has a certificate.
    pub stls: bool,
    /// The connection is TLS from the start (POP3S, port 995).
    pub tls_active: bool,
    /// Refuse USER, PASS and AUTH with `-ERR [AUTH]` before TLS, and do not
    /// advertise them in CAPA then. Default true (RFC 2595 section 2.3).
    pub login_requires_tls: bool,
    /// Offer USER/PASS. Default true.
    pub user_pass: bool,
    /// Offer AUTH PLAIN (RFC 5034). Default true.
    pub sasl_plain: bool,
    /// The IMPLEMENTATION line of CAPA (RFC 2449 section 6.9); none by
    /// default, since it tells attackers what they face.
    pub implementation: Option<String>,
    /// Buffer sizes, counts and the idle timeout.
    pub limits: Limits,
}

impl ServerConfig {
    /// A configuration with the defaults and the given host name.
    pub fn new(hostname: impl Into<String>) -> Self {
        ServerConfig {
            hostname: hostname.into(),
            banner: "POP3 server ready".into(),
            stls: false,
            tls_active: false,
            login_requires_tls: true,
            user_pass: true,
            sasl_plain: true,
            implementation: None,
            limits: Limits::default(),
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
    /// greeting is sent) or [`ServerSession::refuse_connection`] (the
    /// refusal is sent and the session closes).
    ConnectRequest {}
}

/// How the client gave its credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoginMethod {
    /// USER and PASS (RFC 1939 section 7).
    UserPass,
    /// AUTH PLAIN (RFC 5034, RFC 4616).
    Plain,
}

request! {
    /// Credentials to check. Lock the maildrop and list it, then answer
    /// [`ServerSession::accept_login`] with the listing, or
    /// [`ServerSession::reject_login`] with a refusal: `[AUTH]` for bad
    /// credentials, `[IN-USE]` when the maildrop is locked by another
    /// session, `[LOGIN-DELAY]`, `[SYS/TEMP]` or `[SYS/PERM]` as fits
    /// (RFC 2449 section 8, RFC 3206).
    LoginRequest {
        /// USER/PASS or AUTH PLAIN.
        pub method: LoginMethod,
        /// The authorization identity of AUTH PLAIN, when it differs from
        /// the user name.
        pub authzid: Option<String>,
        /// The user name.
        pub username: String,
        /// The password.
        pub password: Secret,
    }
}

request! {
    /// RETR or TOP of a message that exists and is not deleted. Stream the
    /// message as stored with [`ServerSession::send_message_chunk`], then
    /// answer [`ServerSession::finish_message`]; or answer
    /// [`ServerSession::fail_message`] when it cannot be read. The session
    /// byte-stuffs, ends every line with CRLF and, for TOP, cuts after the
    /// header and the wanted lines of the body.
    RetrieveRequest {
        /// The message number.
        pub message: u32,
        /// Its size from the listing.
        pub size: u64,
        /// Its unique-id from the listing.
        pub uid: UniqueId,
        /// TOP: the number of body lines wanted; `None` for RETR.
        pub top: Option<u32>,
    }
}

request! {
    /// QUIT in the TRANSACTION state: the UPDATE state (RFC 1939 section
    /// 6). Remove the deleted messages and release the maildrop, then
    /// answer [`ServerSession::accept_update`] (`+OK`) or
    /// [`ServerSession::reject_update`] (usually `[SYS/TEMP]`). Either
    /// way the session closes.
    UpdateRequest {
        /// The numbers of the messages marked as deleted, ascending. Empty
        /// when nothing was deleted; the maildrop is released all the same.
        pub deleted: Vec<u32>,
    }
}

/// What the session tells the host: a decision to answer or a state change.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A decision: greet or refuse the client.
    Connect(ConnectRequest),
    /// The `+OK` to STLS is in the transmit buffer: write it out, run the
    /// TLS handshake, then call [`ServerSession::tls_established`]. Input
    /// received before that is discarded (RFC 2595 section 4, command
    /// injection).
    StartTls,
    /// A decision: credentials to check.
    Login(LoginRequest),
    /// A decision: a message to stream.
    Retrieve(RetrieveRequest),
    /// A decision: QUIT; commit the deletions.
    Update(UpdateRequest),
    /// The session is over: write out what
    /// [`ServerSession::poll_transmit`] gives, then close the connection.
    /// A session that ends without [`Event::Update`] deletes nothing.
    Closed,
}

/// A call that does not fit the session's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Misuse {
    /// The request does not belong to this session or was answered already.
    #[error("the request is not outstanding in this session")]
    UnknownRequest,
    /// `tls_established` without a STLS in progress.
    #[error("no STLS handshake is in progress")]
    NoTlsPending,
    /// A message chunk while the transmit buffer is full: drain
    /// [`ServerSession::poll_transmit`] first (see
    /// [`ServerSession::wants_message_chunk`]).
    #[error("the transmit buffer is full")]
    OutputFull,
}

/// What a message chunk did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum MessageProgress {
    /// Send the next chunk, or finish.
    WantsMore,
    /// TOP has all the lines it wants: finish now; more chunks are ignored.
    Complete,
}

/// The protocol state of RFC 1939 section 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// Before a successful login (including the greeting and STLS).
    Authorization,
    /// Logged in, the maildrop listed.
    Transaction,
    /// QUIT was given; the host commits the deletions.
    Update,
    /// Over.
    Closed,
}

#[derive(Debug)]
struct Retrieval {
    size: u64,
    /// TOP (true) or RETR.
    top: bool,
    stuffer: DotStuffer,
    /// The `+OK` line was written: the response can no longer be `-ERR`.
    started: bool,
}

#[derive(Debug)]
enum Pending {
    Connect,
    Login { username: String },
    Retrieve(Retrieval),
    Update,
}

#[derive(Debug)]
enum Phase {
    /// Waiting for the host's answer to the connection.
    Connecting,
    /// AUTHORIZATION; the name given with USER, if any.
    Authorization {
        user: Option<String>,
    },
    /// AUTH PLAIN sent `+ `: the next line is the response.
    AuthResponse,
    /// STLS answered; waiting for the host's handshake.
    AwaitingTls,
    Transaction,
    /// QUIT in TRANSACTION: waiting for the host's commit.
    Update,
    Closed,
}

/// The maildrop of a logged-in session with its deletion marks.
#[derive(Debug)]
struct Marked {
    maildrop: Maildrop,
    deleted: Vec<bool>,
    deleted_count: usize,
    deleted_size: u64,
}

impl Marked {
    fn new(maildrop: Maildrop) -> Self {
        let deleted = vec![false; maildrop.len()];
        Marked {
            maildrop,
            deleted,
            deleted_count: 0,
            deleted_size: 0,
        }
    }

    /// Live messages.
    fn count(&self) -> usize {
        self.maildrop.len() - self.deleted_count
    }

    /// Octets of the live messages.
    fn size(&self) -> u64 {
        self.maildrop
            .iter()
            .map(|(_, e)| e.size)
            .fold(0u64, u64::saturating_add)
            .saturating_sub(self.deleted_size)
    }

    fn is_deleted(&self, number: u32) -> bool {
        let index = (number as usize).checked_sub(1);
        index.is_none_or(|i| self.deleted.get(i).copied().unwrap_or(true))
    }

    /// Message `n` if it exists and is not deleted; otherwise the text of
    /// the `-ERR`.
    fn live(&self, n: u32) -> Result<&MaildropEntry, String> {
        let entry = self
            .maildrop
            .get(n)
            .ok_or_else(|| "No such message".to_owned())?;
        if self.is_deleted(n) {
            return Err(format!("Message {n} already deleted"));
        }
        Ok(entry)
    }

    fn delete(&mut self, n: u32) -> Result<(), String> {
        let size = self.live(n)?.size;
        self.deleted[n as usize - 1] = true;
        self.deleted_count += 1;
        self.deleted_size = self.deleted_size.saturating_add(size);
        Ok(())
    }

    fn undelete_all(&mut self) {
        self.deleted.iter_mut().for_each(|d| *d = false);
        self.deleted_count = 0;
        self.deleted_size = 0;
    }
}

/// Outcome of looking for a line in the input.
enum Line {
    Complete(BytesMut),
    TooLong,
    Unterminated,
    Incomplete,
}

/// One POP3 connection, server side, without I/O.
///
/// Feed the client's bytes to [`handle_input`](Self::handle_input) and the
/// clock to [`handle_timeout`](Self::handle_timeout); after each call, and
/// after answering a decision, drain the outputs in this order:
///
/// 1. [`poll_event`](Self::poll_event) until `None`, answering each decision
///    (now or later: the session waits, and pipelined input waits with it);
/// 2. [`poll_transmit`](Self::poll_transmit), writing the bytes to the
///    peer. When it gave bytes, go back to 1: a session that held commands
///    back because its output was full goes on once it is drained;
/// 3. [`poll_timeout`](Self::poll_timeout), the instant to call
///    `handle_timeout` at (`None`: no timer, e.g. while the host decides).
///
/// Read from the socket only while [`wants_input`](Self::wants_input).
/// On [`Event::StartTls`] write out the transmit buffer, then run the
/// handshake; on [`Event::Closed`] write it out, then close.
///
/// A message is streamed while its [`RetrieveRequest`] is outstanding:
/// push chunks while [`wants_message_chunk`](Self::wants_message_chunk),
/// write out the transmit buffer when it says no, and finish.
///
/// ```
/// use std::time::Instant;
/// use ironpost_pop3_proto::{Event, Maildrop, MessageProgress, ServerConfig, ServerSession, UniqueId};
///
/// let message: &[u8] = b"Subject: hi\r\n\r\n.hidden dot\r\n";
/// let mut config = ServerConfig::new("pop.example.org");
/// config.login_requires_tls = false;
/// let mut session = ServerSession::new(config, Instant::now());
/// let mut wire = Vec::new();
/// let mut deleted = Vec::new();
/// let client = b"USER alice\r\nPASS secret\r\nSTAT\r\nRETR 1\r\nDELE 1\r\nQUIT\r\n";
/// let mut input: &[u8] = client;
/// loop {
///     while let Some(event) = session.poll_event() {
///         match event {
///             Event::Connect(req) => session.accept_connection(req).unwrap(),
///             Event::Login(req) if req.password.expose() == "secret" => {
///                 // Lock and list the maildrop here.
///                 let uid = UniqueId::new("msg-1").unwrap();
///                 let maildrop = [(message.len() as u64, uid)].into_iter().collect();
///                 session.accept_login(req, maildrop).unwrap();
///             }
///             Event::Retrieve(req) => {
///                 // Read the stored message in chunks.
///                 for chunk in message.chunks(8) {
///                     if session.send_message_chunk(&req, chunk).unwrap() == MessageProgress::Complete {
///                         break;
///                     }
///                 }
///                 session.finish_message(req).unwrap();
///             }
///             Event::Update(req) => {
///                 // Remove the deleted messages, then release the maildrop.
///                 deleted = req.deleted.clone();
///                 session.accept_update(req).unwrap();
///             }
///             Event::Closed => {}
///             _ => {}
///         }
///     }
///     if session.poll_transmit(&mut wire) > 0 {
///         continue;
///     }
///     if session.is_closed() || input.is_empty() {
///         break;
///     }
///     // A socket read would go here; take 10 bytes at a time.
///     let n = input.len().min(10);
///     session.handle_input(Instant::now(), &input[..n]);
///     input = &input[n..];
/// }
/// assert_eq!(deleted, [1]);
/// assert_eq!(
///     String::from_utf8(wire).unwrap(),
///     "+OK pop.example.org POP3 server ready\r\n+OK Send PASS\r\n\
///      +OK Maildrop has 1 message (28 octets)\r\n+OK 1 28\r\n\
///      +OK 28 octets\r\nSubject: hi\r\n\r\n..hidden dot\r\n.\r\n\
///      +OK Message 1 deleted\r\n\
///      +OK pop.example.org POP3 server signing off (maildrop empty)\r\n"
/// );
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
    pending: Option<(DecisionId, Pending)>,
    next_id: u64,
    phase: Phase,
    tls: bool,
    user: Option<String>,
    marked: Option<Marked>,
    bad_commands: usize,
    login_failures: usize,
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
            pending: None,
            next_id: 0,
            phase: Phase::Connecting,
            tls,
            user: None,
            marked: None,
            bad_commands: 0,
            login_failures: 0,
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

    /// The user the host accepted at login.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Whether the connection is protected by TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Whether the session is over ([`Event::Closed`] was emitted).
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// The protocol state.
    pub fn state(&self) -> State {
        match self.phase {
            Phase::Connecting
            | Phase::Authorization { .. }
            | Phase::AuthResponse
            | Phase::AwaitingTls => State::Authorization,
            Phase::Transaction => State::Transaction,
            Phase::Update => State::Update,
            Phase::Closed => State::Closed,
        }
    }

    /// Whether the host should read more from the connection now. False
    /// while the session waits for the host (a decision, a TLS handshake,
    /// a full transmit buffer) with a line's worth of input already
    /// buffered, and once closed.
    #[must_use]
    pub fn wants_input(&self) -> bool {
        match self.phase {
            Phase::Closed | Phase::AwaitingTls => false,
            _ if self.blocked() => self.input.len() < self.config.limits.command_line,
            _ => true,
        }
    }

    /// Whether [`send_message_chunk`](Self::send_message_chunk) takes a
    /// chunk now: a message is being streamed and the transmit buffer is
    /// below [`Limits::output_buffer`].
    #[must_use]
    pub fn wants_message_chunk(&self) -> bool {
        matches!(self.pending, Some((_, Pending::Retrieve(_))))
            && self.out.len() < self.config.limits.output_buffer
    }

    /// Bytes received from the client at `now`.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        match self.phase {
            // Plaintext bytes after STLS and before the handshake are an
            // injection attempt (RFC 2595 section 4): dropped.
            Phase::Closed | Phase::AwaitingTls => return,
            _ => {}
        }
        self.last_activity = now;
        self.input.extend_from_slice(bytes);
        self.process();
    }

    /// The clock: call it at (or after) the instant of
    /// [`poll_timeout`](Self::poll_timeout). An idle session says `-ERR`
    /// and closes without entering the UPDATE state (RFC 1939 section 3).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_some_and(|deadline| now >= deadline) {
            self.close_with_err("Autologout; idle for too long");
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.pending.is_some() {
            return None;
        }
        match self.phase {
            Phase::Authorization { .. } | Phase::AuthResponse | Phase::Transaction => {
                Some(self.last_activity + self.config.limits.idle_timeout)
            }
            _ => None,
        }
    }

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Appends the bytes to send to the client to `out`; returns how many.
    /// When the session had stopped because its output was full, it goes on
    /// with the commands it holds: drain [`poll_event`](Self::poll_event)
    /// again after writing.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> usize {
        let n = self.out.len();
        out.append(&mut self.out);
        if n > 0 {
            self.process();
        }
        n
    }

    /// Greets the client.
    pub fn accept_connection(&mut self, req: ConnectRequest) -> Result<(), Misuse> {
        self.take(req.id)?;
        self.phase = Phase::Authorization { user: None };
        let greeting = format!("{} {}", self.config.hostname, self.config.banner);
        self.ok(&greeting);
        self.process();
        Ok(())
    }

    /// Refuses the client (an access list, an auto-ban, too many
    /// connections): sends `refusal` and closes.
    pub fn refuse_connection(
        &mut self,
        req: ConnectRequest,
        refusal: Refusal,
    ) -> Result<(), Misuse> {
        self.take(req.id)?;
        refusal.encode(&mut self.out);
        self.close();
        Ok(())
    }

    /// Accepts the login: the session enters the TRANSACTION state with
    /// `maildrop` (the host holds the maildrop's lock from now until the
    /// session ends).
    pub fn accept_login(&mut self, req: LoginRequest, maildrop: Maildrop) -> Result<(), Misuse> {
        let Pending::Login { username } = self.take(req.id)? else {
            return Err(Misuse::UnknownRequest);
        };
        let state = Marked::new(maildrop);
        let text = summary(&state);
        self.marked = Some(state);
        self.user = Some(username);
        // State changes before the answer: answering resumes pipelined input.
        self.phase = Phase::Transaction;
        self.ok(&text);
        self.process();
        Ok(())
    }

    /// Refuses the login with `refusal`. After
    /// [`Limits::login_failures`] refusals the session closes.
    pub fn reject_login(&mut self, req: LoginRequest, refusal: Refusal) -> Result<(), Misuse> {
        self.take(req.id)?;
        self.phase = Phase::Authorization { user: None };
        refusal.encode(&mut self.out);
        self.login_failures += 1;
        if self.login_failures >= self.config.limits.login_failures {
            self.close();
        } else {
            self.process();
        }
        Ok(())
    }

    /// The next bytes of the message being retrieved, as stored (any line
    /// ends). Returns whether more are wanted. Fails with
    /// [`Misuse::OutputFull`] when [`wants_message_chunk`](Self::wants_message_chunk)
    /// is false.
    pub fn send_message_chunk(
        &mut self,
        req: &RetrieveRequest,
        chunk: &[u8],
    ) -> Result<MessageProgress, Misuse> {
        let Some((id, Pending::Retrieve(retrieval))) = &mut self.pending else {
            return Err(Misuse::UnknownRequest);
        };
        if *id != req.id {
            return Err(Misuse::UnknownRequest);
        }
        if self.out.len() >= self.config.limits.output_buffer {
            return Err(Misuse::OutputFull);
        }
        start_retrieval(retrieval, &mut self.out);
        retrieval.stuffer.push(chunk, &mut self.out);
        Ok(if retrieval.stuffer.is_complete() {
            MessageProgress::Complete
        } else {
            MessageProgress::WantsMore
        })
    }

    /// The whole message was sent: the session ends the response.
    pub fn finish_message(&mut self, req: RetrieveRequest) -> Result<(), Misuse> {
        let Pending::Retrieve(mut retrieval) = self.take(req.id)? else {
            return Err(Misuse::UnknownRequest);
        };
        start_retrieval(&mut retrieval, &mut self.out);
        retrieval.stuffer.finish(&mut self.out);
        self.process();
        Ok(())
    }

    /// The message cannot be read. Before any chunk, `refusal` is the
    /// answer (usually `[SYS/TEMP]`) and the session goes on. After a
    /// chunk the `+OK` is already sent and no honest answer is left: the
    /// session closes at once and the client sees a truncated response.
    pub fn fail_message(&mut self, req: RetrieveRequest, refusal: Refusal) -> Result<(), Misuse> {
        let Pending::Retrieve(retrieval) = self.take(req.id)? else {
            return Err(Misuse::UnknownRequest);
        };
        if retrieval.started {
            self.close();
        } else {
            refusal.encode(&mut self.out);
            self.process();
        }
        Ok(())
    }

    /// The deletions are committed and the maildrop released: `+OK`, and
    /// the session closes.
    pub fn accept_update(&mut self, req: UpdateRequest) -> Result<(), Misuse> {
        let Pending::Update = self.take(req.id)? else {
            return Err(Misuse::UnknownRequest);
        };
        let left = self.marked.as_ref().map_or(0, Marked::count);
        let text = match left {
            0 => "maildrop empty".to_owned(),
            1 => "1 message left".to_owned(),
            n => format!("{n} messages left"),
        };
        let text = format!("{} POP3 server signing off ({text})", self.config.hostname);
        self.ok(&text);
        self.close();
        Ok(())
    }

    /// Some deletions could not be committed: `refusal` (RFC 1939 section
    /// 6: "some deleted messages not removed"), and the session closes.
    pub fn reject_update(&mut self, req: UpdateRequest, refusal: Refusal) -> Result<(), Misuse> {
        let Pending::Update = self.take(req.id)? else {
            return Err(Misuse::UnknownRequest);
        };
        refusal.encode(&mut self.out);
        self.close();
        Ok(())
    }

    /// The TLS handshake after STLS succeeded: the session is in the
    /// AUTHORIZATION state again, now with TLS.
    pub fn tls_established(&mut self) -> Result<(), Misuse> {
        if !matches!(self.phase, Phase::AwaitingTls) {
            return Err(Misuse::NoTlsPending);
        }
        self.tls = true;
        self.phase = Phase::Authorization { user: None };
        self.process();
        Ok(())
    }

    /// Ends the session now with `refusal` (`[SYS/TEMP]` when the server
    /// shuts down). Outstanding decisions are dropped and nothing is
    /// deleted. In the middle of a message only the connection closes: a
    /// status line there would read as message content.
    pub fn shutdown(&mut self, refusal: Refusal) {
        if self.is_closed() {
            return;
        }
        let streaming = matches!(
            &self.pending,
            Some((_, Pending::Retrieve(Retrieval { started: true, .. })))
        );
        self.pending = None;
        if !streaming {
            refusal.encode(&mut self.out);
        }
        self.close();
    }

    // ---- decisions ----

    fn decide(&mut self, kind: Pending) -> DecisionId {
        let id = DecisionId(self.next_id);
        self.next_id += 1;
        self.pending = Some((id, kind));
        id
    }

    fn take(&mut self, id: DecisionId) -> Result<Pending, Misuse> {
        match self.pending.take() {
            Some((pending, kind)) if pending == id => Ok(kind),
            other => {
                self.pending = other;
                Err(Misuse::UnknownRequest)
            }
        }
    }

    /// Whether processing of input must wait for the host.
    fn blocked(&self) -> bool {
        self.pending.is_some() || self.out.len() >= self.config.limits.output_buffer
    }

    // ---- output ----

    fn ok(&mut self, text: &str) {
        self.out.extend_from_slice(b"+OK");
        if !text.is_empty() {
            self.out.push(b' ');
            self.out.extend_from_slice(clean_text(text).as_bytes());
        }
        self.out.extend_from_slice(b"\r\n");
    }

    fn err(&mut self, code: Option<ResponseCode>, text: &str) {
        let refusal = match code {
            Some(code) => Refusal::new(text).with_code(code),
            None => Refusal::new(text),
        };
        refusal.encode(&mut self.out);
    }

    /// `-ERR text`, counted as a bad command; at the limit the session
    /// closes after it.
    fn bad_command(&mut self, text: &str) {
        self.err(None, text);
        self.bad_commands += 1;
        if self.bad_commands >= self.config.limits.bad_commands {
            self.close();
        }
    }

    fn close_with_err(&mut self, text: &str) {
        self.pending = None;
        self.err(None, text);
        self.close();
    }

    fn close(&mut self) {
        if self.is_closed() {
            return;
        }
        self.phase = Phase::Closed;
        self.input.clear();
        self.scanned = 0;
        self.events.push_back(Event::Closed);
    }

    // ---- input ----

    fn process(&mut self) {
        loop {
            if self.blocked() {
                return;
            }
            let limits = &self.config.limits;
            let longest = match self.phase {
                Phase::Authorization { .. } | Phase::Transaction => {
                    limits.command_line.max(limits.auth_line)
                }
                Phase::AuthResponse => limits.auth_line,
                _ => return,
            };
            match self.take_line(longest) {
                Line::Incomplete => return,
                Line::Unterminated => return self.close_with_err("Line too long"),
                Line::TooLong => {
                    if matches!(self.phase, Phase::AuthResponse) {
                        self.phase = Phase::Authorization { user: None };
                    }
                    self.bad_command("Line too long");
                }
                Line::Complete(line) => self.line(&line),
            }
        }
    }

    /// Looks for a complete line; `limit` is the longest allowed, line end
    /// included. The verdict depends only on the line's length.
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
                let line = self.input.split_to(end + 1);
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

    fn line(&mut self, line: &[u8]) {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if matches!(self.phase, Phase::AuthResponse) {
            return self.auth_response(text);
        }
        let is_auth = text.len() >= 5 && text[..5].eq_ignore_ascii_case(b"AUTH ");
        if !is_auth && line.len() > self.config.limits.command_line {
            return self.bad_command("Line too long");
        }
        match Command::parse(text) {
            Ok(command) => self.command(command),
            Err(ParseError::Unknown) => self.bad_command("Unknown command"),
            Err(_) => self.bad_command("Invalid arguments"),
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Capa => self.capa(),
            Command::Quit => self.quit(),
            Command::User(name) => self.user_command(name),
            Command::Pass(password) => self.pass(password),
            Command::Auth { mechanism, initial } => self.auth(&mechanism, initial),
            Command::Stls => self.stls(),
            other => {
                if !matches!(self.phase, Phase::Transaction) {
                    return self.bad_command("Command not valid in this state");
                }
                self.transaction(other);
            }
        }
    }

    fn login_allowed(&self) -> bool {
        self.tls || !self.config.login_requires_tls
    }

    fn capa(&mut self) {
        let authorization = matches!(self.phase, Phase::Authorization { .. });
        let mut lines = vec!["TOP", "UIDL"];
        let login = authorization && self.login_allowed();
        if login && self.config.user_pass {
            lines.push("USER");
        }
        if login && self.config.sasl_plain {
            lines.push("SASL PLAIN");
        }
        lines.extend(["RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]);
        if authorization && self.config.stls && !self.tls {
            lines.push("STLS");
        }
        self.ok("Capability list follows");
        for line in lines {
            self.out.extend_from_slice(line.as_bytes());
            self.out.extend_from_slice(b"\r\n");
        }
        if let Some(implementation) = &self.config.implementation {
            let line = format!("IMPLEMENTATION {}\r\n", clean_text(implementation));
            self.out.extend_from_slice(line.as_bytes());
        }
        self.out.extend_from_slice(b".\r\n");
    }

    fn quit(&mut self) {
        match self.phase {
            Phase::Transaction => {
                let deleted = self
                    .marked
                    .as_ref()
                    .map(|d| {
                        d.maildrop
                            .iter()
                            .map(|(n, _)| n)
                            .filter(|&n| d.is_deleted(n))
                            .collect()
                    })
                    .unwrap_or_default();
                self.phase = Phase::Update;
                let id = self.decide(Pending::Update);
                self.events
                    .push_back(Event::Update(UpdateRequest { id, deleted }));
            }
            _ => {
                let text = format!("{} POP3 server signing off", self.config.hostname);
                self.ok(&text);
                self.close();
            }
        }
    }

    fn user_command(&mut self, name: String) {
        if !matches!(self.phase, Phase::Authorization { .. }) {
            return self.bad_command("Command not valid in this state");
        }
        if !self.config.user_pass {
            return self.bad_command("Unknown command");
        }
        if !self.login_allowed() {
            return self.plaintext_refused();
        }
        self.phase = Phase::Authorization { user: Some(name) };
        self.ok("Send PASS");
    }

    fn plaintext_refused(&mut self) {
        self.err(
            Some(ResponseCode::AUTH),
            "Plaintext authentication is not allowed without TLS",
        );
    }

    fn pass(&mut self, password: Secret) {
        let Phase::Authorization { user } = &mut self.phase else {
            return self.bad_command("Command not valid in this state");
        };
        let Some(username) = user.take() else {
            return self.bad_command("No user name given");
        };
        self.login(LoginMethod::UserPass, None, username, password);
    }

    fn login(
        &mut self,
        method: LoginMethod,
        authzid: Option<String>,
        username: String,
        password: Secret,
    ) {
        self.phase = Phase::Authorization { user: None };
        let id = self.decide(Pending::Login {
            username: username.clone(),
        });
        self.events.push_back(Event::Login(LoginRequest {
            id,
            method,
            authzid,
            username,
            password,
        }));
    }

    fn auth(&mut self, mechanism: &str, initial: Option<Secret>) {
        if !matches!(self.phase, Phase::Authorization { .. }) {
            return self.bad_command("Command not valid in this state");
        }
        if mechanism != "PLAIN" || !self.config.sasl_plain {
            return self.err(None, "Unsupported authentication mechanism");
        }
        if !self.login_allowed() {
            return self.plaintext_refused();
        }
        match initial {
            Some(initial) => self.auth_plain(initial.expose().as_bytes()),
            None => {
                self.phase = Phase::AuthResponse;
                self.out.extend_from_slice(b"+ \r\n");
            }
        }
    }

    fn auth_response(&mut self, line: &[u8]) {
        self.phase = Phase::Authorization { user: None };
        if line == b"*" {
            return self.err(None, "Authentication cancelled");
        }
        self.auth_plain(line);
    }

    /// `message = [authzid] UTF8NUL authcid UTF8NUL passwd` (RFC 4616),
    /// in base64; `=` is the empty response (RFC 5034 section 4).
    fn auth_plain(&mut self, b64: &[u8]) {
        let decoded = if b64 == b"=" {
            Some(Vec::new())
        } else {
            BASE64.decode(b64).ok()
        };
        let Some(message) = decoded.and_then(|d| String::from_utf8(d).ok()) else {
            return self.bad_command("Malformed authentication response");
        };
        let mut parts = message.split('\0');
        let (Some(authzid), Some(authcid), Some(passwd), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return self.bad_command("Malformed authentication response");
        };
        if authcid.is_empty() {
            return self.bad_command("Malformed authentication response");
        }
        let authzid = (!authzid.is_empty() && authzid != authcid).then(|| authzid.to_owned());
        self.login(
            LoginMethod::Plain,
            authzid,
            authcid.to_owned(),
            Secret::new(passwd),
        );
    }

    fn stls(&mut self) {
        if !matches!(self.phase, Phase::Authorization { .. }) {
            return self.bad_command("Command not valid in this state");
        }
        if self.tls {
            return self.bad_command("Command not permitted when TLS active");
        }
        if !self.config.stls {
            return self.bad_command("TLS not available");
        }
        self.ok("Begin TLS negotiation");
        // Everything the client pipelined after STLS is dropped.
        self.input.clear();
        self.scanned = 0;
        self.discarding = None;
        self.phase = Phase::AwaitingTls;
        self.events.push_back(Event::StartTls);
    }

    /// A TRANSACTION command on the session's own listing.
    fn transaction(&mut self, command: Command) {
        let Some(state) = self.marked.as_mut() else {
            return;
        };
        match command {
            Command::Stat => {
                let text = format!("{} {}", state.count(), state.size());
                self.ok(&text);
            }
            Command::List(None) => {
                let text = counts(state);
                let lines = listing(state, |n, entry| format!("{n} {}\r\n", entry.size));
                self.ok(&text);
                self.multiline(&lines);
            }
            Command::Uidl(None) => {
                let lines = listing(state, |n, entry| format!("{n} {}\r\n", entry.uid));
                self.ok("");
                self.multiline(&lines);
            }
            Command::List(Some(n)) => match state.live(n) {
                Ok(entry) => {
                    let text = format!("{n} {}", entry.size);
                    self.ok(&text);
                }
                Err(text) => self.err(None, &text),
            },
            Command::Uidl(Some(n)) => match state.live(n) {
                Ok(entry) => {
                    let text = format!("{n} {}", entry.uid);
                    self.ok(&text);
                }
                Err(text) => self.err(None, &text),
            },
            Command::Dele(n) => match state.delete(n) {
                Ok(()) => self.ok(&format!("Message {n} deleted")),
                Err(text) => self.err(None, &text),
            },
            Command::Rset => {
                state.undelete_all();
                let text = summary(state);
                self.ok(&text);
            }
            Command::Retr(n) => self.retrieve(n, None),
            Command::Top { message, lines } => self.retrieve(message, Some(lines)),
            Command::Noop => self.ok(""),
            _ => self.bad_command("Command not valid in this state"),
        }
    }

    fn multiline(&mut self, lines: &[u8]) {
        self.out.extend_from_slice(lines);
        self.out.extend_from_slice(b".\r\n");
    }

    fn retrieve(&mut self, message: u32, top: Option<u32>) {
        let found = match &self.marked {
            Some(state) => state.live(message).map(|e| (e.size, e.uid.clone())),
            None => Err("No such message".to_owned()),
        };
        let (size, uid) = match found {
            Ok(found) => found,
            Err(text) => return self.err(None, &text),
        };
        let id = self.decide(Pending::Retrieve(Retrieval {
            size,
            top: top.is_some(),
            stuffer: DotStuffer::new(top),
            started: false,
        }));
        self.events.push_back(Event::Retrieve(RetrieveRequest {
            id,
            message,
            size,
            uid,
            top,
        }));
    }
}

/// Writes the `+OK` line of RETR or TOP once.
fn start_retrieval(retrieval: &mut Retrieval, out: &mut Vec<u8>) {
    if retrieval.started {
        return;
    }
    retrieval.started = true;
    if retrieval.top {
        out.extend_from_slice(b"+OK Top of message follows\r\n");
    } else {
        out.extend_from_slice(format!("+OK {} octets\r\n", retrieval.size).as_bytes());
    }
}

/// The lines of a LIST or UIDL listing of the live messages.
fn listing(state: &Marked, line: impl Fn(u32, &MaildropEntry) -> String) -> Vec<u8> {
    let mut lines = Vec::new();
    for (n, entry) in state.maildrop.iter().filter(|(n, _)| !state.is_deleted(*n)) {
        lines.extend_from_slice(line(n, entry).as_bytes());
    }
    lines
}

/// `N messages (M octets)`.
fn counts(state: &Marked) -> String {
    let count = state.count();
    let noun = if count == 1 { "message" } else { "messages" };
    format!("{count} {noun} ({} octets)", state.size())
}

/// `Maildrop has N messages (M octets)`, as after login and RSET.
fn summary(state: &Marked) -> String {
    format!("Maildrop has {}", counts(state))
}
