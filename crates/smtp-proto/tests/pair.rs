//! Our client against our server, in memory and in virtual time.

mod common;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use common::{Host, config};
use ironpost_smtp_proto::client::{ClientError, ClientMisuse, Outcome};
use ironpost_smtp_proto::{
    Address, BodyType, ClientConfig, ClientEvent, ClientSession, Credentials, Envelope,
    ForwardPath, Notify, OriginalRecipient, RcptParams, Ret, ReversePath, Secret, ServerConfig,
    TlsMode,
};

fn path(s: &str) -> ForwardPath {
    ForwardPath::Mailbox(Address::parse(s).unwrap())
}

fn sender(s: &str) -> ReversePath {
    ReversePath::Mailbox(Address::parse(s).unwrap())
}

/// One message for the client to send.
struct Job {
    envelope: Envelope,
    body: Vec<u8>,
}

/// Runs client and server against each other until the client closes.
struct Pair {
    server: Host,
    client: ClientSession,
    now: Instant,
    jobs: VecDeque<Job>,
    body: Vec<u8>,
    outcomes: Vec<Outcome>,
    failures: Vec<ClientError>,
    /// Bytes sent by the client.
    client_bytes: usize,
    round_trips: usize,
    sent_server: usize,
}

impl Pair {
    fn new(server_config: ServerConfig, client_config: ClientConfig, jobs: Vec<Job>) -> Pair {
        let now = Instant::now();
        Pair {
            server: Host::at(server_config, now, None),
            client: ClientSession::new(client_config, now),
            now,
            jobs: jobs.into(),
            body: Vec::new(),
            outcomes: Vec::new(),
            failures: Vec::new(),
            client_bytes: 0,
            round_trips: 0,
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
            self.client_bytes += to_server.len();
            if !to_server.is_empty() {
                self.server.input(self.now, &to_server);
            }
            let to_client = self.server.wire[self.sent_server..].to_vec();
            self.sent_server = self.server.wire.len();
            if to_client.is_empty() && to_server.is_empty() {
                break;
            }
            self.round_trips += 1;
            self.now += Duration::from_millis(10);
            self.client.handle_input(self.now, &to_client);
        }
        self
    }

    fn on_client_event(&mut self, event: ClientEvent) {
        let now = self.now;
        match event {
            ClientEvent::StartTls => self.client.tls_established(now).unwrap(),
            ClientEvent::Ready => self.next(),
            ClientEvent::SendBody => {
                for chunk in self.body.chunks(64 * 1024) {
                    self.client.send_body(now, chunk).unwrap();
                }
                self.client.finish_body(now).unwrap();
            }
            ClientEvent::Done(outcome) => {
                self.outcomes.push(outcome);
                self.next();
            }
            ClientEvent::Failed(error) => self.failures.push(error),
            ClientEvent::Closed => {}
            other => panic!("unexpected {other:?}"),
        }
    }

    fn next(&mut self) {
        match self.jobs.pop_front() {
            Some(job) => {
                self.body = job.body;
                self.client.send_mail(self.now, job.envelope).unwrap();
            }
            None => self.client.quit(self.now).unwrap(),
        }
    }
}

fn client_config() -> ClientConfig {
    let mut c = ClientConfig::new("client.example");
    c.credentials = Some(Credentials {
        username: "user".into(),
        password: Secret::new("secret"),
    });
    c
}

fn simple_job(to: &[&str], body: &[u8]) -> Job {
    Job {
        envelope: Envelope::new(sender("a@client.example"), to.iter().map(|t| path(t))),
        body: body.to_vec(),
    }
}

