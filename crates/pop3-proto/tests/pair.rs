//! Our client against our server, in memory.

mod common;

use std::time::{Duration, Instant};

use common::{Host, config, uid};
use ironpost_pop3_proto::{
    ClientConfig, ClientError, ClientEvent, ClientSession, Command, Credentials, Response,
    ResponseCode, ServerConfig, TlsMode,
};

/// What the client does once logged in.
#[derive(Clone, Copy)]
enum Plan {
    /// UIDL, LIST, RETR and DELE of every message, QUIT: all at once.
    FetchAll(u32),
    /// STAT, TOP 1 1, QUIT.
    Peek,
    /// QUIT.
    Quit,
}

/// Runs client and server against each other until neither has anything
/// to send.
struct Pair {
    server: Host,
    client: ClientSession,
    now: Instant,
    plan: Plan,
    /// The content of each RETR/TOP, in order.
    fetched: Vec<Vec<u8>>,
    current: Vec<u8>,
    events: Vec<String>,
    done: Vec<(Command, Response)>,
    failures: Vec<ClientError>,
    /// Everything the client sent.
    client_wire: Vec<u8>,
    sent_server: usize,
}

impl Pair {
    fn new(server: ServerConfig, client: ClientConfig, messages: Vec<Vec<u8>>, plan: Plan) -> Pair {
        let now = Instant::now();
        Pair {
            server: Host::at(server, messages, now),
            client: ClientSession::new(client, now),
            now,
            plan,
            fetched: Vec::new(),
            current: Vec::new(),
            events: Vec::new(),
            done: Vec::new(),
            failures: Vec::new(),
            client_wire: Vec::new(),
            sent_server: 0,
        }
    }

    fn run(mut self) -> Pair {
        loop {
            while let Some(event) = self.client.poll_event() {
                self.on_client_event(event);
            }
            let mut to_server = Vec::new();
            self.client.poll_transmit(&mut to_server);
            self.client_wire.extend_from_slice(&to_server);
            if !to_server.is_empty() {
                self.server.input(self.now, &to_server);
            }
            let to_client = self.server.wire[self.sent_server..].to_vec();
            self.sent_server = self.server.wire.len();
            if to_client.is_empty() && to_server.is_empty() {
                break;
            }
            self.now += Duration::from_millis(10);
            self.client.handle_input(self.now, &to_client);
        }
        self
    }

    fn on_client_event(&mut self, event: ClientEvent) {
        let (c, now) = (&mut self.client, self.now);
        match event {
            ClientEvent::StartTls => c.tls_established(now).unwrap(),
            ClientEvent::Ready => {
                self.events.push("Ready".into());
                match self.plan {
                    Plan::FetchAll(n) => {
                        c.uidl(now, None).unwrap();
                        c.list(now, None).unwrap();
                        for i in 1..=n {
                            c.retr(now, i).unwrap();
                            c.dele(now, i).unwrap();
                        }
                        c.quit(now).unwrap();
                    }
                    Plan::Peek => {
                        c.stat(now).unwrap();
                        c.top(now, 1, 1).unwrap();
                        c.quit(now).unwrap();
                    }
                    Plan::Quit => c.quit(now).unwrap(),
                }
            }
            ClientEvent::MessageChunk(bytes) => self.current.extend_from_slice(&bytes),
            ClientEvent::Done { command, response } => {
                if matches!(command, Command::Retr(_) | Command::Top { .. }) && response.is_ok() {
                    self.fetched.push(std::mem::take(&mut self.current));
                }
                self.done.push((command, response));
            }
            ClientEvent::Failed(error) => self.failures.push(error),
            other => self.events.push(format!("{other:?}")),
        }
    }
}

/// The test server without STLS: logins in clear.
fn plain_server() -> ServerConfig {
    let mut c = config();
    c.stls = false;
    c
}

fn client_config() -> ClientConfig {
    let mut c = ClientConfig::new(Credentials::new("alice", "secret"));
    c.login_requires_tls = false;
    c
}

