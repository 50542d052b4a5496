//! Known-answer tests of the server session. Every case runs whole, one byte
//! at a time and in pieces of 7 (they must agree), and again with trailing
//! data after QUIT (which must change nothing).

mod common;

use std::time::{Duration, Instant};

use common::{Host, config, run_split, run_three_ways};
use ironpost_smtp_proto::{BareLineEndings, Event, Reply, ReplyId, ServerConfig};

const GREETING: &str = "220 mx.example.org ESMTP ready\r\n";
const EHLO_REPLY: &str = "250-mx.example.org Hello client.example\r\n\
    250-PIPELINING\r\n250-SIZE 20971520\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n\
    250-SMTPUTF8\r\n250-CHUNKING\r\n250-BINARYMIME\r\n250-DSN\r\n250-STARTTLS\r\n\
    250-AUTH PLAIN LOGIN\r\n250 HELP\r\n";

/// Runs a case three ways, and with trailing data after its QUIT.
fn case(config: &ServerConfig, input: &str, expected_wire: &str) -> Vec<String> {
    let (log, wire) = run_three_ways(config, input.as_bytes());
    assert_eq!(wire, expected_wire, "for input {input:?}");
    if input.ends_with("QUIT\r\n") {
        let trailing = format!("{input}NOOP\r\nMAIL FROM:<x@y.z>\r\nunterminated");
        let (log2, wire2) = run_three_ways(config, trailing.as_bytes());
        assert_eq!(log, log2, "trailing data changed the events");
        assert_eq!(wire, wire2, "trailing data changed the replies");
    }
    log
}

#[test]
fn ehlo_advertises_exactly_what_is_enabled() {
    case(
        &config(),
        "EHLO client.example\r\nQUIT\r\n",
        &format!("{GREETING}{EHLO_REPLY}221 2.0.0 Bye\r\n"),
    );
    let mut minimal = ServerConfig::new("mx.example.org");
    minimal.extensions.pipelining = false;
    minimal.extensions.chunking = false;
    minimal.extensions.dsn = false;
    minimal.extensions.smtputf8 = false;
    minimal.limits.message_size = 1000;
    // AUTH needs TLS by default, so it is not advertised in clear.
    case(
        &minimal,
        "EHLO client.example\r\nHELO client.example\r\nQUIT\r\n",
        &format!(
            "{GREETING}250-mx.example.org Hello client.example\r\n250-SIZE 1000\r\n\
             250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 HELP\r\n\
             250 mx.example.org\r\n221 2.0.0 Bye\r\n"
        ),
    );
}

#[test]
fn a_whole_pipelined_transaction() {
    let log = case(
        &config(),
        "EHLO client.example\r\nMAIL FROM:<a@client.example> SIZE=40\r\n\
         RCPT TO:<b@example.org>\r\nRCPT TO:<unknown@example.org>\r\nRCPT TO:<c@example.org>\r\n\
         DATA\r\nSubject: test\r\n\r\n..dot\r\nbody\r\n.\r\nQUIT\r\n",
        &format!(
            "{GREETING}{EHLO_REPLY}250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n\
             550 5.1.1 Mailbox unavailable\r\n250 2.1.5 Recipient OK\r\n\
             354 Start mail input; end with <CRLF>.<CRLF>\r\n250 2.0.0 queued as 1\r\n\
             221 2.0.0 Bye\r\n"
        ),
    );
    assert!(
        log.contains(&"chunk Subject: test\\r\\n\\r\\n.dot\\r\\nbody\\r\\n".to_string()),
        "{log:?}"
    );
    assert!(log.contains(&"data chunking=false rcpts=2".to_string()));
    assert!(log.contains(&"end 29".to_string()));
}

#[test]
fn two_transactions_in_one_session() {
    let mut host = Host::new(config());
    host.input(
        Instant::now(),
        b"HELO c.example\r\nMAIL FROM:<>\r\nRCPT TO:<Postmaster>\r\nDATA\r\nA\r\n.\r\n\
          MAIL FROM:<a@c.example>\r\nRCPT TO:<b@c.example>\r\nDATA\r\nB\r\n.\r\n",
    );
    assert_eq!(host.messages, [b"A\r\n".to_vec(), b"B\r\n".to_vec()]);
    assert!(host.wire_text().ends_with("250 2.0.0 queued as 2\r\n"));
}

