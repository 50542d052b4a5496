//! The IMAP fragmenter over arbitrary input: never panics, keeps its
//! contract (commands end with a line end and fit the command limit,
//! `collect` answers by the limits, a refused synchronising literal ends its
//! command at once, nothing comes after `Unterminated`), and gives the same
//! fragments, decisions and final state whether the input comes whole or in
//! the pieces the fuzzer chose.
//!
//! Input: 8 bytes of limits and policy, a count of piece lengths, the piece
//! lengths, then the client's bytes.
#![no_main]

use ironpost_imap_proto::Limits;
use ironpost_imap_proto::framing::{Fragment, Fragmenter, FrameError};
use libfuzzer_sys::fuzz_target;

/// Limits and the fixed policy answering literal decisions.
#[derive(Debug, Clone, Copy)]
struct Setup {
    line: usize,
    auth_line: usize,
    unterminated: usize,
    literal: u64,
    literals: usize,
    command: usize,
    /// Literals up to this size are collected (refused if they do not fit).
    collect_up_to: u64,
    /// Larger ones up to this size are streamed, the rest refused.
    stream_up_to: u64,
}

impl Setup {
    fn new(b: [u8; 8]) -> Self {
        let line = 4 + usize::from(b[0]);
        let collect_up_to = u64::from(b[5]);
        Setup {
            line,
            auth_line: line + 4 * usize::from(b[6]),
            unterminated: 1 + 4 * usize::from(b[1]),
            literal: u64::from(b[2]),
            literals: usize::from(b[3] & 7),
            command: 32 + 32 * usize::from(b[3] >> 3),
            collect_up_to,
            stream_up_to: collect_up_to + 4 * u64::from(b[4]),
        }
        .with_flags(b[7])
    }

    /// Bit 0: no literal is ever collected; bit 1: none streamed.
    fn with_flags(mut self, flags: u8) -> Self {
        if flags & 1 != 0 {
            self.collect_up_to = 0;
        }
        if flags & 2 != 0 {
            self.stream_up_to = self.collect_up_to;
        }
        self
    }

    fn limits(&self) -> Limits {
        let mut limits = Limits::default();
        limits.line = self.line;
        limits.unterminated_line = self.unterminated;
        limits.literal = self.literal;
        limits.literals = self.literals;
        limits.command = self.command;
        limits
    }
}

/// What a run gave: fragments (consecutive chunks merged, since their sizes
/// follow the reads) and decisions, then the state at the end.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    log: Vec<Record>,
    left: Vec<u8>,
    in_command: bool,
    /// `None` after `Unterminated`: a dead fragmenter's buffers mean
    /// nothing.
    so_far: Option<Vec<u8>>,
}

