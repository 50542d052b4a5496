//! A scripted host for server-session tests: it answers every decision by
//! a fixed policy and records what happened as plain strings, so that runs
//! over differently split input can be compared.

#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, Instant};

use ironpost_smtp_proto::{
    Event, ForwardPath, Reply, ReplyId, ReversePath, ServerConfig, ServerSession,
};

/// The policy of the scripted host:
/// - HELO `reject.example` is refused with 550;
/// - AUTH succeeds with the password `secret`, else 535;
/// - a sender whose local part is `blocked` gets 550;
/// - recipients whose local part starts with `unknown` get 550 5.1.1;
/// - VRFY/EXPN get 252 with the argument;
/// - STARTTLS: the handshake "succeeds" at once;
/// - messages are accepted with `250 2.0.0 queued as N`.
pub struct Host {
    pub session: ServerSession,
    pub log: Vec<String>,
    pub wire: Vec<u8>,
    /// The messages received, one per accepted end of message.
    pub messages: Vec<Vec<u8>>,
    current: Vec<u8>,
    queued: usize,
    /// Refuse the connection with this reply instead of greeting.
    pub refuse: Option<Reply>,
}

impl Host {
    pub fn new(config: ServerConfig) -> Self {
        Self::at(config, Instant::now(), None)
    }

    pub fn at(config: ServerConfig, now: Instant, refuse: Option<Reply>) -> Self {
        let mut host = Host {
            session: ServerSession::new(config, now),
            log: Vec::new(),
            wire: Vec::new(),
            messages: Vec::new(),
            current: Vec::new(),
            queued: 0,
            refuse,
        };
        host.drain();
        host
    }

    pub fn input(&mut self, now: Instant, bytes: &[u8]) {
        self.session.handle_input(now, bytes);
        self.drain();
    }

    pub fn timeout(&mut self, now: Instant) {
        self.session.handle_timeout(now);
        self.drain();
    }

    /// Answers every event until none is left, then collects the output.
    pub fn drain(&mut self) {
        while let Some(event) = self.session.poll_event() {
            self.handle(event);
        }
        self.session.poll_transmit(&mut self.wire);
    }

    fn note(&mut self, entry: String) {
        self.log.push(entry);
    }

