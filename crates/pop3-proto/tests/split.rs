//! Property: a server session gives identical events and identical response
//! bytes however its input is split, for random command sequences; and the
//! client session reads the same events however the server's bytes come.

mod common;

use common::{config, run_split};
use proptest::prelude::*;

/// One piece of client input: a command line, a login, an AUTH exchange,
/// or garbage. STLS is left out: what it discards depends on what had
/// arrived, by design.
fn piece() -> impl Strategy<Value = Vec<u8>> {
    let number = prop_oneof![
        Just("1".to_string()),
        Just("2".to_string()),
        Just("3".to_string()),
        Just("0".to_string()),
        Just("99999999999".to_string()),
        "[0-9]{1,3}",
        Just("x".to_string()),
    ];
    let fixed = prop_oneof![
        Just(&b"USER a\r\nPASS secret\r\n"[..]),
        Just(&b"USER locked\r\nPASS no\r\n"[..]),
        Just(&b"USER a\r\nPASS wrong\r\n"[..]),
        Just(&b"PASS secret\r\n"[..]),
        Just(&b"AUTH PLAIN AGEAc2VjcmV0\r\n"[..]),
        Just(&b"AUTH PLAIN\r\nAGEAc2VjcmV0\r\n"[..]),
        Just(&b"AUTH PLAIN\r\n*\r\n"[..]),
        Just(&b"AUTH PLAIN =\r\n"[..]),
        Just(&b"AUTH LOGIN\r\n"[..]),
        Just(&b"CAPA\r\n"[..]),
        Just(&b"STAT\r\n"[..]),
        Just(&b"LIST\r\n"[..]),
        Just(&b"UIDL\r\n"[..]),
        Just(&b"RSET\r\n"[..]),
        Just(&b"NOOP\r\n"[..]),
        Just(&b"QUIT\r\n"[..]),
        Just(&b"\r\n"[..]),
        Just(&b"\n"[..]),
    ];
    prop_oneof![
        4 => fixed.prop_map(<[u8]>::to_vec),
        1 => (prop_oneof![Just("LIST"), Just("UIDL"), Just("RETR"), Just("DELE")], number.clone())
            .prop_map(|(c, n)| format!("{c} {n}\r\n").into_bytes()),
        1 => (number.clone(), number).prop_map(|(m, n)| format!("TOP {m} {n}\r\n").into_bytes()),
        1 => "[ -~]{0,30}".prop_map(|s| format!("{s}\r\n").into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..30),
        1 => (1usize..4).prop_map(|n| vec![b'z'; n * 50]),
        1 => (1usize..3).prop_map(|n| {
            let mut v = b"AUTH PLAIN ".to_vec();
            v.extend(vec![b'A'; n * 70]);
            v.extend(b"\r\n");
            v
        }),
    ]
}

fn messages() -> Vec<Vec<u8>> {
    vec![
        b"Subject: one\r\n\r\nbody\r\n.dot\r\n".to_vec(),
        b"Subject: two\n\n.\n..\nno end".to_vec(),
        b"UNREADABLE".to_vec(),
        b"Header: only".to_vec(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn events_and_responses_do_not_depend_on_the_split(
        parts in prop::collection::vec(piece(), 1..25),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..40),
        small_output in any::<bool>(),
    ) {
        let input = parts.concat();
        let mut c = config();
        c.limits.command_line = 64;
        c.limits.auth_line = 128;
        c.limits.unterminated_line = 300;
        c.limits.bad_commands = 12;
        c.limits.login_failures = 4;
        if small_output {
            c.limits.output_buffer = 40;
        }
        let splits: Vec<usize> = cuts.iter().map(|i| i.index(input.len().max(1))).collect();
        let whole = run_split(&c, &messages(), &input, &[]);
        let split = run_split(&c, &messages(), &input, &splits);
        prop_assert_eq!(&whole.0, &split.0);
        prop_assert_eq!(&whole.1, &split.1);
    }

    /// parse → encode → parse gives the same command.
    #[test]
    fn commands_survive_a_round_trip(line in piece()) {
        let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Ok(command) = ironpost_pop3_proto::Command::parse(line) {
            let mut wire = Vec::new();
            command.encode(&mut wire);
            let again = ironpost_pop3_proto::Command::parse(&wire[..wire.len() - 2]);
            prop_assert_eq!(Ok(command), again);
        }
    }

    /// The client session reads the same events however the server's
    /// bytes are split.
    #[test]
    fn client_events_do_not_depend_on_the_split(
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..40),
        pipelining in any::<bool>(),
    ) {
        use std::time::Instant;
        use ironpost_pop3_proto::{ClientConfig, ClientEvent, ClientSession, Credentials};
        let capa = if pipelining { "PIPELINING\r\n" } else { "" };
        let transcript = format!(
            "+OK ready\r\n+OK\r\nUSER\r\nTOP\r\n{capa}.\r\n+OK\r\n+OK in\r\n+OK 2 30\r\n\
             +OK 2 messages\r\n1 10\r\n2 20\r\n.\r\n+OK\r\n1 a\r\n2 b\r\n.\r\n\
             +OK 10 octets\r\nA: 1\r\n\r\n..x\r\n.\r\n-ERR [SYS/TEMP] no\r\n\
             +OK top\r\nB: 2\r\n\r\n.\r\n+OK gone\r\n+OK bye\r\n"
        );
        let transcript = transcript.as_bytes();
        let run = |splits: &[usize]| {
            let now = Instant::now();
            let mut config = ClientConfig::new(Credentials::new("u", "p"));
            config.login_requires_tls = false;
            let mut client = ClientSession::new(config, now);
            let mut events = Vec::new();
            let mut wire = Vec::new();
            let mut points: Vec<usize> = splits.to_vec();
            points.sort_unstable();
            points.push(transcript.len());
            let mut start = 0;
            let mut chunks = Vec::new();
            for end in points {
                client.handle_input(now, &transcript[start..end]);
                start = end;
                while let Some(event) = client.poll_event() {
                    match event {
                        ClientEvent::Ready => {
                            client.stat(now).unwrap();
                            client.list(now, None).unwrap();
                            client.uidl(now, None).unwrap();
                            client.retr(now, 1).unwrap();
                            client.retr(now, 2).unwrap();
                            client.top(now, 2, 0).unwrap();
                            client.dele(now, 1).unwrap();
                            client.quit(now).unwrap();
                            events.push(format!("{event:?}"));
                        }
                        // Chunks depend on the split; their concatenation does not.
                        ClientEvent::MessageChunk(bytes) => chunks.extend_from_slice(&bytes),
                        other => {
                            if !chunks.is_empty() {
                                events.push(std::mem::take(&mut chunks).escape_ascii().to_string());
                            }
                            events.push(format!("{other:?}"));
                        }
                    }
                }
                client.poll_transmit(&mut wire);
            }
            (events, wire)
        };
        let splits: Vec<usize> = cuts.iter().map(|i| i.index(transcript.len())).collect();
        let whole = run(&[]);
        prop_assert!(whole.0.last().is_some_and(|e| e == "Closed"), "{:?}", whole.0);
        prop_assert_eq!(whole, run(&splits));
    }
}
