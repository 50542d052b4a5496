//! Messages per second from raw bytes to the BODYSTRUCTURE wire text, for a
//! 5 KiB and a 1 MiB message (`cargo xtask bench mime`).
//!
//! Each case parses the message, builds the extended BODYSTRUCTURE and
//! renders it, as an IMAP server does for an uncached FETCH BODYSTRUCTURE.
//! The time is measured over several rounds of at least half a second; the
//! median round is reported.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ironpost_mime::Message;

/// A multipart/mixed message of about `size` bytes: a text/plain and a
/// text/html alternative, and a base64 attachment filling the rest.
fn message(size: usize) -> Vec<u8> {
    let mut m = String::from(
        "Return-Path: <alice@example.com>\r\n\
         Received: from mx.example.org (mx.example.org [192.0.2.7])\r\n\tby ironpost.example with ESMTPS id 4F2A1\r\n\tfor <bob@example.com>; Mon, 7 Feb 1994 21:52:25 -0800\r\n\
         From: \"Alice Example\" <alice@example.com>\r\n\
         To: Bob <bob@example.com>, carol@example.org\r\n\
         Subject: =?utf-8?q?Quarterly_report_=E2=80=94_draft?=\r\n\
         Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n\
         Message-ID: <bench.1@example.com>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"=_outer\"\r\n\r\n\
         --=_outer\r\n\
         Content-Type: multipart/alternative; boundary=\"=_alt\"\r\n\r\n\
         --=_alt\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: quoted-printable\r\n\r\n",
    );
    for _ in 0..12 {
        m.push_str("Here is the draft of the quarterly report, please review it.\r\n");
    }
    m.push_str("--=_alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body>\r\n");
    for _ in 0..12 {
        m.push_str("<p>Here is the draft of the quarterly report, please review it.</p>\r\n");
    }
    m.push_str(
        "</body></html>\r\n--=_alt--\r\n\r\n--=_outer\r\n\
         Content-Type: application/pdf; name=\"report.pdf\"\r\n\
         Content-Disposition: attachment; filename=\"report.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n",
    );
    let line = "JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0KeJwr\r\n";
    while m.len() + line.len() + 16 < size {
        m.push_str(line);
    }
    m.push_str("--=_outer--\r\n");
    m.into_bytes()
}

fn run(name: &str, raw: &[u8]) {
    let render = || {
        let msg = Message::parse(black_box(raw));
        black_box(msg.body_structure().to_imap_string());
    };
    // warm up and calibrate a round to about half a second
    let start = Instant::now();
    let mut calibration = 0u64;
    while start.elapsed() < Duration::from_millis(200) {
        render();
        calibration += 1;
    }
    let per_round = (calibration * 5 / 2).max(1);
    let mut rates = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        for _ in 0..per_round {
            render();
        }
        rates.push(per_round as f64 / t.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    println!(
        "{name}: {} bytes, median {:.0} messages/s ({:.1} MiB/s), rounds of {per_round}",
        raw.len(),
        median,
        median * raw.len() as f64 / (1024.0 * 1024.0)
    );
}

fn main() {
    // `IRONPOST_BENCH_DUMP=DIR` writes the two messages there instead, so the
    // same bytes can be timed through another server (BENCHMARKS.md).
    if let Some(dir) = std::env::var_os("IRONPOST_BENCH_DUMP") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("dump directory");
        for (name, size) in [("5k.eml", 5 * 1024), ("1m.eml", 1024 * 1024)] {
            std::fs::write(dir.join(name), message(size)).expect("write message");
        }
        return;
    }
    // `cargo bench` passes `--bench`; a name filter may follow.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    for (name, size) in [
        ("bodystructure_5k", 5 * 1024),
        ("bodystructure_1m", 1024 * 1024),
    ] {
        if filter.as_deref().is_none_or(|f| name.contains(f)) {
            let raw = message(size);
            assert_eq!(Message::parse(&raw).root().children().len(), 2);
            run(name, &raw);
        }
    }
}
