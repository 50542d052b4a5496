//! Property: a server session gives identical events and identical reply
//! bytes however its input is split, for random command sequences.

mod common;

use common::{config, run_split};
use proptest::prelude::*;

/// One piece of client input: a command line, a DATA block, a BDAT chunk,
/// an AUTH exchange, or garbage.
fn piece() -> impl Strategy<Value = Vec<u8>> {
    let address = prop_oneof![
        Just("a@b.example".to_string()),
        Just("unknown@b.example".to_string()),
        Just("blocked@b.example".to_string()),
        Just("ü@bücher.example".to_string()),
        Just("\"x y\"@b.example".to_string()),
        "[a-z]{1,8}@[a-z]{1,8}\\.example",
        Just("bad address".to_string()),
        Just(String::new()),
    ];
    let mail_params = prop_oneof![
        Just(""),
        Just(" SIZE=100"),
        Just(" SIZE=999999999999"),
        Just(" BODY=8BITMIME"),
        Just(" BODY=BINARYMIME"),
        Just(" SMTPUTF8"),
        Just(" RET=HDRS ENVID=abc"),
        Just(" FOO=bar"),
    ];
    let rcpt_params = prop_oneof![
        Just(""),
        Just(" NOTIFY=SUCCESS,FAILURE"),
        Just(" ORCPT=rfc822;x@y.example"),
        Just(" NOTIFY=MAYBE"),
    ];
    let body = prop::collection::vec(
        prop_oneof![
            Just(&b"line\r\n"[..]),
            Just(&b".\r\n"[..]),
            Just(&b"..\r\n"[..]),
            Just(&b".dot\r\n"[..]),
            Just(&b"\n.\n"[..]),
            Just(&b"\r.\r"[..]),
            Just(&b"\r\n.\n"[..]),
            Just(&b"bare\nlf"[..]),
            Just(&b"bare\rcr"[..]),
            Just(&b"MAIL FROM:<x@y.z>\r\n"[..]),
            Just(&b"\r\n"[..]),
            Just(&b"\xff\xfe"[..]),
            Just(&b"a longer line of ordinary message text\r\n"[..]),
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat());
    prop_oneof![
        Just(b"EHLO client.example\r\n".to_vec()),
        Just(b"HELO client.example\r\n".to_vec()),
        Just(b"EHLO reject.example\r\n".to_vec()),
        (address.clone(), mail_params)
            .prop_map(|(a, p)| format!("MAIL FROM:<{a}>{p}\r\n").into_bytes()),
        (address, rcpt_params).prop_map(|(a, p)| format!("RCPT TO:<{a}>{p}\r\n").into_bytes()),
        Just(b"RCPT TO:<Postmaster>\r\n".to_vec()),
        body.prop_map(|b| {
            let mut v = b"DATA\r\n".to_vec();
            v.extend_from_slice(&b);
            v.extend_from_slice(b"\r\n.\r\n");
            v
        }),
        (prop::collection::vec(any::<u8>(), 0..40), any::<bool>()).prop_map(|(b, last)| {
            let mut v =
                format!("BDAT {}{}\r\n", b.len(), if last { " LAST" } else { "" }).into_bytes();
            v.extend_from_slice(&b);
            v
        }),
        Just(b"BDAT 0 LAST\r\n".to_vec()),
        Just(b"AUTH PLAIN AHVzZXIAc2VjcmV0\r\n".to_vec()),
        Just(b"AUTH PLAIN AHVzZXIAd3Jvbmc=\r\n".to_vec()),
        Just(b"AUTH LOGIN\r\ndXNlcg==\r\nc2VjcmV0\r\n".to_vec()),
        Just(b"AUTH PLAIN\r\n*\r\n".to_vec()),
        Just(b"RSET\r\n".to_vec()),
        Just(b"NOOP\r\n".to_vec()),
        Just(b"VRFY someone\r\n".to_vec()),
        Just(b"HELP\r\n".to_vec()),
        Just(b"TURN\r\n".to_vec()),
        Just(b"QUIT\r\n".to_vec()),
        "[ -~]{0,30}".prop_map(|s| format!("{s}\r\n").into_bytes()),
        prop::collection::vec(any::<u8>(), 0..30),
        (1usize..3).prop_map(|n| vec![b'z'; n * 3000]),
    ]
}

/// A mostly valid transaction: MAIL, one to three RCPT, then DATA or BDAT.
fn transaction() -> impl Strategy<Value = Vec<u8>> {
    let rcpt = prop_oneof![
        Just(&b"RCPT TO:<b@b.example>\r\n"[..]),
        Just(&b"RCPT TO:<unknown@b.example>\r\n"[..]),
        Just(&b"RCPT TO:<c@c.example> NOTIFY=FAILURE\r\n"[..]),
    ];
    (
        prop::collection::vec(rcpt, 1..4),
        prop::collection::vec(body_part(), 0..30),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..60), 0..4),
        any::<bool>(),
    )
        .prop_map(|(rcpts, body, chunks, use_bdat)| {
            let mut v = b"MAIL FROM:<a@b.example>\r\n".to_vec();
            v.extend(rcpts.concat());
            if use_bdat {
                for chunk in &chunks {
                    v.extend(format!("BDAT {}\r\n", chunk.len()).into_bytes());
                    v.extend(chunk);
                }
                v.extend(b"BDAT 0 LAST\r\n");
            } else {
                v.extend(b"DATA\r\n");
                v.extend(body.concat());
                v.extend(b"\r\n.\r\n");
            }
            v
        })
}