#[test]
fn bad_sequences_get_503() {
    case(
        &config(),
        "MAIL FROM:<a@b.example>\r\nEHLO client.example\r\nRCPT TO:<a@b.example>\r\nDATA\r\n\
         MAIL FROM:<a@b.example>\r\nDATA\r\nMAIL FROM:<a@b.example>\r\nQUIT\r\n",
        &format!(
            "{GREETING}503 5.5.1 Bad sequence of commands: send HELO/EHLO first\r\n{EHLO_REPLY}\
             503 5.5.1 Bad sequence of commands: need MAIL first\r\n\
             503 5.5.1 Bad sequence of commands: need MAIL first\r\n\
             250 2.1.0 Sender OK\r\n503 5.5.1 Bad sequence of commands: need RCPT first\r\n\
             503 5.5.1 Bad sequence of commands: sender already given\r\n221 2.0.0 Bye\r\n"
        ),
    );
}

#[test]
fn data_after_every_recipient_failed_gets_554() {
    case(
        &config(),
        "HELO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<unknown@b.example>\r\nDATA\r\nQUIT\r\n",
        &format!(
            "{GREETING}250 mx.example.org\r\n250 2.1.0 Sender OK\r\n550 5.1.1 Mailbox unavailable\r\n\
             554 5.5.1 No valid recipients\r\n221 2.0.0 Bye\r\n"
        ),
    );
}

#[test]
fn syntax_errors_and_unknown_commands() {
    case(
        &config(),
        "EHLO\r\nEHLO bad..name\r\nTURN\r\nXYZZY\r\nHELO c.example\r\nMAIL FROM:<a b@c>\r\n\
         MAIL FROM:a@b.example\r\nRCPT TO:<a@b.example>\r\nMAIL FROM:<a@b.example> FOO=1\r\n\
         NOOP\r\nHELP\r\nRSET\r\nQUIT\r\n",
        &format!(
            "{GREETING}501 5.5.4 Syntax error in parameters or arguments\r\n\
             501 5.5.4 Invalid domain name\r\n502 5.5.1 Command not implemented\r\n\
             502 5.5.1 Command not implemented\r\n250 mx.example.org\r\n\
             501 5.1.7 Bad sender address syntax\r\n\
             501 5.5.4 Syntax error in parameters or arguments\r\n\
             503 5.5.1 Bad sequence of commands: need MAIL first\r\n\
             555 5.5.4 Parameter not recognized or not implemented\r\n250 2.0.0 OK\r\n\
             214 2.0.0 See RFC 5321 and the server's documentation\r\n250 2.0.0 OK\r\n221 2.0.0 Bye\r\n"
        ),
    );
}

#[test]
fn vrfy_and_expn_follow_the_configuration() {
    case(
        &config(),
        "VRFY john\r\nEXPN staff\r\nQUIT\r\n",
        &format!(
            "{GREETING}252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery\r\n\
             502 5.5.1 EXPN not available\r\n221 2.0.0 Bye\r\n"
        ),
    );
    let mut asks = config();
    asks.vrfy = true;
    asks.expn = true;
    let log = case(
        &asks,
        "VRFY john\r\nEXPN staff\r\nQUIT\r\n",
        &format!("{GREETING}252 2.5.0 john\r\n252 2.5.0 staff\r\n221 2.0.0 Bye\r\n"),
    );
    assert!(log.contains(&"verify false john".to_string()));
    assert!(log.contains(&"verify true staff".to_string()));
}

