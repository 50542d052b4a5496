//! Section extraction on arbitrary bytes: the first input byte picks a
//! section and a partial range, the rest is the message. Never a panic, and
//! a partial is always a slice of the full section.
#![no_main]

use ironpost_mime::{Message, Partial, Section};
use libfuzzer_sys::fuzz_target;

const SECTIONS: &[&str] = &[
    "",
    "HEADER",
    "TEXT",
    "HEADER.FIELDS (FROM TO SUBJECT)",
    "HEADER.FIELDS.NOT (RECEIVED)",
    "1",
    "1.MIME",
    "2",
    "2.MIME",
    "1.1",
    "1.2.HEADER",
    "2.TEXT",
    "3.1.MIME",
    "1.1.1.1",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, raw)) = data.split_first() else {
        return;
    };
    let msg = Message::parse(raw);
    let spec = SECTIONS[usize::from(selector) % SECTIONS.len()];
    let section = Section::parse(spec).expect("listed sections are valid");
    let full = msg.section(&section, None);
    let partial = Partial {
        start: u64::from(selector / 16),
        count: u64::from(selector % 16) * 7,
    };
    let part = msg.section(&section, Some(partial));
    match (full, part) {
        (Ok(full), Ok(part)) => assert_eq!(partial.apply(&full), &part[..]),
        (Err(a), Err(b)) => assert_eq!(a, b),
        (a, b) => panic!("full {a:?} but partial {b:?}"),
    }
    let item = format!("BODY[{spec}]<{}.{}>", partial.start, partial.count);
    msg.fetch_body(&item).expect("FETCH of a valid section answers");
    // free-form section text from the input never panics either
    if let Ok(text) = std::str::from_utf8(&raw[..raw.len().min(40)]) {
        let _ = Section::parse(text);
        let _ = msg.fetch_body(&format!("BODY[{text}]"));
    }
});
