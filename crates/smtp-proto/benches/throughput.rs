//! `cargo xtask bench smtp-proto`: DATA streaming throughput and MAIL/RCPT
//! parsing rate, ours side by side with Stalwart's `smtp-proto` crate on the
//! same inputs. Each figure is the median of several runs.
//!
//! Ours streams DATA through the whole [`ServerSession`] (line search,
//! dot-unstuffing, end detection, chunk events); Stalwart's `DataReceiver`
//! copies the unstuffed body into a caller's buffer, which is how its server
//! uses it. MAIL/RCPT: ours parses into owned, validated values; Stalwart's
//! parser borrows from the input.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ironpost_smtp_proto::{Command, Event, ServerConfig, ServerSession};

const RUNS: usize = 21;
const READ_SIZE: usize = 64 * 1024;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Times `ours` and `theirs` alternately, `RUNS` times each, so that a
/// noisy neighbour slows both alike; returns both medians.
fn time_pair(mut ours: impl FnMut(), mut theirs: impl FnMut()) -> (Duration, Duration) {
    ours();
    theirs();
    let mut a = Vec::with_capacity(RUNS);
    let mut b = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let start = Instant::now();
        ours();
        a.push(start.elapsed());
        let start = Instant::now();
        theirs();
        b.push(start.elapsed());
    }
    (median(a), median(b))
}

/// A 10 MB body of 76-character lines, one in 20 starting with a dot,
/// dot-stuffed and terminated as it travels in DATA.
fn data_body() -> (Vec<u8>, usize) {
    let mut message = Vec::new();
    let mut i = 0;
    while message.len() < 10 * 1024 * 1024 {
        if i % 20 == 0 {
            message.extend_from_slice(b".");
        }
        message.extend_from_slice(format!("{:074}\r\n", i).as_bytes());
        i += 1;
    }
    let mut wire = Vec::with_capacity(message.len() + message.len() / 20);
    let mut line_start = true;
    for &b in &message {
        if line_start && b == b'.' {
            wire.push(b'.');
        }
        wire.push(b);
        line_start = b == b'\n';
    }
    wire.extend_from_slice(b".\r\n");
    (wire, message.len())
}

/// A session that has just answered `354`.
fn session_in_data() -> ServerSession {
    let mut config = ServerConfig::new("mx.example.org");
    config.limits.message_size = 64 * 1024 * 1024;
    let now = Instant::now();
    let mut s = ServerSession::new(config, now);
    let setup = b"EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n";
    s.handle_input(now, setup);
    let mut pending = true;
    while pending {
        pending = false;
        while let Some(event) = s.poll_event() {
            pending = true;
            match event {
                Event::Connect(r) => s.accept_connection(r).unwrap(),
                Event::Helo(r) => s.accept_helo(r).unwrap(),
                Event::Mail(r) => s.accept_mail(r).unwrap(),
                Event::Rcpt(r) => s.accept_rcpt(r).unwrap(),
                Event::Data(r) => s.accept_data(r).unwrap(),
                _ => {}
            }
        }
    }
    s.poll_transmit(&mut Vec::new());
    s
}

fn ours_data(wire: &[u8], expected: usize) {
    let mut s = session_in_data();
    let now = Instant::now();
    let mut size = 0;
    let mut ended = false;
    for read in wire.chunks(READ_SIZE) {
        s.handle_input(now, read);
        while let Some(event) = s.poll_event() {
            match event {
                Event::DataChunk(bytes) => size += black_box(bytes).len(),
                Event::MessageEnd(_) => ended = true,
                _ => {}
            }
        }
    }
    assert!(ended && size == expected);
}

fn stalwart_data(wire: &[u8], expected: usize) {
    let mut receiver = stalwart_smtp_proto::request::receiver::DataReceiver::new();
    let mut message = Vec::with_capacity(expected + 1024);
    let mut ended = false;
    for read in wire.chunks(READ_SIZE) {
        let mut iter = read.iter();
        if receiver.ingest(&mut iter, &mut message) {
            ended = true;
        }
    }
    // Stalwart's receiver keeps the final CRLF out of the message.
    assert!(ended && message.len() + 2 >= expected);
    black_box(message);
}

fn mail_rcpt_lines() -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    for i in 0..1000 {
        lines.push(
            format!(
                "MAIL FROM:<sender.{i}@example.com> SIZE={} BODY=8BITMIME\r\n",
                1000 + i
            )
            .into_bytes(),
        );
        lines.push(format!("RCPT TO:<recipient.{i}@example.org>\r\n").into_bytes());
        lines.push(
            format!("RCPT TO:<user+tag{i}@mail.example.net> NOTIFY=FAILURE,DELAY\r\n").into_bytes(),
        );
    }
    lines
}

fn ours_parse(lines: &[Vec<u8>]) {
    for line in lines {
        let command = Command::parse(&line[..line.len() - 2]).unwrap();
        black_box(command);
    }
}

fn stalwart_parse(lines: &[Vec<u8>]) {
    for line in lines {
        let request = stalwart_smtp_proto::Request::parse(&mut line.iter()).unwrap();
        black_box(request);
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is configurable.
    let (wire, size) = data_body();
    let mib = wire.len() as f64 / (1024.0 * 1024.0);
    let (ours, theirs) = time_pair(|| ours_data(&wire, size), || stalwart_data(&wire, size));
    let gib = |d: Duration| mib / 1024.0 / d.as_secs_f64();
    println!(
        "DATA streaming, {mib:.1} MiB body in {} KiB reads (median of {RUNS}):",
        READ_SIZE / 1024
    );
    println!(
        "  ironpost-smtp-proto ServerSession  {:>8.2} GiB/s  ({:?})",
        gib(ours),
        ours
    );
    println!(
        "  smtp-proto (Stalwart) DataReceiver {:>8.2} GiB/s  ({:?})",
        gib(theirs),
        theirs
    );
    println!(
        "  ratio ours/theirs                  {:>8.2}",
        theirs.as_secs_f64() / ours.as_secs_f64()
    );

    let lines = mail_rcpt_lines();
    let (ours, theirs) = time_pair(|| ours_parse(&lines), || stalwart_parse(&lines));
    let rate = |d: Duration| lines.len() as f64 / d.as_secs_f64() / 1e6;
    println!(
        "MAIL/RCPT parsing, {} commands (median of {RUNS}):",
        lines.len()
    );
    println!(
        "  ironpost-smtp-proto Command::parse {:>8.2} M commands/s",
        rate(ours)
    );
    println!(
        "  smtp-proto (Stalwart) Request::parse {:>6.2} M commands/s",
        rate(theirs)
    );
    println!(
        "  ratio ours/theirs                  {:>8.2}",
        theirs.as_secs_f64() / ours.as_secs_f64()
    );
}