#[test]
fn mail_parameters_are_checked() {
    let mut c = config();
    c.limits.message_size = 100;
    c.extensions.dsn = false;
    case(
        &c,
        "EHLO client.example\r\nMAIL FROM:<a@b.example> SIZE=101\r\nMAIL FROM:<a@b.example> RET=FULL\r\n\
         MAIL FROM:<ü@b.example>\r\nMAIL FROM:<ü@b.example> SMTPUTF8 BODY=8BITMIME\r\n\
         RCPT TO:<b@c.example> NOTIFY=NEVER\r\nRCPT TO:<ö@c.example>\r\nQUIT\r\n",
        &format!(
            "{GREETING}250-mx.example.org Hello client.example\r\n250-PIPELINING\r\n250-SIZE 100\r\n\
             250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n\
             250-BINARYMIME\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250 HELP\r\n\
             552 5.3.4 Message size exceeds fixed maximum message size\r\n\
             555 5.5.4 Parameter not recognized or not implemented\r\n\
             553 5.6.7 Non-ASCII address requires SMTPUTF8\r\n250 2.1.0 Sender OK\r\n\
             555 5.5.4 Parameter not recognized or not implemented\r\n\
             250 2.1.5 Recipient OK\r\n221 2.0.0 Bye\r\n"
        ),
    );
    let mut no_null = config();
    no_null.accept_null_sender = false;
    case(
        &no_null,
        "HELO c.example\r\nMAIL FROM:<>\r\nQUIT\r\n",
        &format!(
            "{GREETING}250 mx.example.org\r\n550 5.7.1 Empty sender address not accepted\r\n221 2.0.0 Bye\r\n"
        ),
    );
}

#[test]
fn host_refusals_reach_the_client() {
    case(
        &config(),
        "EHLO reject.example\r\nHELO c.example\r\nMAIL FROM:<blocked@b.example>\r\nQUIT\r\n",
        &format!(
            "{GREETING}550 5.7.1 Go away\r\n250 mx.example.org\r\n\
             550 5.7.1 Delivery is not allowed to this address\r\n221 2.0.0 Bye\r\n"
        ),
    );
}

#[test]
fn refused_connection_only_serves_quit() {
    let now = Instant::now();
    let mut host = Host::at(
        config(),
        now,
        Some(Reply::from_id(ReplyId::ConnectionRefused)),
    );
    host.input(now, b"EHLO c.example\r\nQUIT\r\n");
    assert_eq!(
        host.wire_text(),
        "554 5.7.1 No SMTP service here\r\n\
         503 5.5.1 Bad sequence of commands: no SMTP service here, send QUIT\r\n221 2.0.0 Bye\r\n"
    );
    let mut host = Host::at(config(), now, Some(Reply::from_id(ReplyId::ServiceClosing)));
    assert!(host.session.is_closed());
    host.input(now, b"EHLO c.example\r\n");
    assert_eq!(
        host.wire_text(),
        "421 4.3.2 Service not available, closing transmission channel\r\n"
    );
}

#[test]
fn auth_plain_and_login() {
    // PLAIN with an initial response, PLAIN in two steps, LOGIN in three.
    let plain = "AHVzZXIAc2VjcmV0"; // \0user\0secret
    let wrong = "AHVzZXIAd3Jvbmc="; // \0user\0wrong
    let log = case(
        &config(),
        &format!(
            "EHLO client.example\r\nAUTH PLAIN {wrong}\r\nAUTH PLAIN\r\n{plain}\r\nAUTH PLAIN {plain}\r\nQUIT\r\n"
        ),
        &format!(
            "{GREETING}{EHLO_REPLY}535 5.7.8 Authentication credentials invalid\r\n334\r\n\
             235 2.7.0 Authentication successful\r\n\
             503 5.5.1 Bad sequence of commands: already authenticated\r\n221 2.0.0 Bye\r\n"
        ),
    );
    assert!(log.contains(&"auth user ***".to_string()), "{log:?}");
    assert!(
        !log.iter()
            .any(|l| l.contains("secret") || l.contains("wrong"))
    );
    case(
        &config(),
        "EHLO client.example\r\nAUTH LOGIN\r\ndXNlcg==\r\nc2VjcmV0\r\nQUIT\r\n",
        &format!(
            "{GREETING}{EHLO_REPLY}334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n\
             235 2.7.0 Authentication successful\r\n221 2.0.0 Bye\r\n"
        ),
    );
    case(
        &config(),
        "EHLO client.example\r\nAUTH LOGIN dXNlcg==\r\n*\r\nAUTH PLAIN\r\nnot base64!\r\n\
         AUTH CRAM-MD5\r\nAUTH PLAIN AHVzZXI=\r\nQUIT\r\n",
        &format!(
            "{GREETING}{EHLO_REPLY}334 UGFzc3dvcmQ6\r\n501 5.0.0 Authentication cancelled\r\n\
             334\r\n501 5.5.2 Cannot decode authentication response\r\n\
             504 5.5.4 Unrecognized authentication type\r\n\
             501 5.5.2 Cannot decode authentication response\r\n221 2.0.0 Bye\r\n"
        ),
    );
}

