//! The POP3 client session on arbitrary server bytes: never panics, reads
//! the same events whether the bytes come whole or in pieces, and every
//! command it writes is one our parser accepts.
#![no_main]

use std::time::{Duration, Instant};

use ironpost_pop3_proto::{
    ClientConfig, ClientEvent, ClientSession, Command, Credentials, TlsMode,
};
use libfuzzer_sys::fuzz_target;

/// Runs the client; `piece` is the size of each read. Returns the events
/// (message chunks joined) and the bytes sent.
fn run(input: &[u8], piece: usize, flags: u8) -> (Vec<String>, Vec<u8>) {
    let username = if flags & 1 != 0 {
        "u".repeat(200)
    } else {
        "user".to_string()
    };
    let mut config = ClientConfig::new(Credentials::new(username, "secret"));
    config.tls = match (flags >> 1) & 3 {
        0 => TlsMode::Never,
        1 => TlsMode::Required,
        _ => TlsMode::Opportunistic,
    };
    config.login_requires_tls = flags & 8 != 0;
    config.limits.response_line = 128;
    let mut now = Instant::now();
    let mut client = ClientSession::new(config, now);
    let mut log = Vec::new();
    let mut chunks = Vec::new();
    let mut out = Vec::new();
    for piece in input.chunks(piece.max(1)) {
        now += Duration::from_secs(1);
        client.handle_input(now, piece);
        drain(&mut client, now, &mut log, &mut chunks);
        client.poll_transmit(&mut out);
    }
    if !chunks.is_empty() {
        log.push(chunks.escape_ascii().to_string());
    }
    if let Some(deadline) = client.poll_timeout() {
        client.handle_timeout(deadline);
        assert!(client.is_closed());
    }
    client.poll_transmit(&mut out);
    (log, out)
}

/// A capped drain: the host's answers to every event, message chunks
/// joined (their boundaries depend on the split).
fn drain(client: &mut ClientSession, now: Instant, log: &mut Vec<String>, chunks: &mut Vec<u8>) {
    for _ in 0..10_000 {
        let Some(event) = client.poll_event() else {
            break;
        };
        match event {
            ClientEvent::StartTls => {
                log.push("starttls".to_string());
                client.tls_established(now).unwrap();
            }
            ClientEvent::Ready => {
                log.push("ready".to_string());
                // Commands given in a row all go out: buffered responses
                // are read at the next poll_event, not in between.
                let results = [
                    client.stat(now),
                    client.list(now, None),
                    client.uidl(now, Some(1)),
                    client.retr(now, 1),
                    client.top(now, 2, 3),
                    client.dele(now, 1),
                    client.rset(now),
                    client.noop(now),
                    client.quit(now),
                ];
                assert!(results.iter().all(Result::is_ok), "{results:?}");
                assert!(client.noop(now).is_err(), "commands after QUIT are refused");
            }
            ClientEvent::MessageChunk(bytes) => chunks.extend_from_slice(&bytes),
            other => {
                if !chunks.is_empty() {
                    log.push(std::mem::take(chunks).escape_ascii().to_string());
                }
                log.push(format!("{other:?}"));
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let Some((&piece, input)) = data.split_first() else {
        return;
    };
    let whole = run(input, input.len(), flags);
    let pieces = run(input, usize::from(piece % 64), flags);
    // Bytes after the +OK to STLS are dropped, so what is lost depends on
    // what had arrived: compare only sessions without it.
    if !whole.0.iter().any(|l| l == "starttls") && !pieces.0.iter().any(|l| l == "starttls") {
        assert_eq!(whole, pieces);
    }
    // Every command line the client wrote parses (the base64 line after
    // "+ " aside).
    for line in whole.1.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let line = line.strip_suffix(b"\r").expect("CRLF line ends");
        let is_sasl_response = !line.contains(&b' ')
            && line
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(b))
            && Command::parse(line).is_err();
        if !is_sasl_response {
            assert!(
                Command::parse(line).is_ok(),
                "{:?}",
                line.escape_ascii().to_string()
            );
        }
    }
});
