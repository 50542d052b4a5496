//! Known-answer tests of the client session: a scripted server transcript,
//! fed whole and one byte at a time (both must give the same events and
//! the same commands), against what the client must send and report.

use std::time::Instant;

use ironpost_pop3_proto::{
    Capabilities, ClientConfig, ClientError, ClientEvent, ClientMisuse, ClientSession, Credentials,
    ResponseCode, ResponseError, TlsMode,
};

/// What the scripted host does on Ready.
type Plan = fn(&mut ClientSession, Instant);

fn run(
    config: &ClientConfig,
    transcript: &[u8],
    plan: Plan,
    bytewise: bool,
) -> (Vec<String>, String) {
    let now = Instant::now();
    let mut client = ClientSession::new(config.clone(), now);
    let mut log = Vec::new();
    let mut wire = Vec::new();
    let mut chunks = Vec::new();
    let pieces: Vec<&[u8]> = if bytewise {
        transcript.chunks(1).collect()
    } else {
        vec![transcript]
    };
    for piece in pieces {
        client.handle_input(now, piece);
        while let Some(event) = client.poll_event() {
            match event {
                ClientEvent::Ready => {
                    log.push("Ready".to_string());
                    plan(&mut client, now);
                }
                ClientEvent::StartTls => {
                    log.push("StartTls".to_string());
                    client.tls_established(now).unwrap();
                }
                ClientEvent::MessageChunk(bytes) => chunks.extend_from_slice(&bytes),
                other => {
                    if !chunks.is_empty() {
                        log.push(format!(
                            "message {}",
                            std::mem::take(&mut chunks).escape_ascii()
                        ));
                    }
                    log.push(format!("{other:?}"));
                }
            }
        }
        client.poll_transmit(&mut wire);
    }
    (log, String::from_utf8(wire).unwrap())
}

/// Runs the transcript whole and byte by byte; both must agree.
fn case(config: &ClientConfig, transcript: &str, plan: Plan) -> (Vec<String>, String) {
    let whole = run(config, transcript.as_bytes(), plan, false);
    let bytewise = run(config, transcript.as_bytes(), plan, true);
    assert_eq!(whole, bytewise, "the split changed the result");
    whole
}

fn config() -> ClientConfig {
    let mut c = ClientConfig::new(Credentials::new("mrose", "secret"));
    c.login_requires_tls = false;
    c
}

fn quit(client: &mut ClientSession, now: Instant) {
    client.quit(now).unwrap();
}

/// RFC 2449 section 5's CAPA example.
#[test]
fn rfc_2449_capa_example() {
    let mut caps = Capabilities::default();
    for line in [
        "TOP",
        "USER",
        "SASL CRAM-MD5 KERBEROS_V4",
        "RESP-CODES",
        "LOGIN-DELAY 900",
        "PIPELINING",
        "EXPIRE 60",
        "UIDL",
        "IMPLEMENTATION Shlemazle-Plotz-v302",
    ] {
        caps.add_line(line);
    }
    assert!(caps.top && caps.user && caps.resp_codes && caps.pipelining && caps.uidl);
    assert_eq!(caps.sasl, ["CRAM-MD5", "KERBEROS_V4"]);
    assert_eq!(caps.login_delay, Some(900));
    assert_eq!(caps.expire.as_deref(), Some("60"));
    assert_eq!(caps.implementation.as_deref(), Some("Shlemazle-Plotz-v302"));
    assert!(!caps.stls && !caps.auth_resp_code);
    // The same list from a server: USER/PASS, since PLAIN is not offered.
    let (log, wire) = case(
        &config(),
        "+OK POP3 server ready\r\n+OK Capability list follows\r\nTOP\r\nUSER\r\n\
         SASL CRAM-MD5 KERBEROS_V4\r\nRESP-CODES\r\nLOGIN-DELAY 900\r\nPIPELINING\r\nEXPIRE 60\r\n\
         UIDL\r\nIMPLEMENTATION Shlemazle-Plotz-v302\r\n.\r\n+OK\r\n+OK maildrop ready\r\n\
         +OK dewey POP3 server signing off\r\n",
        quit,
    );
    assert_eq!(wire, "CAPA\r\nUSER mrose\r\nPASS secret\r\nQUIT\r\n");
    assert_eq!(log[0], "Ready");
    assert_eq!(log[2], "Closed");
}