#[test]
fn auth_before_tls_is_refused_by_default() {
    let mut c = ServerConfig::new("mx.example.org");
    c.extensions.starttls = true;
    case(
        &c,
        "EHLO client.example\r\nAUTH PLAIN AHVzZXIAc2VjcmV0\r\nQUIT\r\n",
        &format!(
            "{GREETING}250-mx.example.org Hello client.example\r\n250-PIPELINING\r\n\
             250-SIZE 20971520\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n\
             250-CHUNKING\r\n250-BINARYMIME\r\n250-DSN\r\n250-STARTTLS\r\n250 HELP\r\n\
             538 5.7.11 Encryption required for requested authentication mechanism\r\n\
             221 2.0.0 Bye\r\n"
        ),
    );
}

#[test]
fn starttls_discards_pipelined_commands_and_resets() {
    let mut c = ServerConfig::new("mx.example.org");
    c.extensions.starttls = true;
    let now = Instant::now();
    let mut session = ironpost_smtp_proto::ServerSession::new(c, now);
    let Some(Event::Connect(req)) = session.poll_event() else {
        panic!()
    };
    session.accept_connection(req).unwrap();
    session.handle_input(
        now,
        b"EHLO c.example\r\nSTARTTLS\r\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<x@y.z>\r\n",
    );
    let Some(Event::Helo(req)) = session.poll_event() else {
        panic!()
    };
    session.accept_helo(req).unwrap();
    assert_eq!(session.poll_event(), Some(Event::StartTls));
    // The injected commands were dropped, and so is anything before the handshake.
    assert_eq!(session.poll_event(), None);
    session.handle_input(now, b"MAIL FROM:<evil2@example.com>\r\n");
    assert_eq!(session.poll_event(), None);
    assert!(!session.wants_input());
    session.tls_established().unwrap();
    assert!(session.is_tls());
    // The session starts over: EHLO is needed again, and STARTTLS is no
    // longer offered while AUTH now is.
    session.handle_input(now, b"MAIL FROM:<a@b.example>\r\nEHLO c.example\r\n");
    let Some(Event::Helo(req)) = session.poll_event() else {
        panic!()
    };
    session.accept_helo(req).unwrap();
    let mut wire = Vec::new();
    session.poll_transmit(&mut wire);
    let wire = String::from_utf8(wire).unwrap();
    assert!(wire.contains("220 2.0.0 Ready to start TLS\r\n503 5.5.1 Bad sequence of commands: send HELO/EHLO first\r\n"), "{wire}");
    assert!(
        wire.ends_with("250-AUTH PLAIN LOGIN\r\n250 HELP\r\n"),
        "{wire}"
    );
    assert!(!wire[wire.find("Ready").unwrap()..].contains("STARTTLS"));
    session.handle_input(now, b"STARTTLS\r\n");
    session.poll_transmit(&mut Vec::new());
    assert_eq!(
        session.tls_established(),
        Err(ironpost_smtp_proto::Misuse::NoTlsPending)
    );
}