fn three_messages() -> Vec<Vec<u8>> {
    vec![
        b"From: a@example.org\r\nSubject: plain\r\n\r\nHello.\r\n".to_vec(),
        b"From: b@example.org\r\nSubject: dots\r\n\r\n.\r\n..\r\n.leading dot\r\n...\r\nend.\r\n"
            .to_vec(),
        b"From: c@example.org\r\nSubject: empty body\r\n\r\n".to_vec(),
    ]
}

#[test]
fn login_list_retrieve_delete_quit_round_trip() {
    let messages = three_messages();
    let pair = Pair::new(
        plain_server(),
        client_config(),
        messages.clone(),
        Plan::FetchAll(3),
    )
    .run();
    assert!(pair.failures.is_empty(), "{:?}", pair.failures);
    assert_eq!(
        pair.fetched, messages,
        "messages differ after the round trip"
    );
    assert_eq!(
        pair.events,
        [
            "Ready",
            "UniqueId { message: 1, uid: \"whqtswO00WBw418f9t5JxYwZ\" }",
            "UniqueId { message: 2, uid: \"QhdPYR:00WBw1Ph7x7\" }",
            "UniqueId { message: 3, uid: \"uid-3\" }",
            "Scan { message: 1, size: 47 }",
            "Scan { message: 2, size: 70 }",
            "Scan { message: 3, size: 44 }",
            "Closed"
        ]
    );
    assert_eq!(uid(2), "uid-3");
    let commands: Vec<String> = pair.done.iter().map(|(c, _)| format!("{c:?}")).collect();
    assert_eq!(
        commands,
        [
            "Uidl(None)",
            "List(None)",
            "Retr(1)",
            "Dele(1)",
            "Retr(2)",
            "Dele(2)",
            "Retr(3)",
            "Dele(3)",
            "Quit"
        ]
    );
    assert!(pair.done.iter().all(|(_, r)| r.is_ok()));
    assert_eq!(
        pair.done.last().unwrap().1.text(),
        "dewey POP3 server signing off (maildrop empty)"
    );
    assert_eq!(
        pair.server.log,
        [
            "connect",
            "login Plain alice None ***",
            "retrieve 1 top None",
            "retrieve 2 top None",
            "retrieve 3 top None",
            "update [1, 2, 3]",
            "closed"
        ]
    );
    // The server offers PIPELINING: after login, one flight.
    assert_eq!(
        String::from_utf8(pair.client_wire).unwrap(),
        "CAPA\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\nUIDL\r\nLIST\r\nRETR 1\r\nDELE 1\r\n\
         RETR 2\r\nDELE 2\r\nRETR 3\r\nDELE 3\r\nQUIT\r\n"
    );
    assert!(pair.client.is_closed() && pair.server.session.is_closed());
}

#[test]
fn stls_then_login_over_tls() {
    let mut server = config();
    server.login_requires_tls = true;
    let mut client = client_config();
    client.login_requires_tls = true;
    let pair = Pair::new(server, client, three_messages(), Plan::Peek).run();
    assert!(pair.failures.is_empty(), "{:?}", pair.failures);
    assert!(pair.client.is_tls() && pair.server.session.is_tls());
    assert!(
        pair.events
            .contains(&"Stat { messages: 3, octets: 161 }".to_string())
    );
    assert_eq!(
        pair.fetched,
        [b"From: a@example.org\r\nSubject: plain\r\n\r\nHello.\r\n".to_vec()]
    );
    assert_eq!(
        String::from_utf8(pair.client_wire).unwrap(),
        "CAPA\r\nSTLS\r\nCAPA\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\nSTAT\r\nTOP 1 1\r\nQUIT\r\n"
    );
    assert!(pair.client.capabilities().user && !pair.client.capabilities().stls);
}

