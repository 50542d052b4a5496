//! `ironpost serve` over SMTP: swaks on the three listeners (STARTTLS,
//! implicit TLS, AUTH), the relay policy for a client that is not "My
//! computer", the session limits, the logs and the orderly stop.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use ironpost_e2e::server::{Ports, Server, env_with_listeners, free_port};
use ironpost_e2e::{Env, json, ok};
use ironpost_store::Store;

const ALICE_PASSWORD: &str = "correct horse 42";

/// A server with example.com, alice@ and bob@.
fn setup(extra: &str) -> (Env, Ports, Server) {
    let (env, ports) = env_with_listeners(extra);
    ok(&env.run(&["domain", "add", "example.com"]));
    let pw = format!("{ALICE_PASSWORD}\n");
    ok(&env.run_with_stdin(
        &["account", "add", "alice@example.com", "--password-stdin"],
        pw.as_bytes(),
    ));
    ok(&env.run_with_stdin(
        &["account", "add", "bob@example.com", "--password-stdin"],
        b"bob's password\n",
    ));
    let server = Server::start(&env);
    (env, ports, server)
}

fn swaks(args: &[&str]) -> Output {
    Command::new("swaks")
        .args(["--timeout", "20", "--hide-informational"])
        .args(args)
        .output()
        .expect("swaks runs")
}