#[test]
fn pipelined_transaction_with_tls_auth_and_dsn() {
    let mut envelope = Envelope::new(sender("a@client.example"), [path("b@example.org")]);
    envelope.params.ret = Some(Ret::Headers);
    envelope.params.envid = Some("env+1".into());
    envelope.params.body = Some(BodyType::EightBitMime);
    let mut rcpt = RcptParams::default();
    rcpt.notify = Some(Notify {
        success: false,
        failure: true,
        delay: true,
    });
    rcpt.orcpt = Some(OriginalRecipient {
        addr_type: "rfc822".into(),
        address: "orig@example.org".into(),
    });
    envelope.recipients.push((path("c@example.org"), rcpt));
    envelope
        .recipients
        .push((path("unknown@example.org"), RcptParams::default()));
    envelope.size = Some(31);
    let pair = Pair::new(
        config(),
        client_config(),
        vec![Job {
            envelope,
            body: b"Subject: h\xc3\xa9\r\n\r\n.leading dot\r\n".to_vec(),
        }],
    )
    .run();
    assert!(pair.failures.is_empty(), "{:?}", pair.failures);
    assert!(pair.client.is_closed());
    assert!(pair.client.is_tls() && pair.client.is_authenticated());
    let log = &pair.server.log;
    assert!(log.contains(&"starttls".to_string()));
    assert!(log.contains(&"auth user ***".to_string()));
    let mail = log.iter().find(|l| l.starts_with("mail ")).unwrap();
    assert!(
        mail.contains("size: Some(31)") && mail.contains("EightBitMime"),
        "{mail}"
    );
    assert!(mail.contains("Headers") && mail.contains("env+1"), "{mail}");
    assert!(
        log.iter()
            .any(|l| l.contains("orig@example.org") && l.contains("delay: true"))
    );
    assert_eq!(
        pair.server.messages,
        [b"Subject: h\xc3\xa9\r\n\r\n.leading dot\r\n".to_vec()]
    );
    let outcome = &pair.outcomes[0];
    assert_eq!(outcome.delivered().collect::<Vec<_>>(), [0, 1]);
    assert_eq!(outcome.result(2).code(), 550);
    assert_eq!(outcome.result(0).code(), 250);
}

#[test]
fn pipelining_sends_mail_rcpts_and_data_in_one_flight() {
    let recipients: Vec<String> = (0..100).map(|i| format!("r{i}@example.org")).collect();
    let refs: Vec<&str> = recipients.iter().map(String::as_str).collect();
    let mut c = client_config();
    c.tls = TlsMode::Never;
    c.credentials = None;
    let pipelined = Pair::new(config(), c.clone(), vec![simple_job(&refs, b"x\r\n")]).run();
    assert_eq!(pipelined.outcomes[0].delivered().count(), 100);
    let mut plain = config();
    plain.extensions.pipelining = false;
    let lockstep = Pair::new(plain, c, vec![simple_job(&refs, b"x\r\n")]).run();
    assert_eq!(lockstep.outcomes[0].delivered().count(), 100);
    assert_eq!(pipelined.server.messages, lockstep.server.messages);
    // greeting, EHLO, the whole transaction, the body, QUIT.
    assert!(pipelined.round_trips <= 6, "{}", pipelined.round_trips);
    assert!(lockstep.round_trips > 100, "{}", lockstep.round_trips);
}

#[test]
fn ten_megabytes_with_data_and_with_bdat() {
    let mut body = Vec::new();
    let mut i = 0u32;
    while body.len() < 10 * 1024 * 1024 {
        body.extend_from_slice(format!("line {i} of the body, with some text\r\n").as_bytes());
        if i.is_multiple_of(10) {
            body.extend_from_slice(b".a line that starts with a dot\r\n");
        }
        i += 1;
    }
    let mut server = config();
    server.limits.message_size = 11 * 1024 * 1024;
    for chunking in [false, true] {
        let mut c = client_config();
        c.prefer_chunking = chunking;
        let mut job = simple_job(&["b@example.org"], &body);
        job.envelope.size = Some(body.len() as u64);
        let pair = Pair::new(server.clone(), c, vec![job]).run();
        assert!(pair.failures.is_empty(), "{:?}", pair.failures);
        assert_eq!(pair.server.messages.len(), 1);
        assert!(
            pair.server.messages[0] == body,
            "body differs (chunking {chunking})"
        );
        assert!(
            pair.server
                .log
                .contains(&format!("data chunking={chunking} rcpts=1"))
        );
        assert_eq!(pair.outcomes[0].delivered().count(), 1);
    }
}

#[test]
fn binary_mime_uses_bdat_and_keeps_every_byte() {
    let body: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let mut job = simple_job(&["b@example.org"], &body);
    job.envelope.params.body = Some(BodyType::BinaryMime);
    let pair = Pair::new(config(), client_config(), vec![job]).run();
    assert_eq!(pair.server.messages, [body]);
}

#[test]
fn size_is_checked_before_anything_is_sent() {
    let mut server = config();
    server.limits.message_size = 1000;
    let mut job = simple_job(&["b@example.org"], &[b'x'; 2000]);
    job.envelope.size = Some(2000);
    let pair = Pair::new(
        server,
        client_config(),
        vec![job, simple_job(&["c@example.org"], b"ok\r\n")],
    )
    .run();
    assert_eq!(pair.outcomes[0].mail.code(), 552);
    assert_eq!(pair.outcomes[0].result(0).code(), 552);
    assert!(!pair.server.log.iter().any(|l| l.contains("b@example.org")));
    // The session goes on with the next message.
    assert_eq!(pair.server.messages, [b"ok\r\n".to_vec()]);
}

