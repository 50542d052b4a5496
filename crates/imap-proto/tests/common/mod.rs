//! A scripted host for the session tests: it answers every decision the
//! same way whatever the input split, and records events and wire bytes.
#![allow(dead_code, unreachable_pub)]

use std::num::NonZeroU32;
use std::time::Instant;

use bytes::Bytes;
use ironpost_imap_proto::response::{Delimiter, MailboxAttribute, Rendered};
use ironpost_imap_proto::types::{DateTime, Mailbox, PermanentFlag, SequenceSet};
use ironpost_imap_proto::{
    Code, CommandBody, Data, Event, FetchItem, ServerConfig, ServerSession, Status, StatusKind,
};

pub fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

/// A configuration without TLS requirements, as most tests want.
pub fn config() -> ServerConfig {
    let mut config = ServerConfig::default();
    config.login_requires_tls = false;
    config
}

pub const HEADER: &[u8] = b"Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\n\
From: Terry Gray <gray@cac.washington.edu>\r\n\
Subject: IMAP4rev1 WG mtg summary and minutes\r\n\
To: imap@cac.washington.edu\r\n\
cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>\r\n\
Message-Id: <B27397-0100000@cac.washington.edu>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n\r\n";

pub const ENVELOPE: &[u8] = b"(\"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\" \
\"IMAP4rev1 WG mtg summary and minutes\" \
((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) \
((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) \
((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) \
((NIL NIL \"imap\" \"cac.washington.edu\")) \
((NIL NIL \"minutes\" \"CNRI.Reston.VA.US\")(\"John Klensin\" NIL \"KLENSIN\" \"MIT.EDU\")) \
NIL NIL \"<B27397-0100000@cac.washington.edu>\")";

pub const BODY: &[u8] = b"(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 3028 92)";

/// The host: records events (consecutive APPEND chunks merged, so that
/// the record does not depend on read sizes).
#[derive(Debug, Default)]
pub struct Host {
    pub events: Vec<String>,
    pub tls_requested: bool,
}

impl Host {
    fn record(&mut self, line: String) {
        if let (Some(last), Some(more)) = (self.events.last_mut(), line.strip_prefix("chunk "))
            && let Some(prev) = last.strip_prefix("chunk ")
        {
            *last = format!("chunk {prev}{more}");
            return;
        }
        self.events.push(line);
    }

    pub fn answer(&mut self, s: &mut ServerSession) {
        while let Some(event) = s.poll_event() {
            match event {
                Event::Connect(req) => {
                    self.record("connect".into());
                    s.accept_connection(req).unwrap();
                }
                Event::Login(req) => {
                    let user = String::from_utf8_lossy(req.username.as_bytes()).into_owned();
                    self.record(format!("login {user} {:?}", req.mechanism));
                    if req.password.expose() == b"secret" {
                        s.accept_login(req).unwrap();
                    } else {
                        let no = Status::no("Authentication failed")
                            .with_code(Code::AuthenticationFailed);
                        s.reject_login(req, no).unwrap();
                    }
                }
                Event::Request(req) => {
                    self.record(format!("request {}", req.command.name()));
                    self.request(s, req);
                }
                Event::Append(req) => {
                    let mailbox = String::from_utf8_lossy(req.mailbox.as_bytes()).into_owned();
                    self.record(format!("append {mailbox} {}", req.size));
                    match mailbox.as_str() {
                        "full" => {
                            let no = Status::no("Over quota").with_code(Code::OverQuota);
                            s.reject_append(req, no).unwrap();
                        }
                        "nope" => {
                            let no = Status::no("No such mailbox").with_code(Code::TryCreate);
                            s.reject_append(req, no).unwrap();
                        }
                        _ => s.accept_append(req).unwrap(),
                    }
                }
                Event::AppendChunk(bytes) => {
                    self.record(format!("chunk {}", bytes.escape_ascii()));
                }
                Event::AppendEnd(req) => {
                    self.record("append end".into());
                    let ok = Status::ok("APPEND completed").with_code(Code::AppendUid {
                        uid_validity: nz(38505),
                        uids: SequenceSet::single(nz(3955)),
                    });
                    s.complete_append(req, ok).unwrap();
                }
                Event::AppendAborted => self.record("append aborted".into()),
                Event::Idle(req) => {
                    self.record("idle".into());
                    s.accept_idle(req).unwrap();
                    s.push(Data::Exists(19)).unwrap();
                }
                Event::IdleDone(req) => {
                    self.record(format!("idle done {}", req.done));
                    s.complete_idle(req).unwrap();
                }
                Event::ClientId(id) => self.record(format!("id {}", id.map_or(0, |v| v.len()))),
                Event::Enabled(caps) => self.record(format!("enabled {}", caps.len())),
                Event::StartTls => {
                    self.record("starttls".into());
                    self.tls_requested = true;
                }
                Event::Closed => self.record("closed".into()),
                other => self.record(format!("{other:?}")),
            }
        }
    }