#[test]
fn smuggling_variants_never_end_data() {
    for fake_end in [
        "\n.\n", "\r.\r", "\n.\r\n", "\r\n.\n", "\r.\n", "\n.\r", "\r.\r\n",
    ] {
        let input = format!(
            "HELO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<b@b.example>\r\nDATA\r\n\
             Subject: x\r\n\r\nhi{fake_end}MAIL FROM:<evil@b.example>\r\nRCPT TO:<victim@b.example>\r\n\
             DATA\r\nsmuggled\r\n.\r\nQUIT\r\n"
        );
        let (log, wire) = run_three_ways(&config(), input.as_bytes());
        // One message only, and the smuggled commands are inside it.
        assert_eq!(
            log.iter().filter(|l| l.starts_with("mail ")).count(),
            1,
            "{fake_end:?}: {log:?}"
        );
        assert_eq!(wire.matches("queued as").count(), 1, "{fake_end:?}");
        let chunk = log.iter().find(|l| l.starts_with("chunk ")).unwrap();
        assert!(chunk.contains("MAIL FROM:<evil@b.example>"), "{fake_end:?}");
    }
}

#[test]
fn bare_line_endings_can_be_refused_with_554() {
    let mut c = config();
    c.bare_line_endings = BareLineEndings::Reject;
    let log = case(
        &c,
        "HELO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<b@b.example>\r\nDATA\r\n\
         a\nb\r\n.\r\nNOOP\r\nQUIT\r\n",
        &format!(
            "{GREETING}250 mx.example.org\r\n250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n\
             354 Start mail input; end with <CRLF>.<CRLF>\r\n\
             554 5.6.0 Message contains bare CR or LF line endings\r\n250 2.0.0 OK\r\n221 2.0.0 Bye\r\n"
        ),
    );
    assert!(
        log.contains(&"aborted BareLineEnding".to_string()),
        "{log:?}"
    );
    assert!(!log.iter().any(|l| l.starts_with("end ")));
}

#[test]
fn oversized_message_gets_552_and_the_session_goes_on() {
    let mut c = config();
    c.limits.message_size = 10;
    let log = case(
        &c,
        "HELO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<b@b.example>\r\nDATA\r\n\
         0123456789abcdef\r\n.\r\nMAIL FROM:<a@b.example>\r\nQUIT\r\n",
        &format!(
            "{GREETING}250 mx.example.org\r\n250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n\
             354 Start mail input; end with <CRLF>.<CRLF>\r\n\
             552 5.3.4 Message size exceeds fixed maximum message size (18 octets, the maximum is 10)\r\n\
             250 2.1.0 Sender OK\r\n221 2.0.0 Bye\r\n"
        ),
    );
    assert!(log.contains(&"aborted TooBig".to_string()));
}

#[test]
fn bdat_chunks_and_last() {
    let log = case(
        &config(),
        "EHLO client.example\r\nMAIL FROM:<a@b.example> BODY=BINARYMIME\r\nRCPT TO:<b@b.example>\r\n\
         BDAT 5\r\nHel\r\nBDAT 4 LAST\r\nlo\r\nQUIT\r\n",
        &format!(
            "{GREETING}{EHLO_REPLY}250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n\
             250 2.0.0 Chunk received\r\n250 2.0.0 queued as 1\r\n221 2.0.0 Bye\r\n"
        ),
    );
    assert!(
        log.contains(&"chunk Hel\\r\\nlo\\r\\n".to_string()),
        "{log:?}"
    );
    assert!(log.contains(&"end 9".to_string()));
    // BDAT 0 LAST ends a message; DATA is refused once chunks started and for BINARYMIME.
    case(
        &config(),
        "EHLO client.example\r\nMAIL FROM:<a@b.example> BODY=BINARYMIME\r\nRCPT TO:<b@b.example>\r\n\
         DATA\r\nBDAT 3\r\nabcDATA\r\nBDAT 0 LAST\r\nQUIT\r\n",
        &format!(
            "{GREETING}{EHLO_REPLY}250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n\
             503 5.5.1 Bad sequence of commands: use BDAT for this message\r\n\
             250 2.0.0 Chunk received\r\n503 5.5.1 Bad sequence of commands: use BDAT for this message\r\n\
             250 2.0.0 queued as 1\r\n221 2.0.0 Bye\r\n"
        ),
    );
}

