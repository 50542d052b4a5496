//! Command parser: never panics; parse → encode → parse gives the same command.
#![no_main]

use ironpost_smtp_proto::Command;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &[u8]| {
    if let Ok(command) = Command::parse(line) {
        let mut wire = Vec::new();
        command.encode(&mut wire);
        assert!(wire.ends_with(b"\r\n"));
        assert!(!wire[..wire.len() - 2].contains(&b'\n'), "{wire:?}");
        let again = Command::parse(&wire[..wire.len() - 2]).expect("the encoding parses");
        assert_eq!(command, again);
    } else if let Err(error) = Command::parse(line) {
        let reply = error.reply();
        assert!(reply.code() >= 500);
    }
});