    fn request(&mut self, s: &mut ServerSession, req: ironpost_imap_proto::Request) {
        let name = req.command.name();
        let done = Status::ok(&format!("{name} completed"));
        match &req.command {
            CommandBody::Select { mailbox } | CommandBody::Examine { mailbox } => {
                if !mailbox.is_inbox() {
                    let no = Status::no("No such mailbox").with_code(Code::NonExistent);
                    return s.complete(req, no).unwrap();
                }
                s.respond(&req, Data::Exists(18)).unwrap();
                s.respond(
                    &req,
                    Data::Flags(vec![
                        ironpost_imap_proto::types::Flag::Answered,
                        ironpost_imap_proto::types::Flag::Flagged,
                        ironpost_imap_proto::types::Flag::Deleted,
                        ironpost_imap_proto::types::Flag::Seen,
                        ironpost_imap_proto::types::Flag::Draft,
                    ]),
                )
                .unwrap();
                s.respond(&req, Data::Recent(2)).unwrap();
                s.push_status(
                    Status::ok("Message 17 is the first unseen message")
                        .with_code(Code::Unseen(nz(17))),
                )
                .unwrap();
                s.push_status(
                    Status::ok("UIDs valid").with_code(Code::UidValidity(nz(3857529045))),
                )
                .unwrap();
                let code = if matches!(req.command, CommandBody::Examine { .. }) {
                    Code::ReadOnly
                } else {
                    s.push_status(Status::ok("Limited").with_code(Code::PermanentFlags(vec![
                        PermanentFlag::Flag(ironpost_imap_proto::types::Flag::Deleted),
                        PermanentFlag::Flag(ironpost_imap_proto::types::Flag::Seen),
                        PermanentFlag::AnyKeyword,
                    ])))
                    .unwrap();
                    Code::ReadWrite
                };
                let ok = Status::ok(&format!("{name} completed")).with_code(code);
                s.complete(req, ok).unwrap();
            }
            CommandBody::Fetch { items, .. } => {
                let attrs = items.attributes();
                let mut out = Vec::new();
                use ironpost_imap_proto::types::FetchAttribute as A;
                for a in attrs {
                    out.push(match a {
                        A::Flags => FetchItem::Flags(vec![ironpost_imap_proto::types::Flag::Seen]),
                        A::InternalDate => FetchItem::InternalDate(
                            DateTime::new(
                                ironpost_imap_proto::types::Date::new(1996, 7, 17).unwrap(),
                                2,
                                44,
                                25,
                                -7 * 60,
                            )
                            .unwrap(),
                        ),
                        A::Rfc822Size => FetchItem::Rfc822Size(4286),
                        A::Envelope => FetchItem::Envelope(Rendered::new(ENVELOPE).unwrap()),
                        A::Body => FetchItem::Body(Rendered::new(BODY).unwrap()),
                        A::BodySection { section, .. } => FetchItem::BodySection {
                            section,
                            origin: None,
                            data: Some(Bytes::from_static(HEADER)),
                        },
                        A::Uid => FetchItem::Uid(nz(1000)),
                        _ => continue,
                    });
                }
                s.respond(
                    &req,
                    Data::Fetch {
                        seq: nz(12),
                        items: out,
                    },
                )
                .unwrap();
                s.complete(req, done).unwrap();
            }
            CommandBody::Store { .. } => {
                let flags = vec![
                    ironpost_imap_proto::types::Flag::Seen,
                    ironpost_imap_proto::types::Flag::Deleted,
                ];
                let items = vec![FetchItem::Flags(flags)];
                s.respond(&req, Data::Fetch { seq: nz(12), items }).unwrap();
                s.complete(req, done).unwrap();
            }
            CommandBody::Copy { mailbox, .. } | CommandBody::Move { mailbox, .. }
                if mailbox.as_bytes() == b"nope" =>
            {
                let no = Status::no("No such mailbox").with_code(Code::TryCreate);
                s.complete(req, no).unwrap();
            }
            CommandBody::List { .. } => {
                s.respond(
                    &req,
                    Data::List {
                        attributes: vec![MailboxAttribute::HasNoChildren],
                        delimiter: Some(Delimiter::new(b'/').unwrap()),
                        mailbox: Mailbox::inbox(),
                    },
                )
                .unwrap();
                s.complete(req, done).unwrap();
            }
            CommandBody::Search { .. } => {
                s.respond(&req, Data::Search(vec![nz(2), nz(84), nz(882)]))
                    .unwrap();
                s.complete(req, done).unwrap();
            }
            _ => s.complete(req, done).unwrap(),
        }
    }
}

