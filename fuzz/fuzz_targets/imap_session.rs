//! The IMAP server session on arbitrary client bytes: never panics, every
//! response it writes parses, at most one decision is outstanding, an
//! accepted IDLE ends with an `IdleDone` decision (or the session's end), no
//! timeout fires early and the one due fires, and it gives the same events
//! and bytes whether the input comes whole or in the pieces the fuzzer
//! chose, with time passing between them and some decisions answered only
//! after more input came.
//!
//! Input: a flag byte, a limit byte, a count of piece lengths, the piece
//! lengths (each also a time step: the length in tenths of a second), then
//! the client's bytes.
#![no_main]

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use ironpost_imap_proto::response::{Delimiter, MailboxAttribute, NamespaceDescription, Rendered};
use ironpost_imap_proto::session::{
    AppendEndRequest, AppendRequest, IdleDoneRequest, IdleRequest, LoginRequest,
};
use ironpost_imap_proto::types::{
    AString, Atom, Date, DateTime, FetchAttribute, Flag, Mailbox, PermanentFlag, SequenceSet, Tag,
};
use ironpost_imap_proto::{
    Code, CommandBody, Data, Event, FetchItem, Limits, Mechanism, Request, Response, ServerConfig,
    ServerSession, Status,
};
use libfuzzer_sys::fuzz_target;

const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);
const AUTOLOGOUT: Duration = Duration::from_secs(60);

/// The longest time step between pieces: below both timeouts, so none may
/// fire while input keeps coming.
fn step(cut: usize) -> Duration {
    Duration::from_millis(100 * (cut % 256) as u64)
}

/// Events handled before the session must have settled.
const DRAIN_CAP: usize = 100_000;

const ENVELOPE: &[u8] = b"(\"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\" \"IMAP4rev1 WG mtg \
summary and minutes\" ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) NIL NIL \
((NIL NIL \"imap\" \"cac.washington.edu\")) NIL NIL NIL \"<B27397-0100000@cac.washington.edu>\")";
const BODY: &[u8] = b"(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 3028 92)";
/// Section data with 8-bit octets and a NUL (sent as 0x80, or literal8 for
/// BINARY).
const MESSAGE: &[u8] = b"Subject: caf\xc3\xa9\r\n\r\nx\0y {3}\r\n";

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("not zero")
}

fn atom(s: &str) -> Atom {
    Atom::new(s).expect("an atom")
}

fn config(flags: u8, limit: u8) -> ServerConfig {
    let mut config = ServerConfig::default();
    config.login_requires_tls = flags & 1 != 0;
    config.starttls = flags & 2 != 0;
    config.tls_active = flags & 4 != 0;
    if flags & 8 != 0 {
        config.mechanisms = vec![Mechanism::Plain];
    }
    if flags & 16 != 0 {
        config.enableable = vec![atom("CONDSTORE"), atom("UTF8=ACCEPT")];
    }
    let mut limits = Limits::default();
    let small = flags & 32 != 0;
    limits.line = if small { 64 } else { 1024 };
    limits.auth_line = if small { 128 } else { 2048 };
    limits.unterminated_line = if small { 256 } else { 4096 };
    limits.literal = 16 << (limit >> 6);
    limits.literals = 1 + usize::from(limit & 7);
    limits.command = 2048;
    limits.message_size = if flags & 64 != 0 { 32 } else { 4096 };
    limits.output = if flags & 128 != 0 { 64 } else { 1 << 20 };
    limits.bad_commands = 3 + usize::from((limit >> 3) & 7) * 4;
    limits.login_timeout = LOGIN_TIMEOUT;
    limits.autologout = AUTOLOGOUT;
    config.limits = limits;
    config
}

/// A decision the host holds until after the next piece of input.
#[derive(Debug)]
enum Held {
    Login(LoginRequest),
    Request(Request),
    Append(AppendRequest),
    AppendEnd(AppendEndRequest),
    Idle(IdleRequest),
    IdleDone(IdleDoneRequest),
}

/// The host: a fixed policy, keyed on what the client sent (never on how
/// it arrived). A tag starting with `d` has its decision held back, `n` gets
/// `NO`, `x` gets `BAD`.
#[derive(Default)]
struct Host {
    log: Vec<String>,
    wire: Vec<u8>,
    held: Option<Held>,
    appends: u32,
    /// Log and wire lengths when STARTTLS was answered: what comes after
    /// depends on how the input was split.
    starttls: Option<(usize, usize)>,
    /// IDLE was accepted and has not ended (RFC 2177: only a line from the
    /// client ends it, and that line is an `IdleDone` decision).
    idling: bool,
}

