//! Property: a server session gives identical events and identical bytes
//! however its input is split, for random command sequences (literals,
//! APPEND, AUTHENTICATE, IDLE, over-long lines and garbage included).

mod common;

use common::{config, run_with};
use proptest::prelude::*;

fn piece() -> impl Strategy<Value = Vec<u8>> {
    let mailbox = prop_oneof![
        Just("INBOX".to_string()),
        Just("nope".to_string()),
        Just("full".to_string()),
        Just("\"Sent Items\"".to_string()),
        Just("{5}\r\nDraft".to_string()),
        Just("{5+}\r\nDraft".to_string()),
    ];
    let message = prop::collection::vec(any::<u8>(), 0..60);
    prop_oneof![
        Just(b"a1 LOGIN fred secret\r\n".to_vec()),
        Just(b"a1 LOGIN {4}\r\nfred {6+}\r\nsecret\r\n".to_vec()),
        Just(b"a1 LOGIN fred wrong\r\n".to_vec()),
        Just(b"a2 AUTHENTICATE PLAIN\r\nAGZyZWQAc2VjcmV0\r\n".to_vec()),
        Just(b"a2 AUTHENTICATE LOGIN ZnJlZA==\r\nc2VjcmV0\r\n".to_vec()),
        Just(b"a2 AUTHENTICATE PLAIN\r\n*\r\n".to_vec()),
        mailbox
            .clone()
            .prop_map(|m| format!("a3 SELECT {m}\r\n").into_bytes()),
        mailbox
            .clone()
            .prop_map(|m| format!("a3 EXAMINE {m}\r\n").into_bytes()),
        Just(b"a4 FETCH 1:* (FLAGS BODY.PEEK[HEADER] UID)\r\n".to_vec()),
        Just(b"a4 UID FETCH 12 FULL\r\n".to_vec()),
        Just(b"a5 STORE 12 +FLAGS.SILENT (\\Deleted)\r\n".to_vec()),
        Just(b"a6 SEARCH OR FROM {3}\r\nbob NOT SEEN\r\n".to_vec()),
        mailbox
            .clone()
            .prop_map(|m| format!("a7 UID COPY 1:3 {m}\r\n").into_bytes()),
        Just(b"a8 IDLE\r\nDONE\r\n".to_vec()),
        Just(b"a8 IDLE\r\nNOPE\r\n".to_vec()),
        Just(b"a9 CLOSE\r\n".to_vec()),
        Just(b"b1 LIST \"\" *\r\n".to_vec()),
        Just(b"b2 NOOP\r\n".to_vec()),
        Just(b"b3 CAPABILITY\r\n".to_vec()),
        Just(b"b4 ID NIL\r\n".to_vec()),
        Just(b"b5 ENABLE CONDSTORE\r\n".to_vec()),
        (mailbox, message.clone(), any::<bool>()).prop_map(|(m, msg, sync)| {
            let mut v = format!(
                "c1 APPEND {m} (\\Seen) {{{}{}}}\r\n",
                msg.len(),
                if sync { "" } else { "+" }
            )
            .into_bytes();
            v.extend_from_slice(&msg);
            v.extend_from_slice(b"\r\n");
            v
        }),
        message.prop_map(|msg| {
            let mut v = format!("c2 LOGIN x {{{}+}}\r\n", msg.len()).into_bytes();
            v.extend_from_slice(&msg);
            v.extend_from_slice(b"\r\n");
            v
        }),
        Just(b"c3 LOGIN x {100000}\r\n".to_vec()),
        Just(b"c4 APPEND INBOX {99999999999}\r\n".to_vec()),
        (1usize..3).prop_map(|n| {
            let mut v = vec![b'x'; n * 5000];
            v.extend_from_slice(b" {3+}\r\nabc\r\n");
            v
        }),
        "[ -~]{0,30}".prop_map(|s| format!("{s}\r\n").into_bytes()),
        prop::collection::vec(any::<u8>(), 0..30),
    ]
}

fn script() -> impl Strategy<Value = (Vec<u8>, Vec<usize>)> {
    prop::collection::vec(piece(), 1..12)
        .prop_map(|pieces| pieces.concat())
        .prop_flat_map(|input| {
            let len = input.len();
            (Just(input), prop::collection::vec(0..=len, 0..12))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn output_does_not_depend_on_the_split((input, mut cuts) in script()) {
        let whole = run_with(config(), &[&input]);
        cuts.sort_unstable();
        cuts.dedup();
        let mut pieces: Vec<&[u8]> = Vec::new();
        let mut start = 0;
        for cut in cuts {
            pieces.push(&input[start..cut]);
            start = cut;
        }
        pieces.push(&input[start..]);
        // Empty pieces mean "TLS established" to the driver; drop them.
        pieces.retain(|p| !p.is_empty());
        let split = run_with(config(), &pieces);
        prop_assert_eq!(&split.0, &whole.0);
        prop_assert_eq!(String::from_utf8_lossy(&split.1), String::from_utf8_lossy(&whole.1));
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        let by_byte = run_with(config(), &bytes);
        prop_assert_eq!(&by_byte.0, &whole.0);
        prop_assert_eq!(by_byte.1, whole.1);
    }
}
