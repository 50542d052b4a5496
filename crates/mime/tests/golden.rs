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

/// The byte ranges of the elements of the parenthesised list at `start`
/// (strings, literals, atoms and nested lists, as written), and where the
/// list ends.
fn list_elements(s: &[u8], start: usize) -> (Vec<std::ops::Range<usize>>, usize) {
    assert_eq!(s[start], b'(', "a list at {start}");
    let mut elements = Vec::new();
    let mut pos = start + 1;
    loop {
        match s[pos] {
            b')' => return (elements, pos + 1),
            b' ' => pos += 1,
            b'(' => {
                let (_, end) = list_elements(s, pos);
                elements.push(pos..end);
                pos = end;
            }
            b'"' => {
                let mut i = pos + 1;
                while s[i] != b'"' {
                    i += if s[i] == b'\\' { 2 } else { 1 };
                }
                elements.push(pos..i + 1);
                pos = i + 1;
            }
            b'{' => {
                let close = pos + s[pos..].iter().position(|&b| b == b'}').unwrap();
                let len: usize = std::str::from_utf8(&s[pos + 1..close])
                    .unwrap()
                    .parse()
                    .unwrap();
                let end = close + 3 + len;
                elements.push(pos..end);
                pos = end;
            }
            _ => {
                let end = pos
                    + s[pos..]
                        .iter()
                        .position(|&b| b == b' ' || b == b')')
                        .unwrap();
                elements.push(pos..end);
                pos = end;
            }
        }
    }
}

/// A BODYSTRUCTURE answer without its extension data: the BODY answer
/// RFC 3501 defines (`body-type-mpart` without `body-ext-mpart`, the one-part
/// types without `body-ext-1part`, in attached messages too).
fn without_extension_data(s: &[u8], start: usize) -> Vec<u8> {
    let (elements, _) = list_elements(s, start);
    let is_list = |r: &std::ops::Range<usize>| s[r.start] == b'(';
    let mut out = vec![b'('];
    if is_list(&elements[0]) {
        let parts = elements.iter().take_while(|r| is_list(r)).count();
        for part in &elements[..parts] {
            out.extend(without_extension_data(s, part.start));
        }
        out.push(b' ');
        out.extend_from_slice(&s[elements[parts].clone()]);
    } else {
        // type, subtype, parameters, id, description, encoding, size; then
        // envelope, body and lines (message/rfc822) or lines (text).
        let mut kept: Vec<Vec<u8>> = elements[..7]
            .iter()
            .map(|r| s[r.clone()].to_vec())
            .collect();
        match elements.get(7) {
            Some(envelope) if is_list(envelope) => {
                kept.push(s[envelope.clone()].to_vec());
                kept.push(without_extension_data(s, elements[8].start));
                kept.push(s[elements[9].clone()].to_vec());
            }
            Some(lines) if s[lines.clone()].iter().all(u8::is_ascii_digit) => {
                kept.push(s[lines.clone()].to_vec());
            }
            _ => {}
        }
        out.extend(kept.join(&b' '));
    }
    out.push(b')');
    out
}

/// FETCH BODY is not among the recorded items; it is BODYSTRUCTURE without
/// extension data, so Dovecot's BODYSTRUCTURE stripped of it is Dovecot's
/// BODY (checked once against a running Dovecot 2.3 for this corpus).
#[test]
fn body_is_dovecots_bodystructure_without_extension_data() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut compared = 0;
    for entry in fs::read_dir(root.join("corpus")).expect("corpus directory") {
        let path = entry.expect("corpus entry").path();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let golden = fs::read(root.join("goldens").join(format!("{stem}.txt"))).unwrap();
        let Some((_, structure)) = records(&golden)
            .into_iter()
            .find(|(item, _)| item == "BODYSTRUCTURE")
        else {
            panic!("{stem}: no BODYSTRUCTURE in the golden file");
        };
        let raw = fs::read(&path).unwrap();
        let stored = normalize_crlf(&raw);
        let ours = Message::parse(&stored)
            .body_structure()
            .to_imap_string_non_extensible();
        let expected = without_extension_data(&structure, 0);
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&expected),
            "{stem}"
        );
        compared += 1;
    }
    assert!(compared >= 200, "{compared} messages compared");
}