#[test]
fn user_pass_and_plain_after_continuation() {
    let mut server = plain_server();
    server.sasl_plain = false;
    let pair = Pair::new(server, client_config(), three_messages(), Plan::Quit).run();
    assert!(pair.failures.is_empty(), "{:?}", pair.failures);
    assert_eq!(
        String::from_utf8(pair.client_wire).unwrap(),
        "CAPA\r\nUSER alice\r\nPASS secret\r\nQUIT\r\n"
    );
    // Credentials too long for an initial response within 255 octets
    // (RFC 5034 section 4): AUTH PLAIN, then the response after "+ ".
    let mut client = client_config();
    client.credentials = Credentials::new("a".repeat(200), "secret");
    let pair = Pair::new(plain_server(), client, three_messages(), Plan::Quit).run();
    assert!(pair.failures.is_empty(), "{:?}", pair.failures);
    let wire = String::from_utf8(pair.client_wire).unwrap();
    assert!(wire.starts_with("CAPA\r\nAUTH PLAIN\r\nAGFhYWFh"), "{wire}");
    assert!(pair.server.log[1].starts_with("login Plain aaaa"));
    assert_eq!(pair.server.log.last().unwrap(), "closed");
}

#[test]
fn refused_logins_carry_their_codes() {
    let mut client = client_config();
    client.credentials = Credentials::new("alice", "wrong");
    let pair = Pair::new(config(), client, three_messages(), Plan::Quit).run();
    let [ClientError::Login(response)] = &pair.failures[..] else {
        panic!("{:?}", pair.failures)
    };
    assert_eq!(response.code(), Some(&ResponseCode::AUTH));
    // The session says QUIT: in the AUTHORIZATION state that is harmless.
    assert!(pair.server.wire_text().ends_with("signing off\r\n"));
    let mut client = client_config();
    client.credentials = Credentials::new("locked", "x");
    let pair = Pair::new(config(), client, three_messages(), Plan::Quit).run();
    let [ClientError::Login(response)] = &pair.failures[..] else {
        panic!("{:?}", pair.failures)
    };
    assert_eq!(response.code(), Some(&ResponseCode::IN_USE));
}

#[test]
fn credentials_stay_off_a_plaintext_connection() {
    let server = plain_server();
    let mut client = client_config();
    client.login_requires_tls = true;
    let pair = Pair::new(server.clone(), client, three_messages(), Plan::Quit).run();
    assert_eq!(pair.failures, [ClientError::LoginUnavailable]);
    assert!(!pair.server.log.iter().any(|l| l.starts_with("login")));
    assert_eq!(
        String::from_utf8(pair.client_wire).unwrap(),
        "CAPA\r\nQUIT\r\n"
    );
    let mut client = client_config();
    client.tls = TlsMode::Required;
    let pair = Pair::new(server, client, three_messages(), Plan::Quit).run();
    assert_eq!(pair.failures, [ClientError::TlsNotOffered]);
}

#[test]
fn a_failure_after_login_deletes_nothing() {
    let now = Instant::now();
    let mut host = Host::at(plain_server(), three_messages(), now);
    let mut client = ClientSession::new(client_config(), now);
    let mut sent = 0;
    // Log in, mark message 1 deleted, then the server stops answering.
    for _ in 0..10 {
        while let Some(event) = client.poll_event() {
            if event == ClientEvent::Ready {
                client.dele(now, 1).unwrap();
                client.noop(now).unwrap();
            }
        }
        let mut to_server = Vec::new();
        client.poll_transmit(&mut to_server);
        host.input(now, &to_server);
        let to_client = host.wire[sent..].to_vec();
        sent = host.wire.len();
        client.handle_input(now, &to_client);
    }
    client.stat(now).unwrap();
    let deadline = client.poll_timeout().unwrap();
    assert_eq!(deadline, now + Duration::from_secs(300));
    client.handle_timeout(deadline);
    let events: Vec<ClientEvent> = std::iter::from_fn(|| client.poll_event()).collect();
    assert_eq!(
        events[events.len() - 2..],
        [
            ClientEvent::Failed(ClientError::Timeout),
            ClientEvent::Closed
        ]
    );
    let mut to_server = Vec::new();
    client.poll_transmit(&mut to_server);
    assert_eq!(
        to_server, b"STAT\r\n",
        "no QUIT after login: it would commit"
    );
    // The connection drops: the server never enters UPDATE.
    assert!(!host.log.iter().any(|l| l.starts_with("update")));
}