/// RFC 1939 section 10 from the client's side, on a server without CAPA
/// and without PIPELINING: one command at a time.
#[test]
fn rfc_1939_session_without_capa_or_pipelining() {
    fn plan(client: &mut ClientSession, now: Instant) {
        client.stat(now).unwrap();
        client.list(now, None).unwrap();
        client.retr(now, 1).unwrap();
        client.dele(now, 1).unwrap();
        client.quit(now).unwrap();
    }
    let (log, wire) = case(
        &config(),
        "+OK POP3 server ready\r\n-ERR unknown command\r\n+OK mrose is a real hoopy frood\r\n\
         +OK mrose's maildrop has 2 messages (320 octets)\r\n+OK 2 320\r\n\
         +OK 2 messages (320 octets)\r\n1 120\r\n2 200\r\n.\r\n+OK 120 octets\r\n\
         Subject: x\r\n\r\n..dot\r\n.\r\n+OK message 1 deleted\r\n\
         +OK dewey POP3 server signing off\r\n",
        plan,
    );
    assert_eq!(
        wire,
        "CAPA\r\nUSER mrose\r\nPASS secret\r\nSTAT\r\nLIST\r\nRETR 1\r\nDELE 1\r\nQUIT\r\n"
    );
    assert_eq!(
        log,
        [
            "Ready",
            "Stat { messages: 2, octets: 320 }",
            "Done { command: Stat, response: Response { ok: true, code: None, text: \"2 320\" } }",
            "Scan { message: 1, size: 120 }",
            "Scan { message: 2, size: 200 }",
            "Done { command: List(None), response: Response { ok: true, code: None, text: \"2 messages (320 octets)\" } }",
            "message Subject: x\\r\\n\\r\\n.dot\\r\\n",
            "Done { command: Retr(1), response: Response { ok: true, code: None, text: \"120 octets\" } }",
            "Done { command: Dele(1), response: Response { ok: true, code: None, text: \"message 1 deleted\" } }",
            "Done { command: Quit, response: Response { ok: true, code: None, text: \"dewey POP3 server signing off\" } }",
            "Closed"
        ]
    );
}

/// Single-line answers, negative answers with codes, TOP and UIDL.
#[test]
fn answers_and_codes() {
    fn plan(client: &mut ClientSession, now: Instant) {
        client.list(now, Some(2)).unwrap();
        client.uidl(now, Some(1)).unwrap();
        client.uidl(now, None).unwrap();
        client.retr(now, 9).unwrap();
        client.top(now, 1, 0).unwrap();
        client.rset(now).unwrap();
        client.noop(now).unwrap();
        client.quit(now).unwrap();
    }
    let (log, wire) = case(
        &config(),
        "+OK ready\r\n+OK\r\nSASL PLAIN\r\nPIPELINING\r\n.\r\n+OK Logged in\r\n+OK 2 200\r\n\
         +OK 1 whqtswO00WBw418f9t5JxYwZ\r\n+OK\r\n1 whqtswO00WBw418f9t5JxYwZ\r\n\
         2 QhdPYR:00WBw1Ph7x7\r\n.\r\n-ERR [SYS/TEMP] try later\r\n+OK\r\nA: b\r\n\r\n.\r\n\
         +OK\r\n+OK\r\n-ERR [SYS/TEMP] some deleted messages not removed\r\n",
        plan,
    );
    assert_eq!(
        wire,
        "CAPA\r\nAUTH PLAIN AG1yb3NlAHNlY3JldA==\r\nLIST 2\r\nUIDL 1\r\nUIDL\r\nRETR 9\r\n\
         TOP 1 0\r\nRSET\r\nNOOP\r\nQUIT\r\n"
    );
    let events: Vec<&str> = log.iter().map(|l| l.split(" {").next().unwrap()).collect();
    assert_eq!(
        events,
        [
            "Ready",
            "Scan",
            "Done",
            "UniqueId",
            "Done",
            "UniqueId",
            "UniqueId",
            "Done",
            "Done",
            "message A: b\\r\\n\\r\\n",
            "Done",
            "Done",
            "Done",
            "Done",
            "Closed"
        ]
    );
    assert!(
        log[8].contains("code: Some(ResponseCode(\"SYS/TEMP\"))"),
        "{}",
        log[8]
    );
    assert!(log[13].contains("ok: false"), "{}", log[13]);
}

