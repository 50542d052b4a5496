//! `cargo xtask mime-corpus`: write the generated part of the ironpost-mime
//! corpus (`crates/mime/tests/corpus/gen-NNN.eml`).
//!
//! The generator is deterministic (a fixed-seed xorshift), so the files only
//! change when this code does. It combines what real mail carries: address
//! forms (display names, quoted names, comments, groups, routes, encoded
//! words), subjects (folded, encoded, quoted specials), nested multiparts
//! (mixed, alternative, related, digest), message/rfc822 parts, every
//! transfer encoding, RFC 2231 parameters, and the extended BODYSTRUCTURE
//! fields (Content-ID, -Description, -Disposition, -Language, -Location,
//! -MD5). About one message in six uses LF line ends. The hand-made malformed
//! cases live beside them as `mal-*.eml` and are not touched here.

use std::fs;

use crate::{Result, root};

/// How many messages the generator writes.
pub(crate) const COUNT: usize = 190;

pub(crate) fn run(args: &[String]) -> Result {
    if let Some(arg) = args.first() {
        return Err(format!("mime-corpus: unknown argument {arg}"));
    }
    let dir = root().join("crates/mime/tests/corpus");
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("gen-"))
        {
            fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    let mut rng = Rng(0x1e0_9057_c0de_5eed);
    for i in 0..COUNT {
        let message = generate(&mut rng, i);
        let path = dir.join(format!("gen-{i:03}.eml"));
        fs::write(&path, message).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    eprintln!("xtask: wrote {COUNT} messages to {}", dir.display());
    Ok(())
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const WORDS: &[&str] = &[
    "mail", "server", "quota", "report", "invoice", "meeting", "tomorrow", "the", "a", "of",
    "budget", "draft", "review", "lunch", "release", "notes", "weekly", "status", "urgent",
    "photo", "holiday", "plan", "question", "answer", "Ironpost", "IMAP", "delivery",
];

const NAMES: &[&str] = &[
    "Alice Example",
    "Bob",
    "\"Carol, the Admin\"",
    "\"Dave \\\"D\\\" Smith\"",
    "=?UTF-8?Q?J=C3=B6rg_M=C3=BCller?=",
    "=?ISO-8859-1?B?SvZyZw==?=",
    "Eve  Twin   Spaces",
    "\"\"",
    "=?utf-8?q?Fran=C3=A7ois?= Dupont",
    "Mr. Grey",
];

const DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "mail.example.net",
    "sub.domain.example",
    "[192.0.2.1]",
];

const LOCALS: &[&str] = &[
    "alice",
    "bob",
    "carol.admin",
    "d+tag",
    "\"quoted local\"",
    "postmaster",
    "x_y",
];

fn words(rng: &mut Rng, n: usize) -> String {
    (0..n)
        .map(|_| rng.pick(WORDS))
        .collect::<Vec<_>>()
        .join(" ")
}

fn address(rng: &mut Rng) -> String {
    let local = rng.pick(LOCALS);
    let domain = rng.pick(DOMAINS);
    match rng.below(8) {
        0 => format!("{local}@{domain}"),
        1 => format!("<{local}@{domain}>"),
        2 => format!("{local}@{domain} ({})", words(rng, 2)),
        3 => format!("<@relay.example:{local}@{domain}>"),
        _ => format!("{} <{local}@{domain}>", rng.pick(NAMES)),
    }
}

fn address_list(rng: &mut Rng) -> String {
    match rng.below(10) {
        0 => format!(
            "undisclosed-recipients:;{}",
            if rng.chance(50) { "" } else { " " }
        ),
        1 => format!("Team: {}, {};", address(rng), address(rng)),
        2 | 3 => {
            let n = 2 + rng.below(3);
            let sep = if rng.chance(40) { ",\r\n " } else { ", " };
            (0..n).map(|_| address(rng)).collect::<Vec<_>>().join(sep)
        }
        _ => address(rng),
    }
}

fn subject(rng: &mut Rng) -> String {
    match rng.below(12) {
        0 => format!(
            "=?UTF-8?B?{}?=",
            base64(words(rng, 3).as_bytes()).trim_end()
        ),
        1 => "=?utf-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=".to_string(),
        2 => format!("Re: {}\r\n\t{}", words(rng, 4), words(rng, 3)),
        3 => format!("\"quoted\" \\ {}", words(rng, 2)),
        4 => String::new(),
        5 => format!("  {}   with   spaces  ", words(rng, 2)),
        6 => format!(
            "Fwd: [list] {} =?ISO-8859-1?Q?caf=E9?= {}",
            words(rng, 1),
            words(rng, 1)
        ),
        7 => format!(
            "{}\r\n {}\r\n {}",
            words(rng, 8),
            words(rng, 8),
            words(rng, 8)
        ),
        _ => {
            let n = 2 + rng.below(6);
            words(rng, n)
        }
    }
}

fn date(rng: &mut Rng) -> String {
    match rng.below(8) {
        0 => "Mon, 7 Feb 1994 21:52:25 -0800".to_string(),
        1 => "7 Feb 1994 21:52:25 GMT".to_string(),
        2 => "Tue, 03 Sep 2024 09:15:00 +0200 (CEST)".to_string(),
        3 => "garbage date".to_string(),
        _ => format!(
            "{}, {} {} 20{:02} {:02}:{:02}:{:02} {}",
            rng.pick(&["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]),
            1 + rng.below(28),
            rng.pick(&[
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
            ]),
            rng.below(30),
            rng.below(24),
            rng.below(60),
            rng.below(60),
            rng.pick(&["+0000", "-0500", "+0530", "+0100"])
        ),
    }
}

fn base64(data: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    let mut line = 0;
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
        line += 4;
        if line >= 76 {
            out.push_str("\r\n");
            line = 0;
        }
    }
    if !out.ends_with("\r\n") {
        out.push_str("\r\n");
    }
    out
}

fn quoted_printable(text: &str) -> String {
    let mut out = String::new();
    let mut col = 0;
    for &b in text.as_bytes() {
        let piece = if b == b'\n' {
            col = 0;
            out.push_str("\r\n");
            continue;
        } else if b == b'=' || b >= 0x80 {
            format!("={b:02X}")
        } else {
            (b as char).to_string()
        };
        if col + piece.len() > 73 {
            out.push_str("=\r\n");
            col = 0;
        }
        col += piece.len();
        out.push_str(&piece);
    }
    out.push_str("\r\n");
    out
}

fn text_body(rng: &mut Rng, lines: usize) -> String {
    let mut out = String::new();
    for _ in 0..lines {
        out.push_str(&{
            let n = 3 + rng.below(10);
            words(rng, n)
        });
        out.push_str("\r\n");
    }
    out
}

fn boundary(rng: &mut Rng, depth: usize) -> String {
    match rng.below(5) {
        0 => format!("----=_Part_{}_{}", depth, rng.next() % 100_000),
        1 => format!("b{depth}"),
        2 => format!("=_{:x}", rng.next()),
        3 => format!("simple boundary {depth}"),
        _ => format!("Apple-Mail-{:X}", rng.next() % 0xffff_ffff),
    }
}

fn extra_headers(rng: &mut Rng) -> String {
    let mut h = String::new();
    if rng.chance(25) {
        h.push_str(&format!(
            "Content-ID: <part{}@example.com>\r\n",
            rng.below(1000)
        ));
    }
    if rng.chance(20) {
        h.push_str(&format!("Content-Description: {}\r\n", words(rng, 3)));
    }
    if rng.chance(10) {
        h.push_str("Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n");
    }
    if rng.chance(15) {
        h.push_str(&format!(
            "Content-Language: {}\r\n",
            rng.pick(&["en", "en, de", "en-US", "fr-CA, en (comment)", "de-AT"])
        ));
    }
    if rng.chance(10) {
        h.push_str(&format!(
            "Content-Location: {}\r\n",
            rng.pick(&[
                "http://example.com/a.html",
                "file.txt",
                "\"quoted location\""
            ])
        ));
    }
    h
}

fn disposition(rng: &mut Rng, filename: &str) -> String {
    match rng.below(7) {
        0 => String::new(),
        1 => "Content-Disposition: inline\r\n".to_string(),
        2 => format!("Content-Disposition: attachment; filename=\"{filename}\"\r\n"),
        3 => format!("Content-Disposition: attachment; filename={filename}; size=1234\r\n"),
        4 => "Content-Disposition: attachment;\r\n filename*=UTF-8''na%C3%AFve%20file.txt\r\n"
            .to_string(),
        5 => "Content-Disposition: attachment;\r\n filename*0=\"long-file\";\r\n filename*1=\"name.pdf\"\r\n"
            .to_string(),
        _ => format!("Content-Disposition: ATTACHMENT; FileName=\"{filename}\"\r\n"),
    }
}

/// A leaf part: (headers, body).
fn leaf(rng: &mut Rng) -> (String, String) {
    let mut headers = String::new();
    let body;
    match rng.below(9) {
        0..=2 => {
            let charset = rng.pick(&["us-ascii", "UTF-8", "\"utf-8\"", "iso-8859-1", ""]);
            if charset.is_empty() && rng.chance(50) {
                // no Content-Type at all: text/plain by default
            } else if charset.is_empty() {
                headers.push_str("Content-Type: text/plain\r\n");
            } else {
                headers.push_str(&format!(
                    "Content-Type: text/plain; charset={charset}{}\r\n",
                    if rng.chance(20) {
                        "; format=flowed"
                    } else {
                        ""
                    }
                ));
            }
            let text = {
                let n = 1 + rng.below(8);
                text_body(rng, n)
            };
            match rng.below(4) {
                0 => {
                    headers.push_str("Content-Transfer-Encoding: quoted-printable\r\n");
                    body =
                        quoted_printable(&text.replace("\r\n", "\n").replace("mail", "m=C3=A4il"));
                }
                1 => {
                    headers.push_str("Content-Transfer-Encoding: 8bit\r\n");
                    body = format!("{text}caf\u{e9} na\u{ef}ve\r\n");
                }
                2 => {
                    headers.push_str("Content-Transfer-Encoding: 7BIT\r\n");
                    body = text;
                }
                _ => body = text,
            }
        }
        3 | 4 => {
            headers.push_str("Content-Type: text/html; charset=\"utf-8\"\r\n");
            let text = format!(
                "<html><body><p>{}</p>\r\n<p>{}</p></body></html>\r\n",
                words(rng, 6),
                words(rng, 4)
            );
            if rng.chance(40) {
                headers.push_str("Content-Transfer-Encoding: base64\r\n");
                body = base64(text.as_bytes());
            } else {
                body = text;
            }
        }
        5 => {
            let name = rng.pick(&["photo.png", "image 1.png", "=?UTF-8?Q?b=C3=A4r.png?="]);
            headers.push_str(&format!("Content-Type: image/png; name=\"{name}\"\r\n"));
            headers.push_str("Content-Transfer-Encoding: base64\r\n");
            headers.push_str(&disposition(rng, "photo.png"));
            let data: Vec<u8> = (0..40 + rng.below(300)).map(|_| rng.next() as u8).collect();
            body = base64(&data);
        }
        6 => {
            headers.push_str("Content-Type: application/pdf;\r\n\tname=\"report.pdf\"\r\n");
            headers.push_str("Content-Transfer-Encoding: Base64\r\n");
            headers.push_str(&disposition(rng, "report.pdf"));
            let data: Vec<u8> = (0..100 + rng.below(600))
                .map(|_| rng.next() as u8)
                .collect();
            body = base64(&data);
        }
        7 => {
            headers.push_str(&format!(
                "Content-Type: {}\r\n",
                rng.pick(&[
                    "application/octet-stream",
                    "APPLICATION/X-Custom; Param=Value",
                    "text/calendar; method=REQUEST; charset=UTF-8",
                    "text/x-unknown-thing",
                    "application/json; charset=utf-8",
                ])
            ));
            headers.push_str(&disposition(rng, "data.bin"));
            body = text_body(rng, 2);
        }
        _ => {
            headers.push_str("Content-Type: text/plain; charset=utf-8\r\n");
            headers.push_str("Content-Transfer-Encoding: base64\r\n");
            body = base64(text_body(rng, 3).as_bytes());
        }
    }
    headers.push_str(&extra_headers(rng));
    (headers, body)
}

/// A body part (headers, body) of the given nesting depth.
fn entity(rng: &mut Rng, depth: usize) -> (String, String) {
    let kind = if depth >= 3 { 0 } else { rng.below(10) };
    match kind {
        7 | 8 => multipart(rng, depth),
        9 => {
            let inner = message(rng, depth + 1);
            let mut headers = "Content-Type: message/rfc822\r\n".to_string();
            if rng.chance(30) {
                headers.push_str("Content-Disposition: attachment; filename=\"fwd.eml\"\r\n");
            }
            headers.push_str(&extra_headers(rng));
            (headers, inner)
        }
        _ => leaf(rng),
    }
}

fn multipart(rng: &mut Rng, depth: usize) -> (String, String) {
    let subtype = rng.pick(&[
        "mixed",
        "alternative",
        "related",
        "mixed",
        "digest",
        "signed",
    ]);
    let b = boundary(rng, depth);
    let quoted = b.contains(' ') || rng.chance(50);
    let mut headers = format!(
        "Content-Type: multipart/{subtype};{}boundary={}{}\r\n",
        if rng.chance(30) { "\r\n\t" } else { " " },
        if quoted {
            format!("\"{b}\"")
        } else {
            b.clone()
        },
        if subtype == "signed" {
            "; protocol=\"application/pgp-signature\"; micalg=pgp-sha256"
        } else {
            ""
        }
    );
    headers.push_str(&extra_headers(rng));
    let mut body = String::new();
    if rng.chance(30) {
        body.push_str("This is a multi-part message in MIME format.\r\n\r\n");
    }
    let n = 1 + rng.below(4);
    for i in 0..n {
        body.push_str(&format!("--{b}\r\n"));
        let (h, content) = if subtype == "alternative" {
            if i % 2 == 0 {
                let text = text_body(rng, 2);
                (
                    "Content-Type: text/plain; charset=utf-8\r\n".to_string(),
                    text,
                )
            } else {
                (
                    "Content-Type: text/html; charset=utf-8\r\n".to_string(),
                    format!("<p>{}</p>\r\n", words(rng, 5)),
                )
            }
        } else if subtype == "digest" && rng.chance(60) {
            // digest children default to message/rfc822
            (String::new(), message(rng, depth + 2))
        } else {
            entity(rng, depth + 1)
        };
        body.push_str(&h);
        body.push_str("\r\n");
        body.push_str(&content);
    }
    body.push_str(&format!("--{b}--\r\n"));
    if rng.chance(25) {
        body.push_str("epilogue text\r\n");
    }
    (headers, body)
}

fn message(rng: &mut Rng, depth: usize) -> String {
    let mut m = String::new();
    if rng.chance(30) {
        m.push_str(&format!(
            "Received: from mx.example.org (mx.example.org [192.0.2.7])\r\n\tby ironpost.example with ESMTP id {}\r\n\tfor <alice@example.com>; {}\r\n",
            rng.next() % 1_000_000,
            date(rng)
        ));
    }
    if rng.chance(90) {
        m.push_str(&format!("Date: {}\r\n", date(rng)));
    }
    if rng.chance(95) {
        m.push_str(&format!("From: {}\r\n", address_list(rng)));
    }
    if rng.chance(15) {
        m.push_str(&format!("Sender: {}\r\n", address(rng)));
    }
    if rng.chance(20) {
        m.push_str(&format!("Reply-To: {}\r\n", address_list(rng)));
    }
    if rng.chance(90) {
        m.push_str(&format!("To: {}\r\n", address_list(rng)));
    }
    if rng.chance(30) {
        m.push_str(&format!("Cc: {}\r\n", address_list(rng)));
    }
    if rng.chance(10) {
        m.push_str(&format!("Bcc: {}\r\n", address_list(rng)));
    }
    if rng.chance(90) {
        m.push_str(&format!("Subject: {}\r\n", subject(rng)));
    }
    if rng.chance(85) {
        m.push_str(&format!(
            "Message-ID: <{}.{}@example.com>\r\n",
            rng.next() % 1_000_000,
            depth
        ));
    }
    if rng.chance(25) {
        m.push_str("In-Reply-To: <parent.1@example.com>\r\n");
    }
    if rng.chance(20) {
        m.push_str("X-Mailer: Ironpost corpus generator\r\n");
    }
    if rng.chance(85) {
        m.push_str("MIME-Version: 1.0\r\n");
    }
    let (headers, body) = if depth >= 3 {
        leaf(rng)
    } else {
        entity(rng, depth)
    };
    m.push_str(&headers);
    m.push_str("\r\n");
    m.push_str(&body);
    m
}

fn generate(rng: &mut Rng, index: usize) -> Vec<u8> {
    let mut text = message(rng, 0);
    if index % 6 == 5 {
        text = text.replace("\r\n", "\n");
    }
    text.into_bytes()
}