/// Runs a session over `pieces` (each given to `handle_input` alone);
/// returns the events and the bytes sent. A STARTTLS request is completed
/// before the next piece.
pub fn run_with(config: ServerConfig, pieces: &[&[u8]]) -> (Vec<String>, Vec<u8>) {
    let now = Instant::now();
    let mut session = ServerSession::new(config, now);
    let mut host = Host::default();
    let mut wire = Vec::new();
    host.answer(&mut session);
    let _ = session.poll_transmit(&mut wire);
    for piece in pieces {
        if session.is_closed() {
            break;
        }
        if piece.is_empty() && host.tls_requested {
            // An empty piece stands for the end of the TLS handshake.
            host.tls_requested = false;
            session.tls_established().unwrap();
        } else {
            session.handle_input(now, piece);
        }
        host.answer(&mut session);
        let _ = session.poll_transmit(&mut wire);
    }
    (host.events, wire)
}

/// The same input whole, byte by byte, and with trailing data after it
/// (a command that never ends); all three must agree. Empty strings in
/// `parts` mark the end of a TLS handshake.
pub fn three_ways(config: &ServerConfig, parts: &[&[u8]]) -> (Vec<String>, Vec<u8>) {
    let whole = run_with(config.clone(), parts);
    let mut bytes: Vec<&[u8]> = Vec::new();
    for part in parts {
        if part.is_empty() {
            bytes.push(part);
        } else {
            bytes.extend(part.chunks(1));
        }
    }
    let by_byte = run_with(config.clone(), &bytes);
    assert_eq!(by_byte.0, whole.0, "events, byte by byte");
    assert_eq!(
        String::from_utf8_lossy(&by_byte.1),
        String::from_utf8_lossy(&whole.1),
        "wire, byte by byte"
    );
    let mut trailing: Vec<&[u8]> = parts.to_vec();
    trailing.push(b"z9 NOOP trailing");
    let with_trailing = run_with(config.clone(), &trailing);
    assert_eq!(with_trailing, whole, "with trailing data");
    whole
}

pub fn ok_kind() -> StatusKind {
    StatusKind::Ok
}
