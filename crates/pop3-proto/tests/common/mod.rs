//! A scripted host for server-session tests: it answers every decision by
//! a fixed policy and records what happened as plain strings, so that runs
//! over differently split input can be compared.

#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, Instant};

use ironpost_pop3_proto::{
    Event, Maildrop, MessageProgress, Refusal, ResponseCode, ServerConfig, ServerSession, UniqueId,
};

/// The policy of the scripted host:
/// - the password `secret` logs in, with the maildrop of `messages`;
/// - user `locked` gets `-ERR [IN-USE]`, every other failure `-ERR [AUTH]`;
/// - a message whose content is `UNREADABLE` cannot be read
///   (`-ERR [SYS/TEMP]` before any chunk);
/// - messages are streamed in chunks of `chunk` bytes, draining the
///   transmit buffer whenever the session wants it;
/// - STLS: the handshake "succeeds" at once;
/// - QUIT commits unless `fail_update` is set.
pub struct Host {
    pub session: ServerSession,
    pub log: Vec<String>,
    pub wire: Vec<u8>,
    pub messages: Vec<Vec<u8>>,
    pub uids: Vec<String>,
    pub chunk: usize,
    pub fail_update: bool,
}

/// The unique-ids of the first messages: RFC 1939 section 7's, then `uid-N`.
pub fn uid(i: usize) -> String {
    match i {
        0 => "whqtswO00WBw418f9t5JxYwZ".into(),
        1 => "QhdPYR:00WBw1Ph7x7".into(),
        n => format!("uid-{}", n + 1),
    }
}

/// The size a store reports: bare LF counted as CRLF.
pub fn size(message: &[u8]) -> u64 {
    let bare_lf = message
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' && (i == 0 || message[i - 1] != b'\r'))
        .count();
    (message.len() + bare_lf) as u64
}

impl Host {
    pub fn new(config: ServerConfig, messages: Vec<Vec<u8>>) -> Self {
        Self::at(config, messages, Instant::now())
    }

    pub fn at(config: ServerConfig, messages: Vec<Vec<u8>>, now: Instant) -> Self {
        let uids = (0..messages.len()).map(uid).collect();
        let mut host = Host {
            session: ServerSession::new(config, now),
            log: Vec::new(),
            wire: Vec::new(),
            messages,
            uids,
            chunk: 7,
            fail_update: false,
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

    /// Answers every event and collects the output until neither is left.
    pub fn drain(&mut self) {
        loop {
            while let Some(event) = self.session.poll_event() {
                self.handle(event);
            }
            if self.session.poll_transmit(&mut self.wire) == 0 {
                break;
            }
        }
    }

    fn handle(&mut self, event: Event) {
        let s = &mut self.session;
        match event {
            Event::Connect(req) => {
                self.log.push("connect".into());
                s.accept_connection(req).unwrap();
            }
            Event::StartTls => {
                self.log.push("starttls".into());
                s.tls_established().unwrap();
            }
            Event::Login(req) => {
                self.log.push(format!(
                    "login {:?} {} {:?} {:?}",
                    req.method, req.username, req.authzid, req.password
                ));
                if req.password.expose() == "secret" {
                    let maildrop: Maildrop = self
                        .messages
                        .iter()
                        .zip(&self.uids)
                        .map(|(m, u)| (size(m), UniqueId::new(u.clone()).unwrap()))
                        .collect();
                    s.accept_login(req, maildrop).unwrap();
                } else if req.username == "locked" {
                    let refusal = Refusal::new("Maildrop is locked by another session")
                        .with_code(ResponseCode::IN_USE);
                    s.reject_login(req, refusal).unwrap();
                } else {
                    let refusal =
                        Refusal::new("Authentication failed").with_code(ResponseCode::AUTH);
                    s.reject_login(req, refusal).unwrap();
                }
            }
            Event::Retrieve(req) => {
                self.log
                    .push(format!("retrieve {} top {:?}", req.message, req.top));
                let message = self.messages[req.message as usize - 1].clone();
                if message == b"UNREADABLE" {
                    let refusal =
                        Refusal::new("Message unreadable").with_code(ResponseCode::SYS_TEMP);
                    s.fail_message(req, refusal).unwrap();
                    return;
                }
                for piece in message.chunks(self.chunk.max(1)) {
                    while !s.wants_message_chunk() {
                        s.poll_transmit(&mut self.wire);
                    }
                    if s.send_message_chunk(&req, piece).unwrap() == MessageProgress::Complete {
                        break;
                    }
                }
                s.finish_message(req).unwrap();
            }
            Event::Update(req) => {
                self.log.push(format!("update {:?}", req.deleted));
                if self.fail_update {
                    let refusal = Refusal::new("Some deleted messages not removed")
                        .with_code(ResponseCode::SYS_TEMP);
                    s.reject_update(req, refusal).unwrap();
                } else {
                    s.accept_update(req).unwrap();
                }
            }
            Event::Closed => self.log.push("closed".into()),
            other => self.log.push(format!("other {other:?}")),
        }
    }

    pub fn wire_text(&self) -> String {
        String::from_utf8_lossy(&self.wire).into_owned()
    }
}

/// Runs `input` through a fresh session, fed in pieces ending at the given
/// split points; returns the event log and the bytes sent.
pub fn run_split(
    config: &ServerConfig,
    messages: &[Vec<u8>],
    input: &[u8],
    splits: &[usize],
) -> (Vec<String>, Vec<u8>) {
    let now = Instant::now();
    let mut host = Host::at(config.clone(), messages.to_vec(), now);
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

/// Runs `input` whole, one byte at a time and in pieces of 7; all three must
/// agree. Returns the log and the wire text.
pub fn run_three_ways(
    config: &ServerConfig,
    messages: &[Vec<u8>],
    input: &[u8],
) -> (Vec<String>, String) {
    let whole = run_split(config, messages, input, &[]);
    let bytewise = run_split(
        config,
        messages,
        input,
        &(1..input.len()).collect::<Vec<_>>(),
    );
    let sevens = run_split(
        config,
        messages,
        input,
        &(1..input.len()).step_by(7).collect::<Vec<_>>(),
    );
    assert_eq!(whole.0, bytewise.0, "events differ byte by byte");
    assert_eq!(whole.1, bytewise.1, "responses differ byte by byte");
    assert_eq!(whole.0, sevens.0, "events differ in pieces of 7");
    assert_eq!(whole.1, sevens.1, "responses differ in pieces of 7");
    (whole.0, String::from_utf8_lossy(&whole.1).into_owned())
}

/// A configuration for tests: logins allowed without TLS, STLS offered.
pub fn config() -> ServerConfig {
    let mut config = ServerConfig::new("dewey");
    config.login_requires_tls = false;
    config.stls = true;
    config
}
