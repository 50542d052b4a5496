//! Differential test against Dovecot: for every message of `tests/corpus`,
//! our ENVELOPE, BODYSTRUCTURE, RFC822.SIZE and body sections must be byte
//! for byte what Dovecot 2.3 answered (`tests/goldens`, recorded by
//! `cargo xtask mime-goldens`).
//!
//! The corpus files are normalised to CRLF line ends before parsing, exactly
//! as the xtask command does before it appends them to Dovecot: messages are
//! stored that way.
//!
//! A difference that remains on purpose is listed in `KNOWN_DIFFERENCES`
//! with the reason ours is right; a listed difference that no longer occurs
//! fails the test too, so that the list stays true.

use std::fs;
use std::path::Path;

use ironpost_mime::{Message, normalize_crlf};

const BARE_CR: &str = "the message has a bare CR before CRLF (`\\r\\r\\n`); Dovecot rewrites that line end when it saves the message and then counts and sends 49 octets of the 50 it was given. Ironpost stores the bytes it accepted and answers with exactly those bytes and their count, which keeps RFC822.SIZE equal to the length of BODY[] as RFC 3501 requires.";

/// (corpus file stem, FETCH item, why our answer is the right one).
const KNOWN_DIFFERENCES: &[(&str, &str, &str)] = &[
    ("mal-cr-only", "RFC822.SIZE", BARE_CR),
    ("mal-cr-only", "BODY[HEADER]", BARE_CR),
    (
        "mal-cr-only",
        "BODY[HEADER.FIELDS (FROM TO CC SUBJECT DATE MESSAGE-ID CONTENT-TYPE)]",
        BARE_CR,
    ),
    (
        "mal-cr-only",
        "BODY[HEADER.FIELDS.NOT (RECEIVED DATE)]",
        BARE_CR,
    ),
    ("mal-cr-only", "BODY[1.MIME]", BARE_CR),
];

/// The partial range the xtask command asks for (`BODY[TEXT]<10.50>`).
const PARTIAL_COUNT: &str = "50";

fn records(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let nl = pos
            + data[pos..]
                .iter()
                .position(|&b| b == b'\n')
                .expect("record header");
        let head = std::str::from_utf8(&data[pos..nl]).expect("record header is text");
        let (name, len) = head.rsplit_once(' ').expect("name and length");
        let len: usize = len.parse().expect("length");
        out.push((name.to_string(), data[nl + 1..nl + 1 + len].to_vec()));
        pos = nl + 1 + len + 1;
    }
    out
}

fn ours(msg: &Message<'_>, item: &str) -> Vec<u8> {
    match item {
        "RFC822.SIZE" => msg.rfc822_size().to_string().into_bytes(),
        "ENVELOPE" => msg.envelope().to_imap_string(),
        "BODYSTRUCTURE" => msg.body_structure().to_imap_string(),
        _ => {
            let request = match item.strip_suffix('>') {
                Some(head) => format!("{head}.{PARTIAL_COUNT}>"),
                None => item.to_string(),
            };
            let answer = msg
                .fetch_body(&request)
                .unwrap_or_else(|e| format!("error: {e}").into_bytes());
            // Our answer repeats the item name; the golden holds the value.
            match answer.strip_prefix(format!("{item} ").as_bytes()) {
                Some(value) => value.to_vec(),
                None => answer,
            }
        }
    }
}

#[test]
fn matches_dovecot_goldens() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut names: Vec<String> = fs::read_dir(root.join("corpus"))
        .expect("corpus directory")
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n.ends_with(".eml"))
        .collect();
    names.sort();
    assert!(
        names.len() >= 200,
        "the corpus has {} messages",
        names.len()
    );

    let mut compared = 0;
    let mut failures = Vec::new();
    let mut seen_known = Vec::new();
    for name in &names {
        let stem = name.trim_end_matches(".eml");
        let raw = fs::read(root.join("corpus").join(name)).expect("corpus file");
        let golden = fs::read(root.join("goldens").join(format!("{stem}.txt")))
            .unwrap_or_else(|_| panic!("no golden file for {name}: run cargo xtask mime-goldens"));
        let stored = normalize_crlf(&raw);
        let msg = Message::parse(&stored);
        for (item, expected) in records(&golden) {
            compared += 1;
            let got = ours(&msg, &item);
            let known = KNOWN_DIFFERENCES
                .iter()
                .any(|(f, i, _)| *f == stem && *i == item);
            if known {
                seen_known.push((stem.to_string(), item.clone()));
                if got == expected {
                    failures.push(format!(
                        "{stem} {item}: listed as a known difference but now matches"
                    ));
                }
            } else if got != expected {
                failures.push(format!(
                    "{stem} {item}:\n  dovecot: {}\n  ours:    {}",
                    String::from_utf8_lossy(&expected[..expected.len().min(600)]),
                    String::from_utf8_lossy(&got[..got.len().min(600)])
                ));
            }
        }
    }
    for (f, i, _) in KNOWN_DIFFERENCES {
        if !seen_known.iter().any(|(sf, si)| sf == f && si == i) {
            failures.push(format!(
                "known difference {f} {i} is not in the goldens any more"
            ));
        }
    }
    assert!(compared > 1000, "only {compared} items compared");
    assert!(
        failures.is_empty(),
        "{} of {compared} items differ from Dovecot:\n{}",
        failures.len(),
        failures
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