#[test]
fn bdat_bytes_are_never_read_as_commands() {
    // Without a transaction, or with CHUNKING off, the octets are still consumed.
    let mut no_chunking = config();
    no_chunking.extensions.chunking = false;
    for c in [config(), no_chunking] {
        let (log, wire) = run_three_ways(
            &c,
            b"HELO c.example\r\nBDAT 22\r\nMAIL FROM:<e@vil.example>\r\nQUIT\r\n",
        );
        assert!(!log.iter().any(|l| l.starts_with("mail")), "{log:?}");
        assert!(wire.ends_with("221 2.0.0 Bye\r\n"));
    }
}

#[test]
fn bdat_over_the_size_limit_is_refused_whole() {
    let mut c = config();
    c.limits.message_size = 8;
    let log = case(
        &c,
        "EHLO client.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<b@b.example>\r\n\
         BDAT 5\r\n12345BDAT 5\r\n67890BDAT 2 LAST\r\nxyMAIL FROM:<a@b.example>\r\nQUIT\r\n",
        &format!(
            "{GREETING}{}250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n\
             250 2.0.0 Chunk received\r\n\
             552 5.3.4 Message size exceeds fixed maximum message size (10 octets, the maximum is 8)\r\n\
             552 5.3.4 Message size exceeds fixed maximum message size (10 octets, the maximum is 8)\r\n\
             250 2.1.0 Sender OK\r\n221 2.0.0 Bye\r\n",
            EHLO_REPLY.replace("SIZE 20971520", "SIZE 8")
        ),
    );
    assert!(log.contains(&"aborted TooBig".to_string()));
}

#[test]
fn long_lines_get_500_and_unterminated_floods_get_421() {
    let mut c = config();
    c.limits.command_line = 64;
    c.limits.auth_line = 128;
    c.limits.unterminated_line = 1000;
    let long = "x".repeat(100);
    case(
        &c,
        &format!("NOOP {long}\r\nAUTH PLAIN {}\r\nQUIT\r\n", "A".repeat(200)),
        &format!(
            "{GREETING}500 5.5.2 Line too long\r\n500 5.5.2 Line too long\r\n221 2.0.0 Bye\r\n"
        ),
    );
    let flood = "y".repeat(5000);
    let (log, wire) = run_three_ways(&c, format!("NOOP\r\n{flood}").as_bytes());
    assert_eq!(
        wire,
        format!(
            "{GREETING}250 2.0.0 OK\r\n421 4.7.0 Line too long and not terminated, closing connection\r\n"
        )
    );
    assert_eq!(log.last().map(String::as_str), Some("closed"));
    // Also when the line end comes, but too late.
    let (_, wire2) = run_three_ways(&c, format!("NOOP\r\n{flood}\r\nNOOP\r\n").as_bytes());
    assert_eq!(wire, wire2);
}

#[test]
fn too_many_bad_commands_close_the_session() {
    let mut c = config();
    c.limits.bad_commands = 3;
    let (log, wire) = run_three_ways(&c, b"FOO\r\nBAR\r\nNOOP\r\nBAZ\r\nNOOP\r\n");
    assert_eq!(
        wire,
        format!(
            "{GREETING}502 5.5.1 Command not implemented\r\n502 5.5.1 Command not implemented\r\n\
             250 2.0.0 OK\r\n502 5.5.1 Command not implemented\r\n\
             421 4.7.0 Too many errors, closing connection\r\n"
        )
    );
    assert_eq!(log.last().map(String::as_str), Some("closed"));
}

#[test]
fn too_many_recipients_get_452() {
    let mut c = config();
    c.limits.recipients = 2;
    case(
        &c,
        "HELO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<1@b.example>\r\nRCPT TO:<2@b.example>\r\n\
         RCPT TO:<3@b.example>\r\nQUIT\r\n",
        &format!(
            "{GREETING}250 mx.example.org\r\n250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n\
             250 2.1.5 Recipient OK\r\n452 4.5.3 Too many recipients\r\n221 2.0.0 Bye\r\n"
        ),
    );
}