fn body_part() -> impl Strategy<Value = &'static [u8]> {
    prop_oneof![
        Just(&b"line\r\n"[..]),
        Just(&b"..\r\n"[..]),
        Just(&b".dot\r\n"[..]),
        Just(&b"\n.\n"[..]),
        Just(&b"\r.\r"[..]),
        Just(&b"bare\nlf"[..]),
        Just(&b"a longer line of ordinary message text\r\n"[..]),
    ]
}

fn session() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop_oneof![3 => transaction(), 2 => piece()], 1..12).prop_map(|parts| {
        let mut v = b"EHLO client.example\r\n".to_vec();
        v.extend(parts.concat());
        v
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn events_and_replies_do_not_depend_on_the_split(
        input in session(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..40),
    ) {
        let mut c = config();
        c.limits.command_line = 200;
        c.limits.auth_line = 400;
        c.limits.unterminated_line = 4000;
        c.limits.message_size = 120;
        c.limits.bad_commands = 15;
        c.limits.recipients = 5;
        let splits: Vec<usize> = cuts.iter().map(|i| i.index(input.len().max(1))).collect();
        let whole = run_split(&c, &input, &[]);
        let split = run_split(&c, &input, &splits);
        prop_assert_eq!(&whole.0, &split.0);
        prop_assert_eq!(&whole.1, &split.1);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// parse → encode → parse gives the same command.
    #[test]
    fn commands_survive_a_round_trip(line in piece()) {
        let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Ok(command) = ironpost_smtp_proto::Command::parse(line) {
            let mut wire = Vec::new();
            command.encode(&mut wire);
            let again = ironpost_smtp_proto::Command::parse(&wire[..wire.len() - 2]);
            prop_assert_eq!(Ok(command), again);
        }
    }

    /// The client session reads the same replies however they are split.
    #[test]
    fn client_events_do_not_depend_on_the_split(
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..30),
    ) {
        let transcript: &[u8] = b"220-mx.example.org\r\n220 ESMTP\r\n250-mx\r\n250-PIPELINING\r\n\
            250-SIZE 0\r\n250 8BITMIME\r\n250 2.1.0 ok\r\n550 5.1.1 no\r\n250 2.1.5 ok\r\n\
            354 go\r\n250 2.0.0 queued\r\n221 bye\r\n";
        let run = |splits: &[usize]| {
            use ironpost_smtp_proto::{Address, ClientConfig, ClientEvent, ClientSession, Envelope, ForwardPath, ReversePath};
            let now = std::time::Instant::now();
            let mut client = ClientSession::new(ClientConfig::new("c.example"), now);
            let mut events = Vec::new();
            let mut wire = Vec::new();
            let mut points: Vec<usize> = splits.to_vec();
            points.sort_unstable();
            points.push(transcript.len());
            let mut start = 0;
            for end in points {
                client.handle_input(now, &transcript[start..end]);
                start = end;
                while let Some(event) = client.poll_event() {
                    match &event {
                        ClientEvent::Ready => {
                            let to = ["b@example.org", "c@example.org"]
                                .map(|a| ForwardPath::Mailbox(Address::parse(a).unwrap()));
                            let from = ReversePath::Mailbox(Address::parse("a@example.org").unwrap());
                            client.send_mail(now, Envelope::new(from, to)).unwrap();
                        }
                        ClientEvent::SendBody => {
                            client.send_body(now, b"hello\r\n").unwrap();
                            client.finish_body(now).unwrap();
                        }
                        ClientEvent::Done(_) => client.quit(now).unwrap(),
                        _ => {}
                    }
                    events.push(event);
                }
                client.poll_transmit(&mut wire);
            }
            (events, wire)
        };
        let splits: Vec<usize> = cuts.iter().map(|i| i.index(transcript.len())).collect();
        let whole = run(&[]);
        prop_assert!(whole.0.iter().any(|e| matches!(e, ironpost_smtp_proto::ClientEvent::Done(_))));
        prop_assert_eq!(whole, run(&splits));
    }
}
