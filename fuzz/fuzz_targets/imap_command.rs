//! IMAP command parser: arbitrary bytes never panic; a command that parses
//! encodes to bytes that parse to the same command (and encode the same
//! again), and both the input and the encoding frame as exactly one command.
#![no_main]

use ironpost_imap_proto::framing::{Fragment, Fragmenter};
use ironpost_imap_proto::{Command, Limits, ParseError};
use libfuzzer_sys::fuzz_target;

/// Frames `input` with limits nothing here can reach, collecting every
/// literal, and returns the fragments and what is left of the input.
fn frame(input: &[u8]) -> (Vec<Fragment>, usize) {
    let mut limits = Limits::default();
    limits.line = usize::MAX / 4;
    limits.unterminated_line = usize::MAX / 4;
    limits.literal = u64::MAX;
    limits.literals = usize::MAX;
    limits.command = usize::MAX / 4;
    let mut fragmenter = Fragmenter::new(&limits);
    // A `bytes::BytesMut`, typed by `Fragmenter::next` (bytes is not a
    // dependency of this crate).
    let mut buffer = Default::default();
    Extend::extend(&mut buffer, input.iter().copied());
    let mut fragments = Vec::new();
    while let Some(fragment) = fragmenter.next(&mut buffer) {
        if let Fragment::Literal { .. } = fragment {
            assert!(fragmenter.collect(), "a literal of a parsed command fits");
        }
        fragments.push(fragment);
    }
    (fragments, buffer.len())
}

/// The fragments of one complete command: its literals, then the command.
fn one_command(input: &[u8]) {
    let (fragments, left) = frame(input);
    assert_eq!(left, 0, "the command is framed whole");
    let (last, literals) = fragments.split_last().expect("a fragment");
    assert_eq!(last, &Fragment::Command(input.to_vec().into()));
    assert!(
        literals
            .iter()
            .all(|f| matches!(f, Fragment::Literal { .. })),
        "{fragments:?}"
    );
}

fuzz_target!(|input: &[u8]| {
    let command = match Command::parse(input) {
        Ok(command) => command,
        Err(error) => {
            // The tag is given back whenever one was read.
            if let ParseError::UnknownCommand { tag } | ParseError::InvalidArguments { tag, .. } =
                &error
            {
                assert!(input.starts_with(tag.as_str().as_bytes()));
                assert_eq!(input.get(tag.as_str().len()), Some(&b' '));
            }
            return;
        }
    };
    one_command(input);
    let mut wire = Vec::new();
    command.encode(&mut wire);
    assert!(wire.ends_with(b"\r\n"));
    let again = match Command::parse(&wire) {
        Ok(again) => again,
        Err(error) => panic!(
            "the encoding of {command:?} does not parse: {error}: {:?}",
            String::from_utf8_lossy(&wire)
        ),
    };
    assert_eq!(
        command,
        again,
        "through {:?}",
        String::from_utf8_lossy(&wire)
    );
    let mut twice = Vec::new();
    again.encode(&mut twice);
    assert_eq!(wire, twice, "the encoding is stable");
    one_command(&wire);
});