#[test]
fn rset_and_ehlo_abandon_the_transaction() {
    let log = case(
        &config(),
        "HELO c.example\r\nMAIL FROM:<a@b.example>\r\nRSET\r\nMAIL FROM:<a@b.example>\r\n\
         EHLO client.example\r\nRCPT TO:<b@b.example>\r\nQUIT\r\n",
        &format!(
            "{GREETING}250 mx.example.org\r\n250 2.1.0 Sender OK\r\n250 2.0.0 OK\r\n\
             250 2.1.0 Sender OK\r\n{EHLO_REPLY}503 5.5.1 Bad sequence of commands: need MAIL first\r\n\
             221 2.0.0 Bye\r\n"
        ),
    );
    assert_eq!(log.iter().filter(|l| *l == "reset").count(), 2, "{log:?}");
}

#[test]
fn replies_can_be_translated() {
    let mut c = config();
    c.texts.set(ReplyId::Bye, "Au revoir");
    c.texts.set(ReplyId::NotImplemented, "Commande inconnue");
    c.banner = "Bienvenue".into();
    case(
        &c,
        "FOO\r\nQUIT\r\n",
        "220 mx.example.org Bienvenue\r\n502 5.5.1 Commande inconnue\r\n221 2.0.0 Au revoir\r\n",
    );
}

#[test]
fn rcpt_decisions_run_in_parallel_and_reply_in_order() {
    let now = Instant::now();
    let mut session = ironpost_smtp_proto::ServerSession::new(config(), now);
    let Some(Event::Connect(req)) = session.poll_event() else {
        panic!()
    };
    session.accept_connection(req).unwrap();
    session.handle_input(
        now,
        b"HELO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<1@b.example>\r\n\
          RCPT TO:<2@b.example>\r\nRCPT TO:<3@b.example>\r\nNOOP\r\n",
    );
    let Some(Event::Helo(req)) = session.poll_event() else {
        panic!()
    };
    session.accept_helo(req).unwrap();
    let Some(Event::Mail(req)) = session.poll_event() else {
        panic!()
    };
    session.accept_mail(req).unwrap();
    let mut rcpts = Vec::new();
    while let Some(Event::Rcpt(req)) = session.poll_event() {
        rcpts.push(req);
    }
    assert_eq!(rcpts.len(), 3);
    // Answer out of order: the replies still come in order, and NOOP waits.
    let third = rcpts.pop().unwrap();
    let second = rcpts.pop().unwrap();
    let first = rcpts.pop().unwrap();
    session.accept_rcpt(third).unwrap();
    session
        .reject_rcpt(second, Reply::from_id(ReplyId::MailboxUnavailable))
        .unwrap();
    let mut wire = Vec::new();
    session.poll_transmit(&mut wire);
    assert!(!String::from_utf8_lossy(&wire).contains("Recipient"));
    assert_eq!(
        session.poll_timeout(),
        None,
        "no timer while the host decides"
    );
    session.accept_rcpt(first).unwrap();
    session.poll_transmit(&mut wire);
    assert!(String::from_utf8_lossy(&wire).ends_with(
        "250 2.1.5 Recipient OK\r\n550 5.1.1 Mailbox unavailable\r\n250 2.1.5 Recipient OK\r\n250 2.0.0 OK\r\n"
    ));
}

#[test]
fn pending_decisions_are_capped() {
    let mut c = config();
    c.limits.pending_decisions = 2;
    let now = Instant::now();
    let mut session = ironpost_smtp_proto::ServerSession::new(c, now);
    let Some(Event::Connect(req)) = session.poll_event() else {
        panic!()
    };
    session.accept_connection(req).unwrap();
    session.handle_input(now, b"HELO c.example\r\nMAIL FROM:<a@b.example>\r\n");
    let Some(Event::Helo(req)) = session.poll_event() else {
        panic!()
    };
    session.accept_helo(req).unwrap();
    let Some(Event::Mail(req)) = session.poll_event() else {
        panic!()
    };
    session.accept_mail(req).unwrap();
    session.handle_input(now, "RCPT TO:<x@b.example>\r\n".repeat(5).as_bytes());
    let mut outstanding = 0;
    while let Some(Event::Rcpt(_)) = session.poll_event() {
        outstanding += 1;
    }
    assert_eq!(outstanding, 2);
    assert!(session.wants_input());
    session.handle_input(now, &vec![b'x'; 5000]);
    assert!(
        !session.wants_input(),
        "input stops while the host is behind"
    );
}

