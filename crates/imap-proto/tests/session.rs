//! Known-answer tests of the server session: RFC 3501 section 8's sample
//! session, then one case per behaviour. Each runs whole, byte by byte and
//! with trailing data (`common::three_ways`).

mod common;

use std::time::{Duration, Instant};

use common::{HEADER, config, three_ways};
use ironpost_imap_proto::{Event, Limits, ServerConfig, ServerSession, State};

const CAPS: &str = "LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UIDPLUS MOVE QUOTA SORT CHILDREN SPECIAL-USE UNSELECT";

fn greeting() -> String {
    format!("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN AUTH=LOGIN {CAPS}] Ironpost IMAP ready\r\n")
}

fn logged_in(tag: &str) -> String {
    format!("{tag} OK [CAPABILITY IMAP4rev1 {CAPS}] Logged in\r\n")
}

/// The wire after the greeting.
fn after_greeting(config: &ServerConfig, parts: &[&[u8]]) -> (Vec<String>, String) {
    let (events, wire) = three_ways(config, parts);
    let wire = String::from_utf8_lossy(&wire).into_owned();
    let first = wire.find("\r\n").map_or(0, |i| i + 2);
    (events, wire[first..].to_owned())
}

#[test]
fn rfc3501_section_8_sample_session() {
    let client = b"a001 login mrc secret\r\n\
a002 select inbox\r\n\
a003 fetch 12 full\r\n\
a004 fetch 12 body[header]\r\n\
a005 store 12 +flags \\deleted\r\n\
a006 logout\r\n";
    let (events, wire) = three_ways(&config(), &[client]);
    let expected = [
        greeting(),
        logged_in("a001"),
        "* 18 EXISTS\r\n".into(),
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n".into(),
        "* 2 RECENT\r\n".into(),
        "* OK [UNSEEN 17] Message 17 is the first unseen message\r\n".into(),
        "* OK [UIDVALIDITY 3857529045] UIDs valid\r\n".into(),
        "* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited\r\n".into(),
        "a002 OK [READ-WRITE] SELECT completed\r\n".into(),
        format!(
            "* 12 FETCH (FLAGS (\\Seen) INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" \
             RFC822.SIZE 4286 ENVELOPE {} BODY {})\r\n",
            String::from_utf8_lossy(common::ENVELOPE),
            String::from_utf8_lossy(common::BODY)
        ),
        "a003 OK FETCH completed\r\n".into(),
        format!(
            "* 12 FETCH (BODY[HEADER] {{{}}}\r\n{})\r\n",
            HEADER.len(),
            String::from_utf8_lossy(HEADER)
        ),
        "a004 OK FETCH completed\r\n".into(),
        "* 12 FETCH (FLAGS (\\Seen \\Deleted))\r\n".into(),
        "a005 OK STORE completed\r\n".into(),
        "* BYE Logging out\r\n".into(),
        "a006 OK LOGOUT completed\r\n".into(),
    ]
    .concat();
    assert_eq!(String::from_utf8_lossy(&wire), expected);
    assert_eq!(
        HEADER.len(),
        342,
        "the header literal of RFC 3501 section 8"
    );
    assert_eq!(
        events,
        [
            "connect",
            "login mrc None",
            "request SELECT",
            "request FETCH",
            "request FETCH",
            "request STORE",
            "closed"
        ]
    );
}

/// `(name, input parts, expected events after "connect", expected wire
/// after the greeting)`, with the test configuration.
/// One known-answer case.
type Case = (
    &'static str,
    &'static [&'static [u8]],
    &'static [&'static str],
    &'static str,
);

