//! Known-answer tests of the server session. Every case runs whole, one byte
//! at a time and in pieces of 7 (they must agree), and again with trailing
//! data after QUIT (which must change nothing).

mod common;

use std::time::{Duration, Instant};

use common::{Host, config, run_three_ways, size};
use ironpost_pop3_proto::{
    Event, Maildrop, Misuse, Refusal, ResponseCode, ServerConfig, ServerSession, State, UniqueId,
};

/// Runs a case three ways, and with trailing data after its QUIT.
fn case(config: &ServerConfig, messages: &[Vec<u8>], input: &str, expected: &str) -> Vec<String> {
    let (log, wire) = run_three_ways(config, messages, input.as_bytes());
    assert_eq!(wire, expected, "for input {input:?}");
    if input.ends_with("QUIT\r\n") {
        let trailing = format!("{input}NOOP\r\nSTAT\r\nunterminated");
        let (log2, wire2) = run_three_ways(config, messages, trailing.as_bytes());
        assert_eq!(log, log2, "trailing data changed the events");
        assert_eq!(wire, wire2, "trailing data changed the responses");
    }
    log
}

/// A message of exactly `n` octets with the given header.
fn sized(header: &str, n: usize) -> Vec<u8> {
    let mut m = format!("{header}\r\n\r\n").into_bytes();
    let pad = n - m.len() - 2;
    m.extend(std::iter::repeat_n(b'a', pad));
    m.extend_from_slice(b"\r\n");
    assert_eq!(m.len(), n);
    m
}

fn rfc_maildrop() -> Vec<Vec<u8>> {
    vec![
        sized("From: mrose@dbc.mtview.ca.us\r\nSubject: first", 120),
        sized("From: mrose@dbc.mtview.ca.us\r\nSubject: second", 200),
    ]
}

const GREETING: &str = "+OK dewey POP3 server ready\r\n";
const LOGIN: &str = "USER mrose\r\nPASS secret\r\n";
const LOGGED_IN: &str = "+OK Send PASS\r\n+OK Maildrop has 2 messages (320 octets)\r\n";

/// RFC 1939 section 10, with USER/PASS in place of APOP.
#[test]
fn rfc_1939_example_session() {
    let messages = rfc_maildrop();
    let m1 = String::from_utf8(messages[0].clone()).unwrap();
    let m2 = String::from_utf8(messages[1].clone()).unwrap();
    let log = case(
        &config(),
        &messages,
        "USER mrose\r\nPASS secret\r\nSTAT\r\nLIST\r\nRETR 1\r\nDELE 1\r\nRETR 2\r\nDELE 2\r\nQUIT\r\n",
        &format!(
            "{GREETING}{LOGGED_IN}+OK 2 320\r\n+OK 2 messages (320 octets)\r\n1 120\r\n2 200\r\n.\r\n\
             +OK 120 octets\r\n{m1}.\r\n+OK Message 1 deleted\r\n\
             +OK 200 octets\r\n{m2}.\r\n+OK Message 2 deleted\r\n\
             +OK dewey POP3 server signing off (maildrop empty)\r\n"
        ),
    );
    assert_eq!(
        log,
        [
            "connect",
            "login UserPass mrose None ***",
            "retrieve 1 top None",
            "retrieve 2 top None",
            "update [1, 2]",
            "closed"
        ]
    );
}

