//! The POP3 server session on arbitrary client bytes: never panics, every
//! line it sends ends with CRLF, and it gives the same events and bytes
//! whether the input comes whole or in the pieces the fuzzer chose.
#![no_main]

use std::time::{Duration, Instant};

use ironpost_pop3_proto::{
    Event, Maildrop, MessageProgress, Refusal, ResponseCode, ServerConfig, ServerSession, UniqueId,
};
use libfuzzer_sys::fuzz_target;

/// The maildrop every accepted login gets; message 3 cannot be read.
const MESSAGES: [&[u8]; 4] = [
    b"Subject: one\r\n\r\nbody\r\n.dot\r\n..\r\n",
    b"Subject: two\n\n.\nbare\rcr\nno end",
    b"UNREADABLE",
    b"",
];

/// Runs the session; `cuts` are piece lengths. Returns a log and the bytes sent.
fn run(input: &[u8], cuts: &[u8], flags: u8) -> (Vec<String>, Vec<u8>) {
    let mut config = ServerConfig::new("pop.example.org");
    config.login_requires_tls = flags & 1 != 0;
    config.stls = flags & 2 != 0;
    config.user_pass = flags & 4 == 0;
    config.sasl_plain = flags & 8 == 0;
    config.implementation = Some("fuzz".into());
    config.limits.command_line = 64;
    config.limits.auth_line = 128;
    config.limits.unterminated_line = 1024;
    config.limits.bad_commands = 30;
    config.limits.login_failures = 5;
    config.limits.output_buffer = if flags & 16 != 0 { 64 } else { 4096 };
    let chunk = usize::from(flags >> 5) + 1;
    let fail_update = flags & 128 != 0;
    let mut now = Instant::now();
    let mut session = ServerSession::new(config, now);
    let mut log = Vec::new();
    let mut wire = Vec::new();
    let mut rest = input;
    let mut cuts = cuts.iter().cycle();
    let mut rounds = 0;
    loop {
        // A capped drain: every event is answered by a fixed policy, and the
        // transmit buffer is drained until the session holds nothing back.
        for _ in 0..10_000 {
            let Some(event) = session.poll_event() else {
                if session.poll_transmit(&mut wire) == 0 {
                    break;
                }
                continue;
            };
            match event {
                Event::Connect(r) => session.accept_connection(r).unwrap(),
                Event::StartTls => {
                    log.push("starttls".to_string());
                    session.tls_established().unwrap();
                }
                Event::Login(r) => {
                    log.push(format!(
                        "login {:?} {} {:?}",
                        r.method, r.username, r.authzid
                    ));
                    if r.password.expose() == "secret" {
                        let maildrop: Maildrop = MESSAGES
                            .iter()
                            .enumerate()
                            .map(|(i, m)| (m.len() as u64, UniqueId::new(format!("u{i}")).unwrap()))
                            .collect();
                        session.accept_login(r, maildrop).unwrap();
                    } else if r.username == "locked" {
                        let refusal = Refusal::new("locked").with_code(ResponseCode::IN_USE);
                        session.reject_login(r, refusal).unwrap();
                    } else {
                        let refusal = Refusal::new("no").with_code(ResponseCode::AUTH);
                        session.reject_login(r, refusal).unwrap();
                    }
                }
                Event::Retrieve(r) => {
                    log.push(format!("retrieve {} {:?}", r.message, r.top));
                    let message = MESSAGES[r.message as usize - 1];
                    if message == b"UNREADABLE" {
                        let refusal = Refusal::new("later").with_code(ResponseCode::SYS_TEMP);
                        session.fail_message(r, refusal).unwrap();
                        continue;
                    }
                    for piece in message.chunks(chunk) {
                        while !session.wants_message_chunk() {
                            session.poll_transmit(&mut wire);
                        }
                        if session.send_message_chunk(&r, piece).unwrap()
                            == MessageProgress::Complete
                        {
                            break;
                        }
                    }
                    session.finish_message(r).unwrap();
                }
                Event::Update(r) => {
                    log.push(format!("update {:?}", r.deleted));
                    if fail_update {
                        session
                            .reject_update(r, Refusal::new("not removed"))
                            .unwrap();
                    } else {
                        session.accept_update(r).unwrap();
                    }
                }
                other => log.push(format!("{other:?}")),
            }
        }
        session.poll_transmit(&mut wire);
        if rest.is_empty() || session.is_closed() || rounds > 100_000 {
            break;
        }
        rounds += 1;
        let n = usize::from(*cuts.next().unwrap_or(&255))
            .max(1)
            .min(rest.len());
        now += Duration::from_millis(1);
        session.handle_input(now, &rest[..n]);
        rest = &rest[n..];
    }
    // Time passes: the session must end or keep a consistent timer.
    if let Some(deadline) = session.poll_timeout() {
        session.handle_timeout(deadline);
        assert!(session.is_closed());
        assert!(session.poll_timeout().is_none());
    }
    session.poll_transmit(&mut wire);
    (log, wire)
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let Some((&ncuts, data)) = data.split_first() else {
        return;
    };
    let ncuts = usize::from(ncuts % 16).min(data.len());
    let (cuts, input) = data.split_at(ncuts);
    let whole = run(input, &[255], flags);
    let pieces = run(input, if cuts.is_empty() { &[1] } else { cuts }, flags);
    // STLS drops what was pipelined after it, which depends on what had
    // arrived: compare only sessions without it.
    if !whole.0.iter().any(|l| l == "starttls") && !pieces.0.iter().any(|l| l == "starttls") {
        assert_eq!(whole, pieces);
    }
    // Every line ends with CRLF: no bare LF ever goes out.
    let wire = &whole.1;
    for (i, _) in wire.iter().enumerate().filter(|&(_, &b)| b == b'\n') {
        assert!(i > 0 && wire[i - 1] == b'\r', "bare LF at {i}");
    }
    assert!(wire.ends_with(b"\r\n"), "the session ends on a whole line");
});