const CASES: &[Case] = &[
    (
        "commands before login are checked for state",
        &[b"a SELECT INBOX\r\nb FETCH 1 FLAGS\r\nc NOOP\r\nd CAPABILITY\r\n"],
        &[],
        "a BAD Command not valid in this state\r\nb BAD Command not valid in this state\r\n\
         c OK NOOP completed\r\n* CAPABILITY IMAP4rev1 AUTH=PLAIN AUTH=LOGIN LITERAL+ SASL-IR ID \
         ENABLE IDLE NAMESPACE UIDPLUS MOVE QUOTA SORT CHILDREN SPECIAL-USE UNSELECT\r\n\
         d OK CAPABILITY completed\r\n",
    ),
    (
        "selected-state commands need a selected mailbox",
        &[b"a LOGIN fred secret\r\nb FETCH 1 FLAGS\r\nc EXAMINE INBOX\r\nd UID FETCH 1:* UID\r\n"],
        &["login fred None", "request EXAMINE", "request UID FETCH"],
        "LOGIN\r\nb BAD Command not valid in this state\r\n* 18 EXISTS\r\n\
         * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n* 2 RECENT\r\n\
         * OK [UNSEEN 17] Message 17 is the first unseen message\r\n\
         * OK [UIDVALIDITY 3857529045] UIDs valid\r\nc OK [READ-ONLY] EXAMINE completed\r\n\
         * 12 FETCH (UID 1000)\r\nd OK UID FETCH completed\r\n",
    ),
    (
        "a failed SELECT leaves the selected state",
        &[b"a LOGIN fred secret\r\nb SELECT INBOX\r\nc SELECT missing\r\nd CLOSE\r\n"],
        &["login fred None", "request SELECT", "request SELECT"],
        "LOGIN\r\n* 18 EXISTS\r\n* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n\
         * 2 RECENT\r\n* OK [UNSEEN 17] Message 17 is the first unseen message\r\n\
         * OK [UIDVALIDITY 3857529045] UIDs valid\r\n\
         * OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited\r\n\
         b OK [READ-WRITE] SELECT completed\r\nc NO [NONEXISTENT] No such mailbox\r\n\
         d BAD Command not valid in this state\r\n",
    ),
    (
        "wrong passwords are refused",
        &[b"a LOGIN fred wrong\r\nb LOGIN {4}\r\nfred {6}\r\nsecret\r\n"],
        &["login fred None", "login fred None"],
        "a NO [AUTHENTICATIONFAILED] Authentication failed\r\n+ Ready for literal data\r\n\
         + Ready for literal data\r\nLOGIN\r\n",
    ),
    (
        "non-synchronising literals need no continuation",
        &[b"a LOGIN {4+}\r\nfred {6+}\r\nsecret\r\n"],
        &["login fred None"],
        "LOGIN\r\n",
    ),
    (
        "a synchronising literal over the limit is refused before it comes",
        &[b"a LOGIN fred {100000}\r\nb NOOP\r\n"],
        &[],
        "a BAD [TOOBIG] Literal too big\r\nb OK NOOP completed\r\n",
    ),
    (
        "a non-synchronising literal over the limit is read and dropped",
        &[b"a LOGIN fred {70000+}\r\n", &[b'x'; 70000], b"\r\nb NOOP\r\n"],
        &[],
        "a BAD [TOOBIG] Literal too big\r\nb OK NOOP completed\r\n",
    ),
    (
        "an over-long line is dropped whole",
        &[&[b'a'; 9000], b"\r\nb NOOP\r\n"],
        &[],
        "* BAD Command refused: line too long\r\nb OK NOOP completed\r\n",
    ),
    (
        "unknown commands and missing tags",
        &[b"a FROB\r\n* NOOP\r\na SELECT\r\n\r\n"],
        &[],
        "a BAD Unknown command\r\n* BAD Missing or invalid tag\r\na BAD Invalid arguments to SELECT\r\n\
         * BAD Missing or invalid tag\r\n",
    ),
    (
        "APPEND streams the message and answers with APPENDUID",
        &[b"a LOGIN fred secret\r\nb APPEND Sent (\\Seen) \" 7-Jul-1996 02:44:25 -0700\" {10}\r\nHello\r\nAll\r\nc NOOP\r\n"],
        &["login fred None", "append Sent 10", "chunk Hello\\r\\nAll", "append end", "request NOOP"],
        "LOGIN\r\n+ Ready for literal data\r\nb OK [APPENDUID 38505 3955] APPEND completed\r\n\
         c OK NOOP completed\r\n",
    ),
    (
        "APPEND refused by the host before the message; a sent one is dropped",
        &[b"a LOGIN fred secret\r\nb APPEND nope {5}\r\nc APPEND full {5+}\r\nb NOOP\r\nd NOOP\r\n"],
        &["login fred None", "append nope 5", "append full 5", "request NOOP"],
        "LOGIN\r\nb NO [TRYCREATE] No such mailbox\r\nc NO [OVERQUOTA] Over quota\r\n\
         d OK NOOP completed\r\n",
    ),
    (
        "APPEND over the message size limit never asks the host",
        &[b"a LOGIN fred secret\r\nb APPEND INBOX {40000000}\r\nc NOOP\r\n"],
        &["login fred None", "request NOOP"],
        "LOGIN\r\nb NO [TOOBIG] Message too big\r\nc OK NOOP completed\r\n",
    ),
    (
        "APPEND before login",
        &[b"b APPEND INBOX {5}\r\nc NOOP\r\n"],
        &[],
        "b BAD Command not valid in this state\r\nc OK NOOP completed\r\n",
    ),
    (
        "APPEND with something after the message is aborted",
        &[b"a LOGIN fred secret\r\nb APPEND INBOX {2+}\r\nhi (\\Seen) x\r\nc NOOP\r\n"],
        &["login fred None", "append INBOX 2", "chunk hi", "append aborted", "request NOOP"],
        "LOGIN\r\nb BAD Invalid arguments to APPEND\r\nc OK NOOP completed\r\n",
    ),
    (
        "AUTHENTICATE PLAIN with a continuation, with SASL-IR, cancelled",
        &[b"a AUTHENTICATE PLAIN\r\nAGZyZWQAd3Jvbmc=\r\nb AUTHENTICATE PLAIN\r\n*\r\nc AUTHENTICATE PLAIN AGZyZWQAc2VjcmV0\r\n"],
        &["login fred Some(Plain)", "login fred Some(Plain)"],
        "+ \r\na NO [AUTHENTICATIONFAILED] Authentication failed\r\n+ \r\n\
         b BAD Authentication cancelled\r\nLOGIN\r\n",
    ),
    (
        "AUTHENTICATE LOGIN and an unknown mechanism",
        &[b"a AUTHENTICATE CRAM-MD5\r\nb AUTHENTICATE LOGIN\r\nZnJlZA==\r\nc2VjcmV0\r\n"],
        &["login fred Some(Login)"],
        "a NO Unsupported authentication mechanism\r\n+ VXNlcm5hbWU6\r\n+ UGFzc3dvcmQ6\r\nLOGIN\r\n",
    ),
    (
        "a malformed SASL response",
        &[b"a AUTHENTICATE PLAIN\r\n!!!\r\nb NOOP\r\n"],
        &[],
        "+ \r\na BAD Invalid SASL response\r\nb OK NOOP completed\r\n",
    ),
    (
        "IDLE until DONE, with an update pushed meanwhile",
        &[b"a LOGIN fred secret\r\nb IDLE\r\nDONE\r\nc NOOP\r\n"],
        &["login fred None", "idle", "idle done true", "request NOOP"],
        "LOGIN\r\n+ idling\r\n* 19 EXISTS\r\nb OK IDLE terminated\r\nc OK NOOP completed\r\n",
    ),
    (
        "IDLE ended by something else than DONE",
        &[b"a LOGIN fred secret\r\nb IDLE\r\nc NOOP\r\n"],
        &["login fred None", "idle", "idle done false"],
        "LOGIN\r\n+ idling\r\n* 19 EXISTS\r\nb BAD Expected DONE\r\n",
    ),
    (
        "ID, ENABLE of nothing known, NAMESPACE for the host",
        &[b"a ID (\"name\" \"mutt\")\r\nb LOGIN fred secret\r\nc ENABLE CONDSTORE\r\nd NAMESPACE\r\n"],
        &["id 1", "login fred None", "request NAMESPACE"],
        "* ID (\"name\" \"Ironpost\")\r\na OK ID completed\r\nLOGIN\r\n* ENABLED\r\n\
         c OK ENABLE completed\r\nd OK NAMESPACE completed\r\n",
    ),
    (
        "COPY to a missing mailbox gets TRYCREATE",
        &[b"a LOGIN fred secret\r\nb SELECT INBOX\r\nc UID COPY 1:3 nope\r\n"],
        &["login fred None", "request SELECT", "request UID COPY"],
        "LOGIN\r\n* 18 EXISTS\r\n* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n\
         * 2 RECENT\r\n* OK [UNSEEN 17] Message 17 is the first unseen message\r\n\
         * OK [UIDVALIDITY 3857529045] UIDs valid\r\n\
         * OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited\r\n\
         b OK [READ-WRITE] SELECT completed\r\nc NO [TRYCREATE] No such mailbox\r\n",
    ),
    (
        "a line with no end closes the session",
        &[&[b'x'; 70000]],
        &["closed"],
        "* BYE Line too long\r\n",
    ),
];