#[test]
fn failures() {
    let (log, wire) = case(&config(), "-ERR [SYS/PERM] go away\r\n", quit);
    assert_eq!(wire, "", "no QUIT to a refused greeting");
    assert!(log[0].starts_with("Failed(Greeting("), "{log:?}");
    // A login refused with IN-USE; QUIT follows (nothing to commit yet).
    let (log, wire) = case(
        &config(),
        "+OK\r\n-ERR\r\n+OK\r\n-ERR [IN-USE] Do you have another POP session running?\r\n",
        quit,
    );
    assert_eq!(wire, "CAPA\r\nUSER mrose\r\nPASS secret\r\nQUIT\r\n");
    assert!(
        log[0].contains("Login(") && log[0].contains("IN-USE"),
        "{log:?}"
    );
    // Garbage where a status line should be.
    let (log, _) = case(&config(), "* OK IMAP4rev1 ready\r\n", quit);
    assert_eq!(
        log,
        [
            format!(
                "{:?}",
                ClientEvent::Failed(ClientError::Protocol(ResponseError::NotAStatus))
            ),
            "Closed".to_string()
        ]
    );
    // An over-long line, whether it ends or not.
    for ending in ["\r\n", ""] {
        let transcript = format!("+OK {}{ending}", "x".repeat(2000));
        let (log, _) = case(&config(), &transcript, quit);
        assert!(log[0].contains("LineTooLong"), "{log:?}");
    }
    // A malformed listing line.
    fn list(client: &mut ClientSession, now: Instant) {
        client.list(now, None).unwrap();
    }
    let (log, _) = case(
        &config(),
        "+OK\r\n-ERR\r\n+OK\r\n+OK\r\n+OK\r\n1 many\r\n.\r\n",
        list,
    );
    assert!(log[1].contains("BadListing"), "{log:?}");
    // TLS required, STLS refused.
    let mut required = config();
    required.tls = TlsMode::Required;
    let (log, wire) = case(
        &required,
        "+OK\r\n+OK\r\nSTLS\r\nUSER\r\n.\r\n-ERR [SYS/TEMP] no certificate\r\n",
        quit,
    );
    assert_eq!(wire, "CAPA\r\nSTLS\r\nQUIT\r\n");
    assert!(log[0].starts_with("Failed(StartTls("), "{log:?}");
    // CAPA offers neither USER nor PLAIN.
    let (log, wire) = case(&config(), "+OK\r\n+OK\r\nSASL GSSAPI\r\n.\r\n", quit);
    assert_eq!(wire, "CAPA\r\nQUIT\r\n");
    assert_eq!(
        log[0],
        format!("{:?}", ClientEvent::Failed(ClientError::LoginUnavailable))
    );
    let mut bad = config();
    bad.credentials = Credentials::new("a\r\nDELE 1", "x");
    let (log, wire) = case(&bad, "+OK\r\n+OK\r\nUSER\r\n.\r\n", quit);
    assert_eq!(wire, "CAPA\r\nQUIT\r\n");
    assert!(log[0].contains("LoginUnavailable"));
}

/// After STLS the client forgets the capabilities and asks again (RFC 2595
/// section 4); bytes the server sent after its +OK in clear are dropped.
#[test]
fn stls_then_capa_again() {
    let (log, wire) = case(
        &config(),
        "+OK\r\n+OK\r\nSTLS\r\nSASL PLAIN\r\n.\r\n+OK Begin TLS negotiation\r\n+OK injected\r\n",
        quit,
    );
    assert_eq!(log, ["StartTls"]);
    assert_eq!(wire, "CAPA\r\nSTLS\r\nCAPA\r\n");
    let now = Instant::now();
    let mut client = ClientSession::new(config(), now);
    assert_eq!(client.tls_established(now), Err(ClientMisuse::NoTlsPending));
    assert_eq!(client.stat(now), Err(ClientMisuse::NotReady));
    assert!(client.wants_input());
    assert_eq!(
        ResponseCode::new("in-use"),
        Some(ResponseCode::IN_USE),
        "codes compare in any case"
    );
}

/// Responses that come before anything is due wait for the next command.
#[test]
fn early_responses_wait_for_their_command() {
    let now = Instant::now();
    let mut client = ClientSession::new(config(), now);
    client.handle_input(now, b"+OK\r\n+OK\r\nUSER\r\n.\r\n+OK\r\n+OK\r\n+OK 0 0\r\n");
    assert_eq!(client.poll_event(), Some(ClientEvent::Ready));
    assert!(!client.wants_input(), "a response is buffered, none is due");
    assert_eq!(client.poll_timeout(), None);
    client.stat(now).unwrap();
    assert_eq!(
        client.poll_event(),
        Some(ClientEvent::Stat {
            messages: 0,
            octets: 0
        })
    );
    assert!(client.wants_input());
}

/// Found by fuzzing: commands given in a row used to read responses
/// already buffered, so a bad one stopped the rest from going out and what
/// was sent depended on how the server's bytes had been split.
#[test]
fn commands_given_in_a_row_go_out_whatever_has_arrived() {
    fn plan(client: &mut ClientSession, now: Instant) {
        client.stat(now).unwrap();
        client.list(now, None).unwrap();
        client.retr(now, 1).unwrap();
        client.quit(now).unwrap();
    }
    let (log, wire) = case(
        &config(),
        "+OK\r\n+OK\r\nUSER\r\nPIPELINING\r\n.\r\n+OK\r\n+OK\r\n+OK 2 30\r\n+OK\r\n1 10\r\x1a2 20\r\n",
        plan,
    );
    assert_eq!(
        wire,
        "CAPA\r\nUSER mrose\r\nPASS secret\r\nSTAT\r\nLIST\r\nRETR 1\r\nQUIT\r\n"
    );
    assert!(log[3].contains("BadListing"), "{log:?}");
}
