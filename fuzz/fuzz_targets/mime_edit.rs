//! Edit, then reparse: the bytes outside each edit are untouched, and the
//! parts an edit does not touch read back identical.
#![no_main]

use ironpost_mime::{Message, edit};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let before = Message::parse(data);
    let body = &data[before.root().body.clone()];

    let out = edit::prepend_headers(data, &[("X-Fuzz", "1")]).expect("valid field");
    assert!(out.ends_with(data));

    let out = edit::set_header(data, "X-Spam-Flag", "YES").expect("valid field");
    let after = Message::parse(&out);
    assert_eq!(&out[after.root().body.clone()], body);

    let out = edit::remove_header(data, "Received").expect("valid name");
    let after = Message::parse(&out);
    assert_eq!(&out[after.root().body.clone()], body);

    let out = edit::prefix_subject(data, "[SPAM]").expect("prefix");
    let after = Message::parse(&out);
    assert_eq!(&out[after.root().body.clone()], body);

    for attachment in edit::attachments(data) {
        let Ok(out) = edit::remove_attachment(data, &attachment.part, "removed") else {
            continue;
        };
        let target = before.part(&attachment.part).expect("listed part");
        let start = target.header.start;
        assert_eq!(&out[..start], &data[..start]);
        let mut end = target.body.end;
        if data[end..].starts_with(b"--") && data[..end].ends_with(b"\n") {
            end -= if data[..end].ends_with(b"\r\n") { 2 } else { 1 };
        }
        assert!(out.ends_with(&data[end..]));
    }

    if let Ok(out) = edit::append_signature(data, "-- \nsig", "<p>sig</p>") {
        let start = before.root().body.start;
        assert_eq!(&out[..start], &data[..start]);
    }
});