#[test]
fn failures_are_per_recipient_and_the_next_transaction_starts_clean() {
    let jobs = vec![
        simple_job(
            &["unknown1@example.org", "unknown2@example.org"],
            b"never\r\n",
        ),
        Job {
            envelope: Envelope::new(sender("blocked@client.example"), [path("b@example.org")]),
            body: b"never\r\n".to_vec(),
        },
        simple_job(&["b@example.org"], b"yes\r\n"),
    ];
    for pipelining in [true, false] {
        let mut server = config();
        server.extensions.pipelining = pipelining;
        let pair = Pair::new(server, client_config(), jobs_clone(&jobs)).run();
        assert!(pair.failures.is_empty(), "{:?}", pair.failures);
        assert_eq!(pair.outcomes.len(), 3);
        assert_eq!(pair.outcomes[0].result(1).code(), 550);
        assert_eq!(pair.outcomes[0].data, None);
        assert_eq!(pair.outcomes[1].mail.code(), 550);
        assert_eq!(pair.outcomes[1].result(0).code(), 550);
        assert_eq!(pair.outcomes[2].delivered().count(), 1);
        assert_eq!(
            pair.server.messages,
            [b"yes\r\n".to_vec()],
            "pipelining {pipelining}"
        );
        assert!(pair.server.wire_text().matches("503").count() <= 2);
    }
}

fn jobs_clone(jobs: &[Job]) -> Vec<Job> {
    jobs.iter()
        .map(|j| Job {
            envelope: j.envelope.clone(),
            body: j.body.clone(),
        })
        .collect()
}

#[test]
fn wrong_password_fails_the_session() {
    let mut c = client_config();
    c.credentials = Some(Credentials {
        username: "user".into(),
        password: Secret::new("wrong"),
    });
    let pair = Pair::new(config(), c, vec![simple_job(&["b@example.org"], b"x\r\n")]).run();
    assert!(matches!(&pair.failures[..], [ClientError::Auth(r)] if r.code() == 535));
    assert!(pair.server.messages.is_empty());
    assert!(pair.client.is_closed());
}

#[test]
fn auth_login_when_plain_is_not_offered() {
    let mut server = config();
    server.auth_mechanisms = vec![ironpost_smtp_proto::Mechanism::Login];
    let pair = Pair::new(
        server,
        client_config(),
        vec![simple_job(&["b@example.org"], b"x\r\n")],
    )
    .run();
    assert!(pair.client.is_authenticated());
    assert_eq!(pair.server.messages.len(), 1);
}

#[test]
fn required_tls_without_starttls_fails() {
    let mut server = config();
    server.extensions.starttls = false;
    let mut c = client_config();
    c.tls = TlsMode::Required;
    let pair = Pair::new(server, c, vec![]).run();
    assert_eq!(pair.failures, [ClientError::TlsNotOffered]);
    assert!(pair.server.wire_text().ends_with("221 2.0.0 Bye\r\n"));
}

#[test]
fn credentials_are_not_sent_in_clear() {
    let mut server = config();
    server.extensions.starttls = false;
    let pair = Pair::new(server, client_config(), vec![]).run();
    assert_eq!(pair.failures, [ClientError::AuthUnavailable]);
    assert!(!pair.server.log.iter().any(|l| l.starts_with("auth")));
}

#[test]
fn helo_fallback_when_ehlo_is_refused() {
    // The scripted host refuses the EHLO/HELO name reject.example; a server
    // that refuses EHLO with 5xx gets HELO, which it refuses too.
    let mut c = ClientConfig::new("reject.example");
    c.tls = TlsMode::Never;
    let pair = Pair::new(config(), c, vec![]).run();
    assert_eq!(
        pair.server.log[1..3],
        [
            "ehlo reject.example".to_string(),
            "helo reject.example".to_string()
        ]
    );
    assert!(matches!(&pair.failures[..], [ClientError::Helo(r)] if r.code() == 550));
}

#[test]
fn utf8_addresses_need_smtputf8() {
    let mut server = config();
    server.extensions.smtputf8 = false;
    let mut c = client_config();
    c.tls = TlsMode::Never;
    c.credentials = None;
    let pair = Pair::new(server, c, vec![simple_job(&["ü@bücher.example"], b"x\r\n")]).run();
    assert_eq!(pair.outcomes[0].mail.code(), 553);
    let mut c = client_config();
    c.tls = TlsMode::Never;
    c.credentials = None;
    let mut job = simple_job(&["ü@bücher.example"], b"x\r\n");
    job.envelope.params.smtputf8 = true;
    let pair = Pair::new(config(), c, vec![job]).run();
    assert_eq!(pair.outcomes[0].delivered().count(), 1);
}