/// RFC 1939 sections 5 and 7: LIST, UIDL, TOP, DELE, RSET, NOOP.
#[test]
fn transaction_commands() {
    let messages = rfc_maildrop();
    let header = "From: mrose@dbc.mtview.ca.us\r\nSubject: second\r\n\r\n";
    case(
        &config(),
        &messages,
        &format!(
            "{LOGIN}LIST 2\r\nLIST 3\r\nLIST 0\r\nUIDL\r\nUIDL 2\r\nTOP 2 0\r\nDELE 1\r\nDELE 1\r\n\
             LIST\r\nSTAT\r\nLIST 1\r\nUIDL 1\r\nRETR 1\r\nTOP 1 1\r\nUIDL\r\nRSET\r\nSTAT\r\nNOOP\r\n\
             RETR 4294967295\r\nQUIT\r\n"
        ),
        &format!(
            "{GREETING}{LOGGED_IN}+OK 2 200\r\n-ERR No such message\r\n-ERR No such message\r\n\
             +OK\r\n1 whqtswO00WBw418f9t5JxYwZ\r\n2 QhdPYR:00WBw1Ph7x7\r\n.\r\n\
             +OK 2 QhdPYR:00WBw1Ph7x7\r\n+OK Top of message follows\r\n{header}.\r\n\
             +OK Message 1 deleted\r\n-ERR Message 1 already deleted\r\n\
             +OK 1 message (200 octets)\r\n2 200\r\n.\r\n+OK 1 200\r\n\
             -ERR Message 1 already deleted\r\n-ERR Message 1 already deleted\r\n\
             -ERR Message 1 already deleted\r\n-ERR Message 1 already deleted\r\n\
             +OK\r\n2 QhdPYR:00WBw1Ph7x7\r\n.\r\n\
             +OK Maildrop has 2 messages (320 octets)\r\n+OK 2 320\r\n+OK\r\n\
             -ERR No such message\r\n\
             +OK dewey POP3 server signing off (2 messages left)\r\n"
        ),
    );
}

/// RFC 2449 section 5: CAPA in both states; STLS, USER and SASL only in
/// AUTHORIZATION.
#[test]
fn capa_lists_what_the_state_allows() {
    let mut c = config();
    c.implementation = Some("Ironpost\r\nEVIL".into());
    case(
        &c,
        &rfc_maildrop(),
        &format!("CAPA\r\n{LOGIN}CAPA\r\nQUIT\r\n"),
        &format!(
            "{GREETING}+OK Capability list follows\r\nTOP\r\nUIDL\r\nUSER\r\nSASL PLAIN\r\n\
             RESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nSTLS\r\nIMPLEMENTATION Ironpost  EVIL\r\n.\r\n\
             {LOGGED_IN}+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n\
             PIPELINING\r\nIMPLEMENTATION Ironpost  EVIL\r\n.\r\n\
             +OK dewey POP3 server signing off (2 messages left)\r\n"
        ),
    );
    let mut plain = config();
    plain.stls = false;
    plain.user_pass = false;
    case(
        &plain,
        &[],
        "CAPA\r\nUSER a\r\nQUIT\r\n",
        &format!(
            "{GREETING}+OK Capability list follows\r\nTOP\r\nUIDL\r\nSASL PLAIN\r\n\
             RESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n.\r\n-ERR Unknown command\r\n\
             +OK dewey POP3 server signing off\r\n"
        ),
    );
}

/// RFC 2595 section 4 and RFC 3206: no login in clear unless configured.
#[test]
fn login_needs_tls_by_default() {
    let mut c = config();
    c.login_requires_tls = true;
    let log = case(
        &c,
        &rfc_maildrop(),
        "CAPA\r\nUSER mrose\r\nPASS secret\r\nAUTH PLAIN AG1yb3NlAHNlY3JldA==\r\nSTAT\r\nQUIT\r\n",
        &format!(
            "{GREETING}+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\n\
             AUTH-RESP-CODE\r\nPIPELINING\r\nSTLS\r\n.\r\n\
             -ERR [AUTH] Plaintext authentication is not allowed without TLS\r\n\
             -ERR No user name given\r\n\
             -ERR [AUTH] Plaintext authentication is not allowed without TLS\r\n\
             -ERR Command not valid in this state\r\n+OK dewey POP3 server signing off\r\n"
        ),
    );
    assert!(!log.iter().any(|l| l.starts_with("login")));
}

