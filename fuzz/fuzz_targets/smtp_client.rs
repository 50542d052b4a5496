//! The SMTP client session on arbitrary server replies: never panics, and
//! every command it writes is one our parser accepts.
#![no_main]

use std::time::{Duration, Instant};

use ironpost_smtp_proto::{
    Address, ClientConfig, ClientEvent, ClientSession, Credentials, Envelope, ForwardPath,
    ReversePath, Secret,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, data)) = data.split_first() else { return };
    let mut config = ClientConfig::new("client.example");
    config.prefer_chunking = flags & 1 != 0;
    config.auth_requires_tls = flags & 2 != 0;
    if flags & 4 != 0 {
        config.credentials = Some(Credentials {
            username: "user".into(),
            password: Secret::new("secret"),
        });
    }
    let mut now = Instant::now();
    let mut client = ClientSession::new(config, now);
    let mut sent = 0;
    let mut out = Vec::new();
    for piece in data.chunks(usize::from(flags >> 3).max(1)) {
        for _ in 0..1000 {
            let Some(event) = client.poll_event() else { break };
            match event {
                ClientEvent::StartTls => client.tls_established(now).unwrap(),
                ClientEvent::Ready if sent < 2 => {
                    sent += 1;
                    let from = ReversePath::Mailbox(Address::parse("a@b.example").unwrap());
                    let to = ["c@d.example", "e@f.example"]
                        .map(|a| ForwardPath::Mailbox(Address::parse(a).unwrap()));
                    let mut envelope = Envelope::new(from, to);
                    envelope.size = Some(12);
                    client.send_mail(now, envelope).unwrap();
                }
                ClientEvent::Ready => client.quit(now).unwrap(),
                ClientEvent::SendBody => {
                    client.send_body(now, b"Hello\r\n.dot").unwrap();
                    client.finish_body(now).unwrap();
                }
                ClientEvent::Done(outcome) => {
                    for i in 0..outcome.recipients.len() {
                        let _ = outcome.result(i);
                    }
                    if sent >= 2 {
                        client.quit(now).unwrap();
                    } else {
                        sent += 1;
                        let to = [ForwardPath::Postmaster];
                        client.send_mail(now, Envelope::new(ReversePath::Null, to)).unwrap();
                    }
                }
                _ => {}
            }
        }
        client.poll_transmit(&mut out);
        now += Duration::from_secs(1);
        client.handle_input(now, piece);
        if let Some(deadline) = client.poll_timeout() {
            if flags & 128 != 0 {
                client.handle_timeout(deadline);
            }
        }
    }
    client.poll_transmit(&mut out);
    // Every command line the client wrote parses (bodies aside).
    for line in out.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let upper: Vec<u8> = line.iter().take(4).map(u8::to_ascii_uppercase).collect();
        if [&b"EHLO"[..], b"HELO", b"MAIL", b"RCPT", b"QUIT", b"RSET"].contains(&&upper[..]) {
            assert!(ironpost_smtp_proto::Command::parse(line).is_ok(), "{line:?}");
        }
    }
});