    fn handle(&mut self, event: Event) {
        let s = &mut self.session;
        match event {
            Event::Connect(req) => {
                self.log.push("connect".into());
                match self.refuse.clone() {
                    Some(reply) => s.refuse_connection(req, reply).unwrap(),
                    None => s.accept_connection(req).unwrap(),
                }
            }
            Event::Helo(req) => {
                self.log.push(format!(
                    "{} {}",
                    if req.extended { "ehlo" } else { "helo" },
                    req.domain
                ));
                if req.domain == "reject.example" {
                    let reply = Reply::from_id(ReplyId::RelayDenied).with_text("Go away");
                    s.reject_helo(req, reply).unwrap();
                } else {
                    s.accept_helo(req).unwrap();
                }
            }
            Event::StartTls => {
                self.log.push("starttls".into());
                s.tls_established().unwrap();
            }
            Event::Auth(req) => {
                self.log
                    .push(format!("auth {} {:?}", req.username, req.password));
                if req.password.expose() == "secret" {
                    s.accept_auth(req).unwrap();
                } else {
                    s.reject_auth(req, Reply::from_id(ReplyId::AuthFailed))
                        .unwrap();
                }
            }
            Event::Mail(req) => {
                let from = match &req.from {
                    ReversePath::Null => "<>".to_string(),
                    ReversePath::Mailbox(a) => a.as_str().to_string(),
                };
                self.log.push(format!("mail {from} {:?}", req.params));
                if from.starts_with("blocked@") {
                    s.reject_mail(req, Reply::from_id(ReplyId::RelayDenied))
                        .unwrap();
                } else {
                    s.accept_mail(req).unwrap();
                }
            }
            Event::Rcpt(req) => {
                let to = match &req.to {
                    ForwardPath::Postmaster => "postmaster".to_string(),
                    ForwardPath::Mailbox(a) => a.as_str().to_string(),
                };
                self.log.push(format!("rcpt {to} {:?}", req.params));
                if to.starts_with("unknown") {
                    s.reject_rcpt(req, Reply::from_id(ReplyId::MailboxUnavailable))
                        .unwrap();
                } else {
                    s.accept_rcpt(req).unwrap();
                }
            }
            Event::Data(req) => {
                self.log.push(format!(
                    "data chunking={} rcpts={}",
                    req.chunking, req.recipients
                ));
                self.current.clear();
                s.accept_data(req).unwrap();
            }
            Event::DataChunk(bytes) => {
                self.current.extend_from_slice(&bytes);
                // Consecutive chunks are one entry, whatever the split; bytes
                // are escaped one by one so that the text does not depend on
                // where a UTF-8 sequence was cut.
                let text = bytes.escape_ascii().to_string();
                match self.log.last_mut() {
                    Some(last) if last.starts_with("chunk ") => last.push_str(&text),
                    _ => self.note(format!("chunk {text}")),
                }
            }
            Event::MessageEnd(req) => {
                self.log.push(format!("end {}", req.size));
                assert_eq!(req.size as usize, self.current.len());
                self.messages.push(std::mem::take(&mut self.current));
                self.queued += 1;
                let reply =
                    Reply::new(250, None, format!("2.0.0 queued as {}", self.queued)).unwrap();
                s.accept_message(req, reply).unwrap();
            }
            Event::MessageAborted(reason) => {
                self.current.clear();
                self.log.push(format!("aborted {reason:?}"));
            }
            Event::Verify(req) => {
                self.log
                    .push(format!("verify {} {}", req.expand, req.argument));
                let reply = Reply::new(252, None, format!("2.5.0 {}", req.argument)).unwrap();
                s.answer_verify(req, reply).unwrap();
            }
            Event::Reset => self.log.push("reset".into()),
            Event::Closed => self.log.push("closed".into()),
            other => self.log.push(format!("other {other:?}")),
        }
    }

    pub fn wire_text(&self) -> String {
        String::from_utf8_lossy(&self.wire).into_owned()
    }
}

/// Runs `input` through a fresh session, fed in pieces ending at the
/// given split points; returns the event log and the bytes sent.
pub fn run_split(config: &ServerConfig, input: &[u8], splits: &[usize]) -> (Vec<String>, Vec<u8>) {
    let now = Instant::now();
    let mut host = Host::at(config.clone(), now, None);
    let mut start = 0;
    let mut points: Vec<usize> = splits
        .iter()
        .copied()
        .filter(|&p| p < input.len())
        .collect();
    points.sort_unstable();
    points.push(input.len());
    for end in points {
        if end > start {
            host.input(now + Duration::from_millis(1), &input[start..end]);
            start = end;
        }
    }
    (host.log, host.wire)
}

/// Runs `input` whole, one byte at a time, in pieces of 7, and with trailing
/// data after it; all four must agree. Returns the log and the wire text.
pub fn run_three_ways(config: &ServerConfig, input: &[u8]) -> (Vec<String>, String) {
    let whole = run_split(config, input, &[]);
    let bytewise = run_split(config, input, &(1..input.len()).collect::<Vec<_>>());
    let sevens = run_split(
        config,
        input,
        &(1..input.len()).step_by(7).collect::<Vec<_>>(),
    );
    assert_eq!(whole.0, bytewise.0, "events differ byte by byte");
    assert_eq!(whole.1, bytewise.1, "replies differ byte by byte");
    assert_eq!(whole.0, sevens.0, "events differ in pieces of 7");
    assert_eq!(whole.1, sevens.1, "replies differ in pieces of 7");
    (whole.0, String::from_utf8_lossy(&whole.1).into_owned())
}

/// A configuration for tests: AUTH allowed without TLS, STARTTLS offered.
pub fn config() -> ServerConfig {
    let mut config = ServerConfig::new("mx.example.org");
    config.auth_requires_tls = false;
    config.extensions.starttls = true;
    config
}
