//! Arbitrary bytes through the MIME tree, ENVELOPE and BODYSTRUCTURE: never
//! a panic, every range inside the input, and the BODYSTRUCTURE rendering
//! independent of the message being parsed twice.
#![no_main]

use ironpost_mime::{Message, Part};
use libfuzzer_sys::fuzz_target;

fn check(part: &Part, len: usize) {
    assert!(part.header.start <= part.header.end && part.body.end <= len);
    assert!(part.body.start <= part.body.end);
    for child in part.children() {
        assert!(child.header.start >= part.body.start && child.body.end <= part.body.end);
        check(child, len);
    }
}

fuzz_target!(|data: &[u8]| {
    let msg = Message::parse(data);
    check(msg.root(), data.len());
    let structure = msg.body_structure().to_imap_string();
    let envelope = msg.envelope().to_imap_string();
    assert!(msg.rfc822_size() >= data.len() as u64);
    let again = Message::parse(data);
    assert_eq!(again.body_structure().to_imap_string(), structure);
    assert_eq!(again.envelope().to_imap_string(), envelope);
    let _ = msg.header_text("Subject");
});
