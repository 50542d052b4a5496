//! Reply parser: never panics; a parsed reply encodes to bytes that parse
//! back to the same reply; the result does not depend on trailing data.
#![no_main]

use ironpost_smtp_proto::{Reply, ReplyLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = ReplyLimits::default();
    if let Ok(Some((reply, used))) = Reply::parse(data, &limits) {
        assert!(used <= data.len());
        assert_eq!(
            Reply::parse(&data[..used], &limits),
            Ok(Some((reply.clone(), used)))
        );
        let mut wire = Vec::new();
        reply.encode(&mut wire);
        let (again, n) = Reply::parse(&wire, &limits)
            .expect("our encoding parses")
            .expect("our encoding is complete");
        assert_eq!(n, wire.len());
        assert_eq!(reply, again);
    }
});
