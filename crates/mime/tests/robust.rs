//! Robustness: arbitrary and mangled input never panics, the structure
//! stays inside the input, and edits keep every byte outside the edit.

use std::fs;
use std::path::Path;

use ironpost_mime::{Message, Part, PartKind, Section, edit, normalize_crlf};
use proptest::prelude::*;

fn corpus() -> &'static [Vec<u8>] {
    static CORPUS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    CORPUS.get_or_init(load_corpus)
}

fn load_corpus() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut names: Vec<_> = fs::read_dir(&dir)
        .expect("corpus")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|p| normalize_crlf(&fs::read(p).expect("read")).into_owned())
        .collect()
}

/// Every part number of the tree (as `Message::part` understands them).
fn numbers(part: &Part, prefix: &[u32], out: &mut Vec<Vec<u32>>) {
    match &part.kind {
        PartKind::Multipart(children) => {
            for (i, child) in children.iter().enumerate() {
                let mut n = prefix.to_vec();
                n.push(i as u32 + 1);
                out.push(n.clone());
                numbers(child, &n, out);
            }
        }
        PartKind::Message(inner) if !prefix.is_empty() => {
            if !inner.is_multipart() {
                let mut n = prefix.to_vec();
                n.push(1);
                out.push(n);
            } else {
                numbers(inner, prefix, out);
            }
        }
        _ => {}
    }
}

fn check_ranges(part: &Part, len: usize) {
    assert!(part.header.start <= part.header.end && part.header.end <= len);
    assert!(part.body.start <= part.body.end && part.body.end <= len);
    for child in part.children() {
        assert!(child.header.start >= part.body.start && child.body.end <= part.body.end);
        check_ranges(child, len);
    }
    if let PartKind::Message(inner) = &part.kind {
        check_ranges(inner, len);
    }
}

fn exercise(raw: &[u8]) {
    let msg = Message::parse(raw);
    check_ranges(msg.root(), raw.len());
    let _ = msg.envelope().to_imap_string();
    let _ = msg.body_structure().to_imap_string();
    let _ = msg.body_structure().to_imap_string_non_extensible();
    let _ = msg.rfc822_size();
    let _ = msg.body_texts();
    let _ = msg.binary(&[]).expect("the whole message");
    if let Some(date) = msg.header_raw("Date") {
        let _ = ironpost_mime::decode::parse_date(&date);
    }
    let mut all = Vec::new();
    numbers(msg.root(), &[], &mut all);
    for n in &all {
        let part = msg.part(n).expect("listed part exists");
        assert!(part.body.end <= raw.len());
        for text in ["", ".MIME"] {
            let spec = format!(
                "BODY[{}{text}]<1.20>",
                n.iter().map(u32::to_string).collect::<Vec<_>>().join(".")
            );
            msg.fetch_body(&spec).expect("valid section");
        }
        msg.binary(n).expect("listed part exists");
    }
    for spec in [
        "BODY[]",
        "BODY[HEADER]",
        "BODY[TEXT]",
        "BODY[HEADER.FIELDS (FROM SUBJECT)]",
        "BODY[HEADER.FIELDS.NOT (FROM)]",
        "BODY[1]",
        "BODY[1.2.3.HEADER]",
    ] {
        msg.fetch_body(spec).expect("valid section");
    }
    let _ = msg.header_text("Subject");
    let _ = edit::attachments(raw);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_dates_never_panic(value in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Some(date) = ironpost_mime::decode::parse_date(&value) {
            let _ = date.unix_timestamp();
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..2048)) {
        exercise(&raw);
    }

    #[test]
    fn mime_shaped_noise_never_panics(
        pieces in proptest::collection::vec(
            prop_oneof![
                Just(&b"--b\r\n"[..]), Just(&b"--b--\r\n"[..]), Just(&b"\r\n"[..]), Just(&b"\n"[..]),
                Just(&b"Content-Type: multipart/mixed; boundary=b\r\n"[..]),
                Just(&b"Content-Type: message/rfc822\r\n"[..]),
                Just(&b"Content-Type: text/plain; name*0=a; name*1*=utf-8''b\r\n"[..]),
                Just(&b"From: \"x\" <a@b>, (c) d@e, g: h@i;\r\n"[..]),
                Just(&b"Subject: =?utf-8?q?x?=\r\n"[..]), Just(&b" folded\r\n"[..]),
                Just(&b"body text\r\n"[..]), Just(&b"\x00\xff\r"[..]),
            ],
            0..64,
        )
    ) {
        let raw: Vec<u8> = pieces.concat();
        exercise(&raw);
    }

    #[test]
    fn truncated_and_flipped_corpus_never_panics(index in 0usize..231, cut in 0usize..4096, flip in any::<(usize, u8)>()) {
        let all = corpus();
        let mut raw = all[index % all.len()].clone();
        raw.truncate(cut.min(raw.len()));
        if !raw.is_empty() {
            let at = flip.0 % raw.len();
            raw[at] ^= flip.1;
        }
        exercise(&raw);
    }
}

#[test]
fn whole_corpus_is_consistent() {
    for raw in corpus() {
        exercise(raw);
    }
}

#[test]
fn edits_keep_untouched_bytes_on_the_corpus() {
    for raw in corpus() {
        let raw = raw.as_slice();
        let before = Message::parse(raw);

        let out = edit::prepend_headers(raw, &[("X-Test", "1")]).unwrap();
        assert!(out.ends_with(raw));

        let out = edit::set_header(raw, "X-Spam-Flag", "YES").unwrap();
        let after = Message::parse(&out);
        assert_eq!(
            &out[after.root().body.clone()],
            &raw[before.root().body.clone()],
            "set_header changed the body"
        );

        let out = edit::prefix_subject(raw, "[SPAM]").unwrap();
        let after = Message::parse(&out);
        assert_eq!(
            &out[after.root().body.clone()],
            &raw[before.root().body.clone()]
        );

        for attachment in edit::attachments(raw) {
            let Ok(out) = edit::remove_attachment(raw, &attachment.part, "removed") else {
                continue;
            };
            let target = before.part(&attachment.part).unwrap();
            let start = target.header.start;
            let mut end = target.body.end;
            if raw[end..].starts_with(b"--") && raw[..end].ends_with(b"\n") {
                end -= if raw[..end].ends_with(b"\r\n") { 2 } else { 1 };
            }
            assert_eq!(&out[..start], &raw[..start]);
            assert_eq!(&out[out.len() - (raw.len() - end)..], &raw[end..]);
            let after = Message::parse(&out);
            assert_eq!(
                after.root().children().len(),
                before.root().children().len(),
                "the notice changed the structure"
            );
            let section = Section::parse(
                &attachment
                    .part
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join("."),
            )
            .unwrap();
            assert_eq!(after.section(&section, None).unwrap(), b"removed");
        }

        if let Ok(out) = edit::append_signature(raw, "-- \nsig", "<p>sig</p>") {
            let after = Message::parse(&out);
            assert_eq!(
                after.root().children().len(),
                before.root().children().len(),
                "the signature changed the structure"
            );
            assert_eq!(
                &out[..before.root().body.start],
                &raw[..before.root().body.start]
            );
        }
    }
}