/// RFC 2595 section 4: the STLS example, and bytes pipelined after STLS
/// before the handshake are never taken as commands.
#[test]
fn stls_discards_injected_commands() {
    let mut c = config();
    c.login_requires_tls = true;
    let now = Instant::now();
    let mut host = Host::at(c, rfc_maildrop(), now);
    host.input(
        now,
        b"STLS\r\nUSER mrose\r\nPASS secret\r\nDELE 1\r\nQUIT\r\n",
    );
    assert_eq!(host.log, ["connect", "starttls"]);
    assert_eq!(
        host.wire_text(),
        format!("{GREETING}+OK Begin TLS negotiation\r\n")
    );
    assert!(host.session.is_tls());
    host.wire.clear();
    host.input(
        now,
        b"CAPA\r\nSTLS\r\nUSER mrose\r\nPASS secret\r\nQUIT\r\n",
    );
    assert_eq!(
        host.wire_text(),
        "+OK Capability list follows\r\nTOP\r\nUIDL\r\nUSER\r\nSASL PLAIN\r\nRESP-CODES\r\n\
         AUTH-RESP-CODE\r\nPIPELINING\r\n.\r\n-ERR Command not permitted when TLS active\r\n\
         +OK Send PASS\r\n+OK Maildrop has 2 messages (320 octets)\r\n\
         +OK dewey POP3 server signing off (2 messages left)\r\n"
    );
    assert_eq!(
        host.log[2..],
        ["login UserPass mrose None ***", "update []", "closed"]
    );

    // Input that arrives between the +OK and the handshake is dropped too.
    let mut session = ServerSession::new(config(), now);
    let Some(Event::Connect(req)) = session.poll_event() else {
        panic!("no connect event")
    };
    session.accept_connection(req).unwrap();
    session.handle_input(now, b"STLS\r\n");
    assert_eq!(session.poll_event(), Some(Event::StartTls));
    assert!(!session.wants_input());
    session.handle_input(now, b"QUIT\r\n");
    session.tls_established().unwrap();
    assert_eq!(session.poll_event(), None);
    assert!(!session.is_closed());
    assert_eq!(session.tls_established(), Err(Misuse::NoTlsPending));
    // STLS is refused where it is not offered, and in TRANSACTION.
    let mut no_tls = config();
    no_tls.stls = false;
    case(
        &no_tls,
        &[],
        &format!("STLS\r\n{LOGIN}STLS\r\nQUIT\r\n"),
        &format!(
            "{GREETING}-ERR TLS not available\r\n+OK Send PASS\r\n\
             +OK Maildrop has 0 messages (0 octets)\r\n-ERR Command not valid in this state\r\n\
             +OK dewey POP3 server signing off (maildrop empty)\r\n"
        ),
    );
}

/// RFC 5034: AUTH PLAIN with an initial response, after `+ `, cancelled
/// with `*`, malformed, and an unknown mechanism.
#[test]
fn auth_plain() {
    // "test\0test\0test" (RFC 5034 section 6's credentials), refused; then
    // "\0test\0secret" after the continuation; then an authzid.
    let log = case(
        &config(),
        &rfc_maildrop(),
        "AUTH CRAM-MD5\r\nAUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=\r\nAUTH PLAIN\r\n*\r\nAUTH PLAIN =\r\n\
         AUTH PLAIN\r\nnot base64!\r\nAUTH plain\r\nAHRlc3QAc2VjcmV0\r\nQUIT\r\n",
        &format!(
            "{GREETING}-ERR Unsupported authentication mechanism\r\n\
             -ERR [AUTH] Authentication failed\r\n+ \r\n-ERR Authentication cancelled\r\n\
             -ERR Malformed authentication response\r\n+ \r\n\
             -ERR Malformed authentication response\r\n+ \r\n\
             +OK Maildrop has 2 messages (320 octets)\r\n\
             +OK dewey POP3 server signing off (2 messages left)\r\n"
        ),
    );
    assert_eq!(
        log[1..3],
        ["login Plain test None ***", "login Plain test None ***"]
    );
    let log = case(
        &config(),
        &[],
        // "admin\0test\0secret": an authorization identity of its own.
        "AUTH PLAIN YWRtaW4AdGVzdABzZWNyZXQ=\r\nQUIT\r\n",
        &format!(
            "{GREETING}+OK Maildrop has 0 messages (0 octets)\r\n\
             +OK dewey POP3 server signing off (maildrop empty)\r\n"
        ),
    );
    assert_eq!(log[1], "login Plain test Some(\"admin\") ***");
}