#[derive(Debug, PartialEq, Eq)]
enum Record {
    Fragment(Fragment),
    Chunk(Vec<u8>),
    /// The literal's command so far, in octets, and the answer.
    Decision(usize, &'static str),
}

/// Runs the fragmenter over `input` in pieces of the lengths `cuts` (in a
/// cycle; 0 counts as 1).
fn run(setup: &Setup, input: &[u8], cuts: &[usize]) -> Outcome {
    let mut fragmenter = Fragmenter::new(&setup.limits());
    // A `bytes::BytesMut`, typed by `Fragmenter::next` (bytes is not a
    // dependency of this crate).
    let mut buffer = Default::default();
    let mut log = Vec::new();
    let mut rest = input;
    let mut cuts = cuts.iter().cycle();
    let mut dead = false;
    // A refused synchronising literal: the next fragment ends its command.
    let mut must_reject = false;
    // Octets of the literal being streamed still to come.
    let mut streaming: Option<u64> = None;
    loop {
        while let Some(fragment) = fragmenter.next(&mut buffer) {
            assert!(!dead, "{fragment:?} after Unterminated");
            if must_reject {
                assert!(
                    matches!(
                        fragment,
                        Fragment::Rejected {
                            error: FrameError::LiteralRefused,
                            ..
                        }
                    ),
                    "a refused synchronising literal ends its command: {fragment:?}"
                );
                must_reject = false;
            }
            if let Fragment::Chunk(bytes) = &fragment {
                assert!(!bytes.is_empty());
                let left = streaming.expect("chunks only of a streamed literal");
                assert!(bytes.len() as u64 <= left, "more octets than announced");
                streaming = Some(left - bytes.len() as u64);
                if let Some(Record::Chunk(previous)) = log.last_mut() {
                    previous.extend_from_slice(bytes);
                } else {
                    log.push(Record::Chunk(bytes.to_vec()));
                }
                continue;
            }
            if let Some(left) = streaming.take() {
                assert_eq!(left, 0, "the streamed literal ended early: {fragment:?}");
            }
            match &fragment {
                Fragment::Command(bytes) => {
                    assert!(bytes.ends_with(b"\n"), "{bytes:?}");
                    assert!(bytes.len() <= setup.command, "{} octets", bytes.len());
                    // As the session does around a SASL exchange.
                    let sasl = bytes
                        .windows(12)
                        .any(|w| w.eq_ignore_ascii_case(b"AUTHENTICATE"));
                    fragmenter.set_line_limit(if sasl { setup.auth_line } else { setup.line });
                }
                Fragment::Rejected { .. } => fragmenter.set_line_limit(setup.line),
                Fragment::Unterminated => dead = true,
                Fragment::Literal { .. } | Fragment::Chunk(_) => {}
                other => panic!("unknown fragment {other:?}"),
            }
            let literal = match fragment {
                Fragment::Literal { length, sync } => Some((length, sync)),
                _ => None,
            };
            log.push(Record::Fragment(fragment));
            let Some((length, sync)) = literal else {
                continue;
            };
            // The decision is open: nothing comes until it is answered.
            assert!(fragmenter.in_command());
            assert_eq!(fragmenter.next(&mut buffer), None);
            let so_far = fragmenter.command_so_far().len();
            assert!(fragmenter.command_so_far().ends_with(b"\n"));
            let answer = if length <= setup.collect_up_to {
                let fits = length <= setup.literal
                    && (so_far as u64).saturating_add(length) <= setup.command as u64;
                let collected = fragmenter.collect();
                assert_eq!(collected, fits, "collect answers by the limits");
                if collected {
                    "collect"
                } else {
                    fragmenter.refuse();
                    must_reject = sync;
                    "refuse (too big)"
                }
            } else if length <= setup.stream_up_to {
                fragmenter.stream();
                streaming = Some(length);
                "stream"
            } else {
                fragmenter.refuse();
                must_reject = sync;
                "refuse"
            };
            // A second answer changes nothing.
            assert!(!fragmenter.collect());
            log.push(Record::Decision(so_far, answer));
        }
        // After `Unterminated` the session reads no more.
        if rest.is_empty() || dead {
            break;
        }
        let n = cuts.next().map_or(1, |&n| n.max(1)).min(rest.len());
        Extend::extend(&mut buffer, rest[..n].iter().copied());
        rest = &rest[n..];
    }
    Outcome {
        log,
        left: buffer.to_vec(),
        in_command: fragmenter.in_command(),
        so_far: (!dead).then(|| fragmenter.command_so_far().to_vec()),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((head, data)) = data.split_first_chunk::<8>() else {
        return;
    };
    let setup = Setup::new(*head);
    let Some((&ncuts, data)) = data.split_first() else {
        return;
    };
    let ncuts = usize::from(ncuts % 32).min(data.len());
    let (cuts, input) = data.split_at(ncuts);
    let whole = run(&setup, input, &[usize::MAX]);
    let cuts: Vec<usize> = cuts.iter().map(|&c| usize::from(c)).collect();
    let pieces = run(&setup, input, if cuts.is_empty() { &[1] } else { &cuts });
    assert_eq!(whole, pieces, "{setup:?}");
});