fn first(tag: &Tag) -> u8 {
    tag.as_str().as_bytes()[0].to_ascii_lowercase()
}

fn done(tag: &Tag, name: &str) -> Status {
    match first(tag) {
        b'n' => Status::no(&format!("{name} failed")),
        b'x' => Status::bad(&format!("{name} refused")),
        _ => Status::ok(&format!("{name} completed")),
    }
}

impl Host {
    fn record(&mut self, line: String) {
        self.log.push(line);
    }

    /// Answers every event until the session has nothing more to say.
    fn drain(&mut self, s: &mut ServerSession) {
        let mut settled = false;
        for _ in 0..DRAIN_CAP {
            s.poll_transmit(&mut self.wire);
            let Some(event) = s.poll_event() else {
                settled = true;
                break;
            };
            let decision = matches!(
                event,
                Event::Connect(_)
                    | Event::Login(_)
                    | Event::Request(_)
                    | Event::Append(_)
                    | Event::AppendEnd(_)
                    | Event::Idle(_)
                    | Event::IdleDone(_)
            );
            assert!(
                !(decision && self.held.is_some()),
                "a second decision while one is outstanding: {event:?}"
            );
            if decision && self.idling {
                assert!(
                    matches!(event, Event::IdleDone(_)),
                    "IDLE ended without IdleDone: {event:?}"
                );
            }
            self.event(s, event);
        }
        assert!(settled, "the session did not settle");
        s.poll_transmit(&mut self.wire);
        if !s.is_closed() && self.held.is_none() {
            assert!(s.wants_input(), "drained but not reading");
        }
    }

    fn event(&mut self, s: &mut ServerSession, event: Event) {
        match event {
            Event::Connect(req) => {
                self.record("connect".into());
                s.accept_connection(req).unwrap();
            }
            Event::Login(req) => {
                self.record(format!(
                    "login {:?} {:?} {:?}",
                    req.mechanism, req.authzid, req.username
                ));
                self.hold_or(s, Held::Login(req));
            }
            Event::Request(req) => {
                self.record(format!("request {} {:?}", req.tag, req.command));
                self.hold_or(s, Held::Request(req));
            }
            Event::Append(req) => {
                self.record(format!(
                    "append {:?} {:?} {:?} {}",
                    req.mailbox, req.flags, req.date, req.size
                ));
                self.hold_or(s, Held::Append(req));
            }
            Event::AppendChunk(bytes) => {
                // Chunk sizes follow the reads: merge them.
                if let Some(previous) = self.log.last_mut()
                    && previous.starts_with("chunk ")
                {
                    previous.push_str(&bytes.escape_ascii().to_string());
                } else {
                    self.record(format!("chunk {}", bytes.escape_ascii()));
                }
            }
            Event::AppendEnd(req) => {
                self.record(format!("append end {}", req.tag));
                self.hold_or(s, Held::AppendEnd(req));
            }
            Event::AppendAborted => self.record("append aborted".into()),
            Event::Idle(req) => {
                self.record(format!("idle {}", req.tag));
                self.hold_or(s, Held::Idle(req));
            }
            Event::IdleDone(req) => {
                self.idling = false;
                self.record(format!("idle done {} {}", req.tag, req.done));
                self.hold_or(s, Held::IdleDone(req));
            }
            Event::ClientId(id) => self.record(format!("id {id:?}")),
            Event::Enabled(caps) => self.record(format!("enabled {caps:?}")),
            Event::StartTls => {
                self.record("starttls".into());
                s.poll_transmit(&mut self.wire);
                if self.starttls.is_none() {
                    self.starttls = Some((self.log.len(), self.wire.len()));
                }
                assert!(!s.wants_input(), "no reading during the handshake");
                s.tls_established().unwrap();
                assert!(s.is_tls());
            }
            Event::Closed => {
                self.idling = false;
                assert!(s.is_closed());
                self.record("closed".into());
            }
            other => self.record(format!("{other:?}")),
        }
    }

    fn hold_or(&mut self, s: &mut ServerSession, held: Held) {
        let tag = match &held {
            Held::Login(r) => &r.tag,
            Held::Request(r) => &r.tag,
            Held::Append(r) => &r.tag,
            Held::AppendEnd(r) => &r.tag,
            Held::Idle(r) => &r.tag,
            Held::IdleDone(r) => &r.tag,
        };
        if first(tag) == b'd' {
            assert!(
                s.poll_timeout().is_none(),
                "no timeout while the host decides"
            );
            self.held = Some(held);
        } else {
            self.answer(s, held);
        }
    }