#[test]
fn answers_from_another_session_are_refused() {
    let now = Instant::now();
    let mut a = ironpost_smtp_proto::ServerSession::new(config(), now);
    let mut b = ironpost_smtp_proto::ServerSession::new(config(), now);
    let Some(Event::Connect(req_a)) = a.poll_event() else {
        panic!()
    };
    let Some(Event::Connect(req_b)) = b.poll_event() else {
        panic!()
    };
    a.accept_connection(req_a).unwrap();
    // Same numbering, but b's request was consumed... a has no pending decision now.
    assert_eq!(
        a.accept_connection(req_b),
        Err(ironpost_smtp_proto::Misuse::UnknownRequest)
    );
}

#[test]
fn idle_clients_get_421_after_the_timeout() {
    let now = Instant::now();
    let mut c = config();
    c.limits.command_timeout = Duration::from_secs(300);
    c.limits.data_timeout = Duration::from_secs(600);
    let mut host = Host::at(c, now, None);
    assert_eq!(
        host.session.poll_timeout(),
        Some(now + Duration::from_secs(300))
    );
    host.input(now + Duration::from_secs(100), b"HELO c.example\r\n");
    let deadline = now + Duration::from_secs(400);
    assert_eq!(host.session.poll_timeout(), Some(deadline));
    host.timeout(deadline - Duration::from_millis(1));
    assert!(!host.session.is_closed());
    host.input(
        now + Duration::from_secs(200),
        b"MAIL FROM:<a@b.example>\r\nRCPT TO:<b@b.example>\r\nDATA\r\npart",
    );
    assert_eq!(
        host.session.poll_timeout(),
        Some(now + Duration::from_secs(800))
    );
    host.timeout(now + Duration::from_secs(800));
    assert!(host.session.is_closed());
    assert!(
        host.wire_text()
            .ends_with("421 4.4.2 Timeout exceeded, closing connection\r\n")
    );
    assert_eq!(host.log.last().map(String::as_str), Some("closed"));
    assert_eq!(host.session.poll_timeout(), None);
}

#[test]
fn shutdown_says_421_and_closes() {
    let mut host = Host::new(config());
    host.input(Instant::now(), b"HELO c.example\r\n");
    host.session
        .shutdown(Reply::from_id(ReplyId::ServiceClosing));
    host.drain();
    assert!(host.session.is_closed());
    assert!(
        host.wire_text()
            .ends_with("421 4.3.2 Service not available, closing transmission channel\r\n")
    );
}

#[test]
fn a_ten_megabyte_body_streams_in_chunks() {
    let mut c = config();
    c.limits.message_size = 11 * 1024 * 1024;
    let line = "0123456789".repeat(7) + "\r\n";
    let mut body = String::new();
    while body.len() < 10 * 1024 * 1024 {
        body.push_str(&line);
        body.push_str(".starts with a dot\r\n");
    }
    let input = format!(
        "HELO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<b@b.example>\r\nDATA\r\n{}.\r\n",
        body.replace("\r\n.", "\r\n..")
    );
    let now = Instant::now();
    let mut host = Host::at(c, now, None);
    for piece in input.as_bytes().chunks(65536) {
        host.input(now, piece);
    }
    assert_eq!(host.messages.len(), 1);
    assert_eq!(host.messages[0], body.as_bytes());
}

#[test]
fn split_points_at_every_position_agree_for_a_mixed_session() {
    let input = b"EHLO client.example\r\nAUTH PLAIN AHVzZXIAc2VjcmV0\r\nMAIL FROM:<a@b.example> BODY=8BITMIME\r\n\
        RCPT TO:<b@b.example> NOTIFY=FAILURE\r\nDATA\r\n.x\r\n\r\n.\r\nBDAT 3 LAST\r\nabcRSET\r\nQUIT\r\n";
    let reference = run_split(&config(), input, &[]);
    for i in 1..input.len() {
        for j in [i + 1, i + 3, i + 11] {
            assert_eq!(
                run_split(&config(), input, &[i, j]),
                reference,
                "split at {i},{j}"
            );
        }
    }
}