#[test]
fn client_timeouts_follow_rfc_5321() {
    let now = Instant::now();
    let mut client = ClientSession::new(ClientConfig::new("c.example"), now);
    assert_eq!(client.poll_timeout(), Some(now + Duration::from_secs(300)));
    client.handle_input(now, b"220 mx ready\r\n");
    assert_eq!(client.poll_timeout(), Some(now + Duration::from_secs(300)));
    client.handle_input(now, b"250 mx\r\n");
    assert_eq!(client.poll_event(), Some(ClientEvent::Ready));
    assert_eq!(
        client.poll_timeout(),
        None,
        "idle while the host has nothing to send"
    );
    client
        .send_mail(now, simple_job(&["b@example.org"], b"").envelope)
        .unwrap();
    client.handle_input(now, b"250 ok\r\n");
    client.handle_input(now, b"250 ok\r\n");
    // Waiting for 354: two minutes.
    assert_eq!(client.poll_timeout(), Some(now + Duration::from_secs(120)));
    client.handle_input(now, b"354 go\r\n");
    assert_eq!(client.poll_event(), Some(ClientEvent::SendBody));
    assert_eq!(client.poll_timeout(), Some(now + Duration::from_secs(180)));
    let later = now + Duration::from_secs(60);
    client.finish_body(later).unwrap();
    // Waiting for the final reply: ten minutes.
    assert_eq!(
        client.poll_timeout(),
        Some(later + Duration::from_secs(600))
    );
    client.handle_timeout(later + Duration::from_secs(600));
    assert_eq!(
        client.poll_event(),
        Some(ClientEvent::Failed(ClientError::Timeout))
    );
    assert_eq!(client.poll_event(), Some(ClientEvent::Closed));
    assert!(client.is_closed());
}

#[test]
fn client_known_answers_and_misuse() {
    let now = Instant::now();
    let mut client = ClientSession::new(ClientConfig::new("c.example"), now);
    assert_eq!(
        client.send_mail(now, simple_job(&["b@example.org"], b"").envelope),
        Err(ClientMisuse::NotReady)
    );
    let mut wire = Vec::new();
    // A multi-line greeting, byte by byte.
    for b in b"220-mx.example.org\r\n220 ESMTP\r\n" {
        client.handle_input(now, &[*b]);
    }
    client.poll_transmit(&mut wire);
    assert_eq!(wire, b"EHLO c.example\r\n");
    client.handle_input(
        now,
        b"250-mx\r\n250-SIZE 1000\r\n250-AUTH=LOGIN\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n",
    );
    assert_eq!(client.poll_event(), Some(ClientEvent::Ready));
    let caps = client.capabilities();
    assert_eq!(caps.size, Some(1000));
    assert!(caps.eight_bit_mime && !caps.pipelining && !caps.starttls);
    assert_eq!(caps.auth.len(), 2);
    assert_eq!(
        client.send_body(now, b"x"),
        Err(ClientMisuse::NotSendingBody)
    );
    let empty = Envelope::new(ReversePath::Null, []);
    assert_eq!(
        client.send_mail(now, empty),
        Err(ClientMisuse::NoRecipients)
    );
    // Replies while the host decides wait; a flood of them is refused.
    client.handle_input(now, b"250 early\r\n");
    assert_eq!(client.poll_event(), None);
    client.handle_input(now, &[b'x'; 5000]);
    assert!(matches!(
        client.poll_event(),
        Some(ClientEvent::Failed(ClientError::Protocol(_)))
    ));
    // Garbage from a server is a protocol failure, never a panic.
    let mut client = ClientSession::new(ClientConfig::new("c.example"), now);
    client.handle_input(now, b"HTTP/1.1 400 Bad Request\r\n");
    assert!(matches!(
        client.poll_event(),
        Some(ClientEvent::Failed(ClientError::Protocol(_)))
    ));
    // A 421 at any time closes.
    let mut client = ClientSession::new(ClientConfig::new("c.example"), now);
    client.handle_input(now, b"220 hi\r\n421 4.3.2 going away\r\n");
    assert!(matches!(
        client.poll_event(),
        Some(ClientEvent::Failed(ClientError::ServiceClosing(_)))
    ));
}