    /// Answers a held decision, if any.
    fn release(&mut self, s: &mut ServerSession) {
        if let Some(held) = self.held.take() {
            self.record("released".into());
            self.answer(s, held);
        }
    }

    fn answer(&mut self, s: &mut ServerSession, held: Held) {
        match held {
            Held::Login(req) => {
                if req.password.expose() == b"secret" {
                    s.accept_login(req).unwrap();
                    assert!(s.user().is_some());
                } else {
                    let no =
                        Status::no("Authentication failed").with_code(Code::AuthenticationFailed);
                    s.reject_login(req, no).unwrap();
                }
            }
            Held::Request(req) => self.request(s, req),
            Held::Append(req) => match req.mailbox.as_bytes() {
                b"full" => {
                    let no = Status::no("Over quota").with_code(Code::OverQuota);
                    s.reject_append(req, no).unwrap();
                }
                b"nope" => {
                    let no = Status::no("No such mailbox").with_code(Code::TryCreate);
                    s.reject_append(req, no).unwrap();
                }
                _ => s.accept_append(req).unwrap(),
            },
            Held::AppendEnd(req) => {
                self.appends += 1;
                let status = done(&req.tag, "APPEND");
                let status = if status.kind == ironpost_imap_proto::StatusKind::Ok {
                    status.with_code(Code::AppendUid {
                        uid_validity: nz(7),
                        uids: SequenceSet::single(nz(self.appends)),
                    })
                } else {
                    status
                };
                s.complete_append(req, status).unwrap();
            }
            Held::Idle(req) => {
                if first(&req.tag) == b'n' {
                    s.reject_idle(req, Status::no("No IDLE now")).unwrap();
                } else {
                    // Pushed before the answer: what follows it comes
                    // with the pipelined input, which depends on the reads.
                    s.push(Data::Exists(5)).unwrap();
                    self.idling = true;
                    s.accept_idle(req).unwrap();
                }
            }
            Held::IdleDone(req) => {
                s.push(Data::Expunge(nz(2))).unwrap();
                s.complete_idle(req).unwrap();
            }
        }
    }