/// RFC 2449 section 8 and RFC 3206: the host's refusals carry its codes;
/// the third refusal ends the session.
#[test]
fn refused_logins_and_response_codes() {
    let log = case(
        &config(),
        &[],
        "USER locked\r\nPASS secret2\r\nUSER mrose\r\nPASS wrong\r\nPASS again\r\n\
         USER mrose\r\nPASS wrong\r\nUSER mrose\r\n",
        &format!(
            "{GREETING}+OK Send PASS\r\n-ERR [IN-USE] Maildrop is locked by another session\r\n\
             +OK Send PASS\r\n-ERR [AUTH] Authentication failed\r\n-ERR No user name given\r\n\
             +OK Send PASS\r\n-ERR [AUTH] Authentication failed\r\n"
        ),
    );
    assert_eq!(log.last().unwrap(), "closed");
    assert!(
        !log.concat().contains("wrong"),
        "a password reached the log"
    );
}

#[test]
fn bad_commands_and_wrong_states() {
    case(
        &config(),
        &rfc_maildrop(),
        "STAT\r\nNOOP\r\nXYZZY\r\nAPOP mrose c4c9334bac560ecc979e58001b3e22fb\r\nLIST x\r\n\
         PASS secret\r\nUSER\r\nUSER mrose\r\nPASS secret\r\nUSER mrose\r\nAUTH PLAIN\r\n\
         RETR\r\nTOP 1\r\nQUIT\r\n",
        &format!(
            "{GREETING}-ERR Command not valid in this state\r\n\
             -ERR Command not valid in this state\r\n-ERR Unknown command\r\n\
             -ERR Unknown command\r\n-ERR Invalid arguments\r\n-ERR No user name given\r\n\
             -ERR Invalid arguments\r\n{LOGGED_IN}-ERR Command not valid in this state\r\n\
             -ERR Command not valid in this state\r\n-ERR Invalid arguments\r\n\
             -ERR Invalid arguments\r\n+OK dewey POP3 server signing off (2 messages left)\r\n"
        ),
    );
    let mut strict = config();
    strict.limits.bad_commands = 3;
    let log = case(
        &strict,
        &[],
        "X\r\nCAPA\r\nY\r\nZ\r\nNOOP\r\n",
        &format!(
            "{GREETING}-ERR Unknown command\r\n+OK Capability list follows\r\nTOP\r\nUIDL\r\n\
             USER\r\nSASL PLAIN\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nSTLS\r\n.\r\n\
             -ERR Unknown command\r\n-ERR Unknown command\r\n"
        ),
    );
    assert_eq!(log, ["connect", "closed"]);
}

/// RFC 2449 section 4 lengths: a long line is answered once its end comes;
/// a line that never ends closes the session.
#[test]
fn line_limits() {
    let long = "x".repeat(600);
    let auth = format!("AUTH PLAIN {}", "A".repeat(1000));
    case(
        &config(),
        &[],
        &format!("USER {long}\r\nNOOP {long}\nUSER mrose\r\n{auth}\r\nQUIT\r\n"),
        &format!(
            "{GREETING}-ERR Line too long\r\n-ERR Line too long\r\n+OK Send PASS\r\n\
             -ERR Malformed authentication response\r\n+OK dewey POP3 server signing off\r\n"
        ),
    );
    case(
        &config(),
        &[],
        &format!("AUTH PLAIN\r\n{}\r\nQUIT\r\n", "A".repeat(3000)),
        &format!("{GREETING}+ \r\n-ERR Line too long\r\n+OK dewey POP3 server signing off\r\n"),
    );
    let log = case(
        &config(),
        &[],
        &format!("NOOP\r\n{}", "y".repeat(9000)),
        &format!("{GREETING}-ERR Command not valid in this state\r\n-ERR Line too long\r\n"),
    );
    assert_eq!(log.last().unwrap(), "closed");
}