fn transcript(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The messages in `address`'s INBOX once the queue is empty (at most 20 s).
fn inbox(env: &Env, address: &str, expected: usize) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let queue = json(&env.run(&["queue", "list", "--json"]));
        let store = Store::open_dir(env.data_dir().join("store")).expect("store");
        let account = store.account(address).expect("account");
        let mailbox = store.mailbox(account.id, "INBOX").expect("INBOX");
        let messages = store.messages(mailbox.id).expect("messages");
        if queue.as_array().is_some_and(Vec::is_empty) && messages.len() >= expected {
            return messages
                .iter()
                .map(|m| store.read_message(mailbox.id, m.uid).expect("readable"))
                .collect();
        }
        assert!(
            Instant::now() < deadline,
            "{address}: {} messages, queue {queue}",
            messages.len()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn submission_with_starttls_and_auth_plain_delivers() {
    let (env, ports, server) = setup("");
    let out = swaks(&[
        "--server",
        &format!("127.0.0.1:{}", ports.submission),
        "--tls",
        "--auth",
        "PLAIN",
        "--auth-user",
        "alice@example.com",
        "--auth-password",
        ALICE_PASSWORD,
        "--from",
        "alice@example.com",
        "--to",
        "bob@example.com",
        "--header",
        "Subject: over submission",
    ]);
    let text = transcript(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("235 2.7.0"), "{text}");
    assert!(
        text.contains("250 2.0.0 Message accepted for delivery as #"),
        "{text}"
    );

    let messages = inbox(&env, "bob@example.com", 1);
    let message = String::from_utf8_lossy(&messages[0]);
    assert!(
        message.starts_with("Delivered-To: bob@example.com\r\nReceived: from "),
        "{message}"
    );
    let received = message.split("\r\n\r\n").next().unwrap();
    assert!(
        received.contains("by mail.example.test (Ironpost) with ESMTPSA id"),
        "{received}"
    );
    assert!(received.contains("for <bob@example.com>;"), "{received}");
    assert!(
        message.contains("Subject: over submission\r\n"),
        "{message}"
    );
    let log = server.log();
    assert!(log.contains("listener=submission"), "{log}");
    assert!(log.contains("user=alice@example.com"), "{log}");
}

#[test]
fn smtps_takes_tls_from_the_first_byte() {
    let (env, ports, _server) = setup("");
    let out = swaks(&[
        "--server",
        &format!("127.0.0.1:{}", ports.smtps),
        "--tls-on-connect",
        "--auth",
        "LOGIN",
        "--auth-user",
        "alice@example.com",
        "--auth-password",
        ALICE_PASSWORD,
        "--from",
        "alice@example.com",
        "--to",
        "bob@example.com",
    ]);
    let text = transcript(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("250 2.0.0 Message accepted"), "{text}");
    inbox(&env, "bob@example.com", 1);
}

#[test]
fn a_wrong_password_gets_535_and_is_never_logged() {
    let (_env, ports, server) = setup("[log]\nlevel = \"trace\"\n[smtp]\n");
    let wrong = "Tr0ub4dor&3-wrong";
    let out = swaks(&[
        "--server",
        &format!("127.0.0.1:{}", ports.submission),
        "--tls",
        "--auth",
        "PLAIN",
        "--auth-user",
        "alice@example.com",
        "--auth-password",
        wrong,
        "--from",
        "alice@example.com",
        "--to",
        "bob@example.com",
    ]);
    let text = transcript(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("535 5.7.8"), "{text}");
    // And a successful login, so that both passwords went through the server.
    let out = swaks(&[
        "--server",
        &format!("127.0.0.1:{}", ports.smtps),
        "--tls-on-connect",
        "--auth",
        "LOGIN",
        "--auth-user",
        "alice@example.com",
        "--auth-password",
        ALICE_PASSWORD,
        "--quit-after",
        "AUTH",
    ]);
    assert!(out.status.success(), "{}", transcript(&out));

    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("authentication failed"), "{log}");
    assert!(log.contains("authenticated"), "{log}");
    let plain_b64 = |user: &str, pw: &str| base64(format!("\0{user}\0{pw}").as_bytes());
    for secret in [
        wrong.to_string(),
        ALICE_PASSWORD.to_string(),
        base64(wrong.as_bytes()),
        base64(ALICE_PASSWORD.as_bytes()),
        plain_b64("alice@example.com", wrong),
    ] {
        assert!(!log.contains(&secret), "{secret:?} is in the log:\n{log}");
    }
}

#[test]
fn auth_before_starttls_is_refused() {
    let (_env, ports, _server) = setup("");
    let mut smtp = Smtp::connect(ports.submission);
    let ehlo = smtp.command("EHLO client.example");
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    assert!(!ehlo.contains("AUTH"), "AUTH offered before TLS: {ehlo}");
    let auth = base64(format!("\0alice@example.com\0{ALICE_PASSWORD}").as_bytes());
    let reply = smtp.command(&format!("AUTH PLAIN {auth}"));
    assert!(reply.starts_with("538 5.7.11"), "{reply}");
    // Submission takes no mail without AUTH.
    let reply = smtp.command("MAIL FROM:<alice@example.com>");
    assert!(reply.starts_with("530 5.7.0"), "{reply}");
    assert!(smtp.command("QUIT").starts_with("221"));
}

#[test]
fn a_client_that_is_not_my_computer_cannot_relay_but_can_deliver() {
    let (env, ports, _server) = setup("");
    let server = format!("127.0.0.1:{}", ports.smtp);
    let from_other_host = |from: &str, to: &str| {
        swaks(&[
            "--server",
            &server,
            "--local-interface",
            "127.0.0.2",
            "--from",
            from,
            "--to",
            to,
        ])
    };
    let out = from_other_host("someone@remote.example", "friend@elsewhere.example");
    let text = transcript(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("550 5.7.1"), "{text}");

    // A sender in a local domain needs AUTH.
    let out = from_other_host("alice@example.com", "bob@example.com");
    let text = transcript(&out);
    assert!(text.contains("530 5.7.0"), "{text}");

    // An unknown local user.
    let out = from_other_host("someone@remote.example", "nobody@example.com");
    let text = transcript(&out);
    assert!(text.contains("550 5.1.1"), "{text}");

    let out = from_other_host("someone@remote.example", "bob@example.com");
    let text = transcript(&out);
    assert!(out.status.success(), "{text}");
    let messages = inbox(&env, "bob@example.com", 1);
    assert!(
        String::from_utf8_lossy(&messages[0]).contains("([127.0.0.2])"),
        "{}",
        String::from_utf8_lossy(&messages[0])
    );
    // Nothing was queued for the refused relay.
    assert_eq!(
        json(&env.run(&["queue", "list", "--json"])),
        serde_json::json!([])
    );
}

#[test]
fn a_disabled_account_loses_its_session_at_the_next_transaction() {
    let (env, ports, _server) = setup("allow_plaintext_auth = true\n");
    let mut smtp = Smtp::connect(ports.submission);
    smtp.command("EHLO client.example");
    let auth = base64(format!("\0alice@example.com\0{ALICE_PASSWORD}").as_bytes());
    assert!(
        smtp.command(&format!("AUTH PLAIN {auth}"))
            .starts_with("235")
    );
    assert!(
        smtp.command("MAIL FROM:<alice@example.com>")
            .starts_with("250")
    );
    assert!(smtp.command("RSET").starts_with("250"));
    ok(&env.run(&["account", "disable", "alice@example.com"]));
    let reply = smtp.command("MAIL FROM:<alice@example.com>");
    assert!(reply.starts_with("550 5.7.1"), "{reply}");
}

#[test]
fn limits_close_idle_and_misbehaving_sessions() {
    let (_env, ports, _server) = setup("timeout_seconds = 1\nmax_bad_commands = 3\n");
    let mut smtp = Smtp::connect(ports.smtp);
    for _ in 0..3 {
        assert!(smtp.command("FROB").starts_with("502"));
    }
    // The third bad command is the last one served.
    let reply = smtp.reply();
    assert!(reply.starts_with("421 4.7.0"), "{reply}");
    assert!(smtp.closed());

    let mut idle = Smtp::connect(ports.smtp);
    let started = Instant::now();
    let reply = idle.reply();
    assert!(reply.starts_with("421 4.4.2"), "{reply}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn connections_over_the_limit_are_told_to_come_back() {
    let (_env, ports, _server) = setup("max_connections = 2\n");
    let _first = Smtp::connect(ports.smtp);
    let _second = Smtp::connect(ports.smtp);
    let mut third = TcpStream::connect(("127.0.0.1", ports.smtp)).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reply = String::new();
    BufReader::new(&mut third).read_line(&mut reply).unwrap();
    assert!(reply.starts_with("421 4.7.0"), "{reply}");
}

#[test]
fn a_stop_lets_the_message_in_progress_finish() {
    let (env, ports, server) = setup("");
    let mut smtp = Smtp::connect(ports.smtp);
    smtp.command("EHLO client.example");
    assert!(
        smtp.command("MAIL FROM:<x@remote.example>")
            .starts_with("250")
    );
    assert!(smtp.command("RCPT TO:<bob@example.com>").starts_with("250"));
    assert!(smtp.command("DATA").starts_with("354"));
    smtp.send("Subject: in flight\r\n\r\nstarted before the stop\r\n");

    let pid = server.pid().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    // The listener is closed at once.
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", ports.smtp)).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        thread::sleep(Duration::from_millis(20));
    }
    // The transaction in progress completes, then the session is closed.
    let reply = smtp.command(".");
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let reply = smtp.reply();
    assert!(reply.starts_with("421 4.3.2"), "{reply}");
    let (status, log) = server.terminate_wait();
    assert!(status.success(), "{log}");
    assert!(log.contains("stopped"), "{log}");

    let _again = Server::start(&env);
    let messages = inbox(&env, "bob@example.com", 1);
    assert!(String::from_utf8_lossy(&messages[0]).ends_with("started before the stop\r\n"));
}

#[test]
fn an_address_in_use_is_named() {
    let port = free_port();
    let _taken = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let env = Env::with_config(&format!(
        "[[smtp.listeners]]\nname = \"busy\"\nbind = [\"127.0.0.1:{port}\"]\nmode = \"plain\"\n\
         [pop3]\nlisteners = []\n[imap]\nlisteners = []\n"
    ));
    let out = env.run(&["serve"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("listener busy: cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn ipv4_and_ipv6_share_a_port() {
    let port = free_port();
    let env = Env::with_config(&format!(
        "[[smtp.listeners]]\nname = \"both\"\nbind = [\"127.0.0.1:{port}\", \"[::1]:{port}\"]\nmode = \"plain\"\n\
         [pop3]\nlisteners = []\n[imap]\nlisteners = []\n"
    ));
    let _server = Server::start(&env);
    for host in ["127.0.0.1", "::1"] {
        let stream = TcpStream::connect((host, port)).unwrap();
        let mut smtp = Smtp::from_stream(stream);
        assert!(
            smtp.greeting.starts_with("220 mail.example.test"),
            "{}",
            smtp.greeting
        );
        assert!(smtp.command("QUIT").starts_with("221"));
    }
}

/// A line-by-line SMTP client over plain TCP.
struct Smtp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    greeting: String,
}

impl Smtp {
    fn connect(port: u16) -> Smtp {
        Smtp::from_stream(TcpStream::connect(("127.0.0.1", port)).expect("connects"))
    }

    fn from_stream(stream: TcpStream) -> Smtp {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let writer = stream.try_clone().unwrap();
        let mut smtp = Smtp {
            reader: BufReader::new(stream),
            writer,
            greeting: String::new(),
        };
        smtp.greeting = smtp.reply();
        smtp
    }

    fn send(&mut self, text: &str) {
        self.writer.write_all(text.as_bytes()).unwrap();
    }

    /// Sends a command line and returns the whole reply.
    fn command(&mut self, line: &str) -> String {
        self.send(&format!("{line}\r\n"));
        self.reply()
    }

    /// Reads one reply, all its lines; empty when the server closed.
    fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return all,
                Ok(_) => {}
            }
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all;
            }
        }
    }

    fn closed(&mut self) -> bool {
        let mut rest = String::new();
        matches!(self.reader.read_line(&mut rest), Ok(0))
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