    fn request(&mut self, s: &mut ServerSession, req: Request) {
        use CommandBody as C;
        let status = done(&req.tag, req.command.name());
        let failed = status.kind != ironpost_imap_proto::StatusKind::Ok;
        let mut data = Vec::new();
        let mut status = Some(status);
        match &req.command {
            C::Select { mailbox } | C::Examine { mailbox } => {
                if mailbox.as_bytes() == b"nope" {
                    status = Some(Status::no("No such mailbox").with_code(Code::NonExistent));
                } else if !failed {
                    data.push(Data::Flags(vec![Flag::Seen, Flag::Deleted]));
                    data.push(Data::Exists(3));
                    data.push(Data::Recent(1));
                    s.push_status(Status::ok("UIDs valid").with_code(Code::UidValidity(nz(7))))
                        .unwrap();
                    s.push_status(Status::ok("Limited").with_code(Code::PermanentFlags(vec![
                        PermanentFlag::Flag(Flag::Seen),
                        PermanentFlag::AnyKeyword,
                    ])))
                    .unwrap();
                    let read_only =
                        matches!(req.command, C::Examine { .. }) || mailbox.as_bytes() == b"ro";
                    let code = if read_only {
                        Code::ReadOnly
                    } else {
                        Code::ReadWrite
                    };
                    status = status.map(|st| st.with_code(code));
                }
            }
            C::Fetch { items, .. } => {
                let items: Vec<FetchItem> =
                    items.attributes().into_iter().filter_map(item).collect();
                if !items.is_empty() {
                    data.push(Data::Fetch { seq: nz(1), items });
                }
            }
            C::Store { action, .. } => {
                let items = vec![FetchItem::Flags(action.flags.clone())];
                data.push(Data::Fetch { seq: nz(2), items });
            }
            C::Search { .. } => data.push(Data::Search(vec![nz(1), nz(3)])),
            C::Sort { .. } => data.push(Data::Sort(vec![nz(3), nz(1)])),
            C::List { reference, pattern } | C::Lsub { reference, pattern } => {
                let list = matches!(req.command, C::List { .. });
                for (attributes, mailbox) in [
                    (vec![MailboxAttribute::HasNoChildren], Mailbox::inbox()),
                    (vec![], reference.clone()),
                    (
                        vec![MailboxAttribute::from_name(atom("Sent"))],
                        Mailbox::new(pattern.as_astring().clone()),
                    ),
                ] {
                    let delimiter = Some(Delimiter::new(b'/').unwrap());
                    data.push(if list {
                        Data::List {
                            attributes,
                            delimiter,
                            mailbox,
                        }
                    } else {
                        Data::Lsub {
                            attributes,
                            delimiter,
                            mailbox,
                        }
                    });
                }
            }
            C::Status { mailbox, items } => data.push(Data::Status {
                mailbox: mailbox.clone(),
                items: items.iter().map(|&i| (i, 5)).collect(),
            }),
            C::Copy { mailbox, set, .. } | C::Move { mailbox, set, .. } => {
                if mailbox.as_bytes() == b"nope" {
                    status = Some(Status::no("No such mailbox").with_code(Code::TryCreate));
                } else if !failed {
                    status = status.map(|st| {
                        st.with_code(Code::CopyUid {
                            uid_validity: nz(7),
                            source: set.clone(),
                            destination: SequenceSet::range(nz(10), nz(12)),
                        })
                    });
                    if matches!(req.command, C::Move { .. }) {
                        data.push(Data::Expunge(nz(1)));
                    }
                }
            }
            C::Expunge | C::UidExpunge(_) => data.push(Data::Expunge(nz(1))),
            C::Noop | C::Check => {
                data.push(Data::Exists(4));
                data.push(Data::Fetch {
                    seq: nz(1),
                    items: vec![FetchItem::Flags(vec![Flag::Keyword(atom("$Forwarded"))])],
                });
            }
            C::Namespace => data.push(Data::Namespace {
                personal: Some(vec![NamespaceDescription {
                    prefix: AString::default(),
                    delimiter: Some(Delimiter::new(b'/').unwrap()),
                }]),
                other: None,
                shared: None,
            }),
            C::GetQuota { root } => data.push(quota(root.clone())),
            C::GetQuotaRoot { mailbox } => {
                data.push(Data::QuotaRoot {
                    mailbox: mailbox.clone(),
                    roots: vec![AString::default()],
                });
                data.push(quota(AString::default()));
            }
            _ => {}
        }
        for d in data {
            s.respond(&req, d).unwrap();
        }
        s.complete(req, status.expect("a status")).unwrap();
    }
}

fn quota(root: AString) -> Data {
    Data::Quota {
        root,
        resources: vec![ironpost_imap_proto::response::QuotaResource {
            name: atom("STORAGE"),
            usage: 1,
            limit: 100,
        }],
    }
}

/// What the host sends for one FETCH attribute.
fn item(attribute: FetchAttribute) -> Option<FetchItem> {
    let data = |partial: Option<ironpost_imap_proto::types::Partial>| {
        let bytes = match partial {
            Some(p) => {
                let start = (p.origin as usize).min(MESSAGE.len());
                let end = start
                    .saturating_add(p.length.get() as usize)
                    .min(MESSAGE.len());
                &MESSAGE[start..end]
            }
            None => MESSAGE,
        };
        Some(bytes.to_vec().into())
    };
    Some(match attribute {
        FetchAttribute::Envelope => FetchItem::Envelope(Rendered::new(ENVELOPE).unwrap()),
        FetchAttribute::Flags => FetchItem::Flags(vec![Flag::Seen, Flag::Recent]),
        FetchAttribute::InternalDate => FetchItem::InternalDate(
            DateTime::new(Date::new(1996, 7, 17).unwrap(), 2, 44, 25, -420).unwrap(),
        ),
        FetchAttribute::Rfc822 => FetchItem::Rfc822(data(None)),
        FetchAttribute::Rfc822Header => FetchItem::Rfc822Header(None),
        FetchAttribute::Rfc822Size => FetchItem::Rfc822Size(MESSAGE.len() as u32),
        FetchAttribute::Rfc822Text => FetchItem::Rfc822Text(data(None)),
        FetchAttribute::Body => FetchItem::Body(Rendered::new(BODY).unwrap()),
        FetchAttribute::BodyStructure => FetchItem::BodyStructure(Rendered::new(BODY).unwrap()),
        FetchAttribute::Uid => FetchItem::Uid(nz(1000)),
        FetchAttribute::BodySection {
            section, partial, ..
        } => FetchItem::BodySection {
            section,
            origin: partial.map(|p| p.origin),
            data: data(partial),
        },
        FetchAttribute::Binary { part, partial, .. } => FetchItem::Binary {
            part,
            origin: partial.map(|p| p.origin),
            data: data(partial),
        },
        FetchAttribute::BinarySize { part } => FetchItem::BinarySize {
            part,
            size: MESSAGE.len() as u32,
        },
        _ => return None,
    })
}

