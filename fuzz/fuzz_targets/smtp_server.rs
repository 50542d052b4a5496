//! The SMTP server session on arbitrary client bytes: never panics, only
//! sends well-formed replies, and gives the same events and replies whether
//! the input comes whole or in the pieces the fuzzer chose.
#![no_main]

use std::time::{Duration, Instant};

use ironpost_smtp_proto::{BareLineEndings, Event, Reply, ReplyId, ServerConfig, ServerSession};
use libfuzzer_sys::fuzz_target;

/// Runs the session; `cuts` are piece lengths. Returns a log and the bytes sent.
fn run(input: &[u8], cuts: &[u8], flags: u8) -> (Vec<String>, Vec<u8>) {
    let mut config = ServerConfig::new("mx.example.org");
    config.auth_requires_tls = flags & 1 == 0;
    config.extensions.starttls = flags & 2 != 0;
    config.extensions.pipelining = flags & 4 == 0;
    config.vrfy = flags & 8 != 0;
    config.bare_line_endings = if flags & 16 != 0 {
        BareLineEndings::Reject
    } else {
        BareLineEndings::Normalize
    };
    config.limits.command_line = 128;
    config.limits.auth_line = 256;
    config.limits.unterminated_line = 2048;
    config.limits.message_size = 4096;
    config.limits.recipients = 8;
    config.limits.pending_decisions = 3;
    let mut now = Instant::now();
    let mut session = ServerSession::new(config, now);
    let mut log = Vec::new();
    let mut wire = Vec::new();
    let mut rest = input;
    let mut cuts = cuts.iter().cycle();
    let mut rounds = 0;
    loop {
        // A capped drain: every event is answered by a fixed policy.
        for _ in 0..10_000 {
            let Some(event) = session.poll_event() else { break };
            let refuse = |reply: ReplyId| Reply::from_id(reply);
            match event {
                Event::Connect(r) => session.accept_connection(r).unwrap(),
                Event::Helo(r) => {
                    log.push(format!("helo {}", r.domain));
                    session.accept_helo(r).unwrap()
                }
                Event::Auth(r) if r.password.expose() == "secret" => session.accept_auth(r).unwrap(),
                Event::Auth(r) => session.reject_auth(r, refuse(ReplyId::AuthFailed)).unwrap(),
                Event::Mail(r) => {
                    log.push(format!("mail {:?}", r.from));
                    session.accept_mail(r).unwrap()
                }
                Event::Rcpt(r) if r.to.address().is_some_and(|a| a.local_part().starts_with('x')) => {
                    session.reject_rcpt(r, refuse(ReplyId::MailboxUnavailable)).unwrap()
                }
                Event::Rcpt(r) => session.accept_rcpt(r).unwrap(),
                Event::Data(r) => session.accept_data(r).unwrap(),
                Event::DataChunk(b) => match log.last_mut() {
                    Some(l) if l.starts_with("chunk ") => l.push_str(&b.escape_ascii().to_string()),
                    _ => log.push(format!("chunk {}", b.escape_ascii())),
                },
                Event::MessageEnd(r) => {
                    log.push(format!("end {}", r.size));
                    session.accept_message(r, refuse(ReplyId::MessageAccepted)).unwrap()
                }
                Event::Verify(r) => session.answer_verify(r, refuse(ReplyId::CannotVrfy)).unwrap(),
                Event::StartTls => {
                    log.push("starttls".into());
                    session.tls_established().unwrap()
                }
                other => log.push(format!("{other:?}")),
            }
        }
        session.poll_transmit(&mut wire);
        if rest.is_empty() || session.is_closed() || rounds > 100_000 {
            break;
        }
        rounds += 1;
        let n = usize::from(*cuts.next().unwrap_or(&255)).max(1).min(rest.len());
        now += Duration::from_millis(1);
        session.handle_input(now, &rest[..n]);
        rest = &rest[n..];
    }
    // Time passes: the session must end or keep a consistent timer.
    if let Some(deadline) = session.poll_timeout() {
        session.handle_timeout(deadline);
        assert!(session.poll_timeout().is_none() || session.poll_timeout() > Some(deadline));
    }
    session.poll_transmit(&mut wire);
    (log, wire)
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, data)) = data.split_first() else { return };
    let Some((&ncuts, data)) = data.split_first() else { return };
    let ncuts = usize::from(ncuts % 16).min(data.len());
    let (cuts, input) = data.split_at(ncuts);
    let whole = run(input, &[255], flags);
    let pieces = run(input, if cuts.is_empty() { &[1] } else { cuts }, flags);
    // STARTTLS drops what was pipelined after it, which depends on what
    // had arrived: compare only sessions without it.
    if !whole.0.iter().any(|l| l == "starttls") && !pieces.0.iter().any(|l| l == "starttls") {
        assert_eq!(whole, pieces);
    }
    for line in whole.1.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        assert!(line.len() >= 4 && line[..3].iter().all(u8::is_ascii_digit), "{line:?}");
        assert!(line.ends_with(b"\r"));
    }
});