#[test]
fn known_answers() {
    for (name, parts, events, wire) in CASES {
        let (got_events, got_wire) = after_greeting(&config(), parts);
        let wire = wire.replace("LOGIN\r\n", "");
        // "LOGIN\r\n" in the table stands for the capability-carrying OK of
        // a successful login, whatever its tag.
        let got_wire = strip_logins(&got_wire);
        assert_eq!(got_wire, wire, "{name}: wire");
        assert_eq!(&got_events[1..], *events, "{name}: events");
    }
}

fn strip_logins(wire: &str) -> String {
    wire.split_inclusive("\r\n")
        .filter(|line| !line.ends_with(&format!("[CAPABILITY IMAP4rev1 {CAPS}] Logged in\r\n")))
        .collect()
}

#[test]
fn logindisabled_before_tls_and_starttls_drops_injected_commands() {
    let mut config = ServerConfig::default();
    config.starttls = true;
    let parts: &[&[u8]] = &[
        b"a CAPABILITY\r\nb LOGIN fred secret\r\nc STARTTLS\r\nd LOGIN fred secret\r\n",
        b"",
        b"e CAPABILITY\r\nf LOGIN fred secret\r\n",
    ];
    let (events, wire) = three_ways(&config, parts);
    let wire = String::from_utf8(wire).unwrap();
    let expected = [
        format!(
            "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED {CAPS}] Ironpost IMAP ready\r\n"
        ),
        format!("* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED {CAPS}\r\n"),
        "a OK CAPABILITY completed\r\n".into(),
        "b NO [PRIVACYREQUIRED] LOGIN is disabled before TLS\r\n".into(),
        "c OK Begin TLS negotiation now\r\n".into(),
        format!("* CAPABILITY IMAP4rev1 AUTH=PLAIN AUTH=LOGIN {CAPS}\r\n"),
        "e OK CAPABILITY completed\r\n".into(),
        logged_in("f"),
    ]
    .concat();
    assert_eq!(wire, expected);
    // The LOGIN pipelined after STARTTLS never reached the host.
    assert_eq!(events, ["connect", "starttls", "login fred None"]);
}