/// RFC 1939 section 3: byte-stuffing, CRLF line ends, the end line; for
/// RETR and TOP, whatever the host's chunk size.
#[test]
fn retr_and_top_stuff_and_normalise() {
    let messages = vec![
        b"Subject: dots\r\n\r\n.\r\n..\r\n.start\r\nmid.dle\r\n.".to_vec(),
        b"Subject: bare\n\nline 1\n.line 2\nno end".to_vec(),
        b"Subject: cr\r\n\r\na\rb\r\n\r.x\r\n".to_vec(),
        b"Header: only".to_vec(),
        b"".to_vec(),
    ];
    let input = "USER a\r\nPASS secret\r\nRETR 1\r\nRETR 2\r\nRETR 3\r\nRETR 4\r\nRETR 5\r\n\
                 TOP 1 2\r\nTOP 2 1\r\nTOP 2 0\r\nTOP 4 5\r\nQUIT\r\n";
    let expected = "+OK dewey POP3 server ready\r\n+OK Send PASS\r\n\
         +OK Maildrop has 5 messages (119 octets)\r\n\
         +OK 42 octets\r\nSubject: dots\r\n\r\n..\r\n...\r\n..start\r\nmid.dle\r\n..\r\n.\r\n\
         +OK 40 octets\r\nSubject: bare\r\n\r\nline 1\r\n..line 2\r\nno end\r\n.\r\n\
         +OK 25 octets\r\nSubject: cr\r\n\r\na\rb\r\n\r.x\r\n.\r\n\
         +OK 12 octets\r\nHeader: only\r\n.\r\n\
         +OK 0 octets\r\n.\r\n\
         +OK Top of message follows\r\nSubject: dots\r\n\r\n..\r\n...\r\n.\r\n\
         +OK Top of message follows\r\nSubject: bare\r\n\r\nline 1\r\n.\r\n\
         +OK Top of message follows\r\nSubject: bare\r\n\r\n.\r\n\
         +OK Top of message follows\r\nHeader: only\r\n.\r\n\
         +OK dewey POP3 server signing off (5 messages left)\r\n";
    assert_eq!(
        messages.iter().map(|m| size(m)).sum::<u64>(),
        119,
        "sizes count bare LF as CRLF"
    );
    for chunk in [1, 2, 3, 7, 1000] {
        let now = Instant::now();
        let mut host = Host::at(config(), messages.clone(), now);
        host.chunk = chunk;
        host.input(now, input.as_bytes());
        assert_eq!(host.wire_text(), expected, "chunks of {chunk}");
    }
    case(&config(), &messages, input, expected);
}

#[test]
fn unreadable_message_and_failed_update() {
    let messages = vec![b"UNREADABLE".to_vec(), b"ok\r\n".to_vec()];
    let mut c = config();
    c.limits.bad_commands = 100;
    let now = Instant::now();
    let mut host = Host::at(c, messages, now);
    host.fail_update = true;
    host.input(
        now,
        b"USER a\r\nPASS secret\r\nRETR 1\r\nRETR 2\r\nDELE 2\r\nQUIT\r\n",
    );
    assert_eq!(
        host.wire_text(),
        format!(
            "{GREETING}+OK Send PASS\r\n+OK Maildrop has 2 messages (14 octets)\r\n\
             -ERR [SYS/TEMP] Message unreadable\r\n+OK 4 octets\r\nok\r\n.\r\n\
             +OK Message 2 deleted\r\n-ERR [SYS/TEMP] Some deleted messages not removed\r\n"
        )
    );
    assert_eq!(host.log[4..], ["update [2]", "closed"]);
}