/// Splits the server's bytes into responses (lines, and the literals they
/// announce at their ends) and checks that each parses.
fn check_responses(wire: &[u8]) {
    let mut start = 0;
    let mut at = 0;
    while at < wire.len() {
        let Some(lf) = wire[at..].iter().position(|&b| b == b'\n') else {
            panic!(
                "the output ends inside a line: {:?}",
                wire[start..].escape_ascii().to_string()
            );
        };
        let end = at + lf + 1;
        let line = &wire[at..end];
        assert!(
            line.ends_with(b"\r\n"),
            "bare LF: {:?}",
            line.escape_ascii().to_string()
        );
        if let Some(n) = announced(line) {
            at = end + n;
            assert!(at <= wire.len(), "a literal cut short");
            continue;
        }
        let response = &wire[start..end];
        assert!(
            Response::parse(response).is_some(),
            "does not parse: {:?}",
            response.escape_ascii().to_string()
        );
        start = end;
        at = end;
    }
}

/// The length of the literal `{n}` a line ends with.
fn announced(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"}\r\n")?;
    let digits = line.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    let open = line.len().checked_sub(digits + 1)?;
    if digits == 0 || line[open] != b'{' {
        return None;
    }
    std::str::from_utf8(&line[open + 1..]).ok()?.parse().ok()
}

/// Runs a session; `cuts` are piece lengths. Returns the host's record.
fn run(input: &[u8], cuts: &[usize], flags: u8, limit: u8) -> Host {
    let mut now = Instant::now();
    let mut session = ServerSession::new(config(flags, limit), now);
    let mut host = Host::default();
    host.drain(&mut session);
    let mut rest = input;
    let mut cuts = cuts.iter().cycle();
    while !rest.is_empty() && !session.is_closed() {
        let cut = *cuts.next().unwrap_or(&1);
        let n = cut.max(1).min(rest.len());
        now += step(cut);
        // No timeout is due: the last input is more recent than that.
        if let Some(deadline) = session.poll_timeout() {
            assert!(deadline > now, "a timeout due while the client is active");
        }
        session.handle_timeout(now);
        assert!(!session.is_closed(), "closed early");
        session.handle_input(now, &rest[..n]);
        rest = &rest[n..];
        // A decision held back is answered once more input has come.
        host.release(&mut session);
        host.drain(&mut session);
    }
    while host.held.is_some() {
        host.release(&mut session);
        host.drain(&mut session);
    }
    // Time passes: the timeout fires when due, not before.
    if let Some(deadline) = session.poll_timeout() {
        assert!(!session.is_closed());
        session.handle_timeout(deadline - Duration::from_millis(1));
        assert!(!session.is_closed(), "the timeout fired early");
        session.handle_timeout(deadline);
        assert!(session.is_closed(), "the timeout did not fire");
        assert!(session.poll_timeout().is_none());
        host.drain(&mut session);
    }
    check_responses(&host.wire);
    host
}

fuzz_target!(|data: &[u8]| {
    let Some((&[flags, limit, ncuts], data)) = data.split_first_chunk::<3>() else {
        return;
    };
    let ncuts = usize::from(ncuts % 32).min(data.len());
    let (cuts, input) = data.split_at(ncuts);
    let whole = run(input, &[usize::MAX], flags, limit);
    let cuts: Vec<usize> = cuts.iter().map(|&c| usize::from(c)).collect();
    let pieces = run(
        input,
        if cuts.is_empty() { &[1] } else { &cuts },
        flags,
        limit,
    );
    // After STARTTLS what was pipelined behind it is dropped, and how much
    // that is depends on the reads: compare up to there.
    let (log, wire) = match (whole.starttls, pieces.starttls) {
        (Some(a), Some(b)) => {
            assert_eq!(a, b, "STARTTLS answered at different points");
            a
        }
        (None, None) => (usize::MAX, usize::MAX),
        _ => panic!("STARTTLS in one run only"),
    };
    let cut = |v: &[String]| v[..log.min(v.len())].to_vec();
    assert_eq!(cut(&whole.log), cut(&pieces.log));
    let cut_wire = |w: &[u8]| w[..wire.min(w.len())].escape_ascii().to_string();
    assert_eq!(cut_wire(&whole.wire), cut_wire(&pieces.wire));
});