#[test]
fn too_many_bad_commands_close_the_session() {
    let mut config = config();
    config.limits.bad_commands = 3;
    let (events, wire) = after_greeting(&config, &[b"a X\r\nb X\r\nc X\r\nd NOOP\r\n"]);
    assert_eq!(
        wire,
        "a BAD Unknown command\r\nb BAD Unknown command\r\nc BAD Unknown command\r\n\
         * BYE Too many invalid commands\r\n"
    );
    assert_eq!(events, ["connect", "closed"]);
}

fn drain(s: &mut ServerSession) {
    while let Some(event) = s.poll_event() {
        match event {
            Event::Connect(req) => s.accept_connection(req).unwrap(),
            Event::Login(req) => s.accept_login(req).unwrap(),
            _ => {}
        }
    }
}

#[test]
fn timeouts_are_shorter_before_login() {
    let start = Instant::now();
    let mut s = ServerSession::new(config(), start);
    assert_eq!(s.poll_timeout(), None, "no timer while the host decides");
    drain(&mut s);
    let limits = Limits::default();
    assert_eq!(s.poll_timeout(), Some(start + limits.login_timeout));
    let later = start + Duration::from_secs(10);
    s.handle_input(later, b"a LOGIN fred secret\r\n");
    assert_eq!(s.poll_timeout(), None);
    drain(&mut s);
    assert_eq!(s.poll_timeout(), Some(later + limits.autologout));
    s.handle_timeout(later + limits.autologout - Duration::from_secs(1));
    assert!(!s.is_closed());
    s.handle_timeout(later + limits.autologout);
    assert!(s.is_closed());
    let mut wire = Vec::new();
    let _ = s.poll_transmit(&mut wire);
    assert!(
        String::from_utf8(wire)
            .unwrap()
            .ends_with("* BYE Autologout; idle for too long\r\n")
    );
    assert_eq!(s.poll_event(), Some(Event::Closed));
    assert_eq!(s.state(), State::Logout);
}