/// RFC 1939 section 3: the autologout timer; no UPDATE state after it, so
/// nothing is deleted. A dropped connection deletes nothing either.
#[test]
fn idle_timeout_closes_without_update() {
    let now = Instant::now();
    let mut host = Host::at(config(), rfc_maildrop(), now);
    assert_eq!(
        host.session.poll_timeout(),
        Some(now + Duration::from_secs(600))
    );
    let later = now + Duration::from_secs(100);
    host.input(later, b"USER a\r\nPASS secret\r\nDELE 1\r\n");
    assert_eq!(host.session.state(), State::Transaction);
    let deadline = later + Duration::from_secs(600);
    assert_eq!(host.session.poll_timeout(), Some(deadline));
    host.timeout(deadline - Duration::from_millis(1));
    assert!(!host.session.is_closed());
    host.timeout(deadline);
    assert!(host.session.is_closed());
    assert_eq!(host.session.poll_timeout(), None);
    assert!(
        host.wire_text()
            .ends_with("-ERR Autologout; idle for too long\r\n")
    );
    assert!(!host.log.iter().any(|l| l.starts_with("update")));
    assert_eq!(host.log.last().unwrap(), "closed");
    // Input after the end changes nothing.
    let before = host.wire.len();
    host.input(deadline, b"QUIT\r\n");
    assert_eq!(host.wire.len(), before);
}

/// While the host decides, the timer stops and input waits, bounded.
#[test]
fn pipelined_input_waits_for_decisions() {
    let now = Instant::now();
    let mut session = ServerSession::new(config(), now);
    let Some(Event::Connect(connect)) = session.poll_event() else {
        panic!("no connect event")
    };
    assert_eq!(session.poll_timeout(), None);
    session.handle_input(now, b"USER a\r\nPASS secret\r\nSTAT\r\n");
    let mut wire = Vec::new();
    assert_eq!(session.poll_transmit(&mut wire), 0);
    session.accept_connection(connect).unwrap();
    let Some(Event::Login(login)) = session.poll_event() else {
        panic!("no login event")
    };
    assert_eq!(session.poll_timeout(), None);
    assert!(session.wants_input());
    session.handle_input(now, &[b'x'; 600]);
    assert!(!session.wants_input(), "a line's worth is buffered");
    let uid = UniqueId::new("u1").unwrap();
    let maildrop: Maildrop = [(10, uid)].into_iter().collect();
    session.accept_login(login, maildrop).unwrap();
    session.poll_transmit(&mut wire);
    assert_eq!(
        String::from_utf8(wire).unwrap(),
        "+OK dewey POP3 server ready\r\n+OK Send PASS\r\n\
         +OK Maildrop has 1 message (10 octets)\r\n+OK 1 10\r\n"
    );
    assert!(session.wants_input());
    assert_eq!(session.user(), Some("a"));
}

/// A client that pipelines many commands without reading: the output
/// stays near its cap, and every response still comes, in order.
#[test]
fn output_is_bounded_while_the_client_does_not_read() {
    let mut c = config();
    c.limits.output_buffer = 100;
    let messages: Vec<Vec<u8>> = (0..20)
        .map(|i| format!("message {i}\r\n").into_bytes())
        .collect();
    let now = Instant::now();
    let mut host = Host::at(c.clone(), messages.clone(), now);
    host.input(now, b"USER a\r\nPASS secret\r\n");
    host.wire.clear();
    let mut session = host.session;
    let input = "LIST\r\n".repeat(50);
    session.handle_input(now, input.as_bytes());
    let mut total = Vec::new();
    loop {
        let mut out = Vec::new();
        let n = session.poll_transmit(&mut out);
        assert!(n <= 100 + 300, "transmit buffer grew to {n}");
        total.extend(out);
        if n == 0 {
            break;
        }
    }
    let listing = "+OK 20 messages (230 octets)\r\n";
    assert_eq!(
        String::from_utf8(total).unwrap().matches(listing).count(),
        50
    );
    // Streaming refuses chunks while the transmit buffer is full.
    let mut host = Host::at(c, vec![vec![b'z'; 1000]], now);
    host.input(now, b"USER a\r\nPASS secret\r\n");
    let mut session = host.session;
    session.handle_input(now, b"RETR 1\r\n");
    let Some(Event::Retrieve(req)) = session.poll_event() else {
        panic!("no retrieve event")
    };
    let _ = session.send_message_chunk(&req, &[b'z'; 200]).unwrap();
    assert!(!session.wants_message_chunk());
    assert_eq!(
        session.send_message_chunk(&req, b"z"),
        Err(Misuse::OutputFull)
    );
    session.poll_transmit(&mut Vec::new());
    assert!(session.wants_message_chunk());
}