#[test]
fn output_back_pressure_stops_reading() {
    let mut config = config();
    config.limits.output = 64;
    let now = Instant::now();
    let mut s = ServerSession::new(config, now);
    drain(&mut s);
    assert!(!s.wants_input(), "the greeting is waiting");
    let mut wire = Vec::new();
    let _ = s.poll_transmit(&mut wire);
    assert!(s.wants_input());
    s.handle_input(now, b"a CAPABILITY\r\nb CAPABILITY\r\n");
    drain(&mut s);
    assert!(!s.wants_input(), "the client is not reading");
    let _ = s.poll_transmit(&mut wire);
    assert!(s.wants_input());
}

#[test]
fn pipelined_commands_wait_for_the_decision() {
    let now = Instant::now();
    let mut s = ServerSession::new(config(), now);
    drain(&mut s);
    s.handle_input(now, b"a LOGIN fred secret\r\nb SELECT INBOX\r\n");
    let Some(Event::Login(req)) = s.poll_event() else {
        panic!("a login decision")
    };
    assert_eq!(
        s.push(ironpost_imap_proto::Data::Exists(1)),
        Err(ironpost_imap_proto::Misuse::NotAuthenticated)
    );
    assert_eq!(s.poll_event(), None, "SELECT waits for the login");
    assert_eq!(format!("{:?}", req.password), "***");
    assert!(
        !format!("{req:?}").contains("secret"),
        "no password in logs"
    );
    s.accept_login(req).unwrap();
    let Some(Event::Request(req)) = s.poll_event() else {
        panic!("SELECT after the login")
    };
    assert_eq!(
        s.tls_established(),
        Err(ironpost_imap_proto::Misuse::NoTlsPending)
    );
    s.complete(req, ironpost_imap_proto::Status::ok("done"))
        .unwrap();
    assert_eq!(s.state(), State::Selected { read_only: false });
}

/// Found by the `imap_session` fuzz target: a line the framing refuses
/// while IDLE waits for DONE (or AUTHENTICATE for its response) must end
/// that command, not leave it without a tagged answer.
#[test]
fn a_refused_line_ends_idle_and_authenticate() {
    let mut config = config();
    config.login_requires_tls = false;
    config.limits.line = 64;
    let long = format!("b1 NOOP {}\r\n", "x".repeat(100));
    let (events, wire) = after_greeting(
        &config,
        &[b"a1 LOGIN fred secret\r\na2 IDLE\r\nb1 NOOP {3}\r\na3 NOOP\r\n"],
    );
    assert!(
        events.iter().any(|e| e.contains("idle done false")),
        "{events:?}\n{wire}"
    );
    assert!(wire.contains("a2 "), "{wire}");
    assert!(wire.contains("a3 OK"), "{wire}");
    let (events, wire) = after_greeting(
        &config,
        &[
            b"a1 LOGIN fred secret\r\na2 IDLE\r\n",
            long.as_bytes(),
            b"a3 NOOP\r\n",
        ],
    );
    assert!(
        events.iter().any(|e| e.contains("idle done false")),
        "{events:?}"
    );
    assert!(wire.contains("a3 OK"), "{wire}");
    let (_, wire) = after_greeting(
        &config,
        &[b"a1 AUTHENTICATE PLAIN\r\nb1 {3}\r\na3 NOOP\r\n"],
    );
    assert!(wire.contains("a1 BAD"), "{wire}");
    assert!(wire.contains("a3 OK"), "{wire}");
}