#[test]
fn answers_are_checked() {
    let now = Instant::now();
    let mut session = ServerSession::new(config(), now);
    let Some(Event::Connect(connect)) = session.poll_event() else {
        panic!("no connect event")
    };
    session.handle_input(now, b"USER a\r\nPASS secret\r\nRETR 1\r\nQUIT\r\n");
    session.accept_connection(connect).unwrap();
    let Some(Event::Login(login)) = session.poll_event() else {
        panic!("no login event")
    };
    let maildrop: Maildrop = [(3, UniqueId::new("u").unwrap())].into_iter().collect();
    session.accept_login(login, maildrop.clone()).unwrap();
    let Some(Event::Retrieve(req)) = session.poll_event() else {
        panic!("no retrieve event")
    };
    assert_eq!((req.message, req.size, req.top), (1, 3, None));
    let _ = session.send_message_chunk(&req, b"ab").unwrap();
    // In the middle of a message, a shutdown only closes.
    session.shutdown(Refusal::new("Server shutting down").with_code(ResponseCode::SYS_TEMP));
    assert_eq!(session.poll_event(), Some(Event::Closed));
    assert_eq!(session.finish_message(req), Err(Misuse::UnknownRequest));
    let mut wire = Vec::new();
    session.poll_transmit(&mut wire);
    assert!(
        String::from_utf8(wire)
            .unwrap()
            .ends_with("+OK 3 octets\r\nab")
    );

    // Between commands, a shutdown says why.
    let mut session = ServerSession::new(config(), now);
    let Some(Event::Connect(connect)) = session.poll_event() else {
        panic!("no connect event")
    };
    session
        .refuse_connection(connect, Refusal::new("Access denied"))
        .unwrap();
    assert_eq!(session.poll_event(), Some(Event::Closed));
    let mut wire = Vec::new();
    session.poll_transmit(&mut wire);
    assert_eq!(wire, b"-ERR Access denied\r\n");
    let mut session = ServerSession::new(config(), now);
    let Some(Event::Connect(connect)) = session.poll_event() else {
        panic!("no connect event")
    };
    session.accept_connection(connect).unwrap();
    session.shutdown(Refusal::new("Server shutting down").with_code(ResponseCode::SYS_TEMP));
    let mut wire = Vec::new();
    session.poll_transmit(&mut wire);
    assert!(wire.ends_with(b"-ERR [SYS/TEMP] Server shutting down\r\n"));
    assert_eq!(session.state(), State::Closed);

    // A message that fails after its first chunk closes the session.
    let mut session = ServerSession::new(config(), now);
    let Some(Event::Connect(connect)) = session.poll_event() else {
        panic!("no connect event")
    };
    session.accept_connection(connect).unwrap();
    session.handle_input(now, b"USER a\r\nPASS secret\r\nRETR 1\r\nNOOP\r\n");
    let Some(Event::Login(login)) = session.poll_event() else {
        panic!("no login event")
    };
    session.accept_login(login, maildrop).unwrap();
    let Some(Event::Retrieve(req)) = session.poll_event() else {
        panic!("no retrieve event")
    };
    let _ = session.send_message_chunk(&req, b"a").unwrap();
    session.fail_message(req, Refusal::new("gone")).unwrap();
    assert_eq!(session.poll_event(), Some(Event::Closed));
}
