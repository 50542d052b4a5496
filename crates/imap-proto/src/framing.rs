//! The fragmenter: splits the client's bytes into commands, made of lines
//! and the literals (`{n}` / `{n+}`) they announce, before any parsing.
//!
//! Framing is kept apart from parsing so that a malformed or oversized
//! command still ends where the client thinks it ends: its bytes are read and
//! dropped, literals included, and the next command starts cleanly. Literal
//! bytes are never taken for commands.
//!
//! Each literal is a decision of the caller: [`Fragment::Literal`] stops the
//! fragmenter until [`Fragmenter::collect`], [`Fragmenter::stream`] or
//! [`Fragmenter::refuse`] is called. For a synchronising literal the caller
//! sends the `+` continuation when it accepts (the client waits for it). All
//! limits are decided on line and literal lengths, never on how much input
//! has arrived, so the fragments are the same for any split of the input.

use bytes::{Buf, Bytes, BytesMut};

use crate::limits::Limits;
use crate::types::Tag;

/// What the fragmenter found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fragment {
    /// A complete command: its lines (with their CRLF) and collected
    /// literals, inline, as [`crate::Command::parse`] reads them. A literal
    /// that was streamed is not in it: its announcement is followed directly
    /// by the rest of its line.
    Command(Bytes),
    /// The line so far ends with a literal announcement. Answer with
    /// [`Fragmenter::collect`], [`Fragmenter::stream`] or
    /// [`Fragmenter::refuse`]; until then [`Fragmenter::next`] returns
    /// `None`.
    Literal {
        /// Octets announced.
        length: u64,
        /// `{n}` (true: the client waits for `+`) or `{n+}` (false).
        sync: bool,
    },
    /// The next octets of a streamed literal.
    Chunk(Bytes),
    /// A command that broke a limit or whose literal was refused, read to
    /// its end and dropped.
    Rejected {
        /// The tag, when it could be read.
        tag: Option<Tag>,
        /// Why.
        error: FrameError,
    },
    /// A line went on past [`Limits::unterminated_line`] with no end: the
    /// connection cannot be resynchronised cheaply. Nothing more comes.
    Unterminated,
}

/// Why a command was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A line over [`Limits::line`] (or the line limit in force).
    #[error("line too long")]
    LineTooLong,
    /// More literals than [`Limits::literals`].
    #[error("too many literals")]
    TooManyLiterals,
    /// The command's octets went over [`Limits::command`].
    #[error("command too long")]
    CommandTooLong,
    /// The caller refused a literal ([`Fragmenter::refuse`]).
    #[error("literal refused")]
    LiteralRefused,
}

/// How the caller takes a literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Collect,
    Stream,
    Discard,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Line,
    Decide { length: u64, sync: bool },
    Literal { remaining: u64, mode: Mode },
    Dead,
}

/// Octets at the start of a dropped command searched for its tag.
const TAG_WINDOW: usize = 64;

/// What reading one line gave.
enum Step {
    Emit(Fragment),
    NeedMore,
    Continue,
}

/// Octets kept from the end of a dropped line: enough for
/// `{18446744073709551615+}` and CRLF.
const TAIL: usize = 32;

/// Splits input into commands; see the [module](self) documentation.
///
/// ```
/// use bytes::BytesMut;
/// use ironpost_imap_proto::framing::{Fragment, Fragmenter};
/// use ironpost_imap_proto::Limits;
///
/// let mut f = Fragmenter::new(&Limits::default());
/// let mut input = BytesMut::from(&b"a LOGIN {4}\r\nfred {6+}\r\nsecret\r\nb NOOP\r\n"[..]);
/// assert_eq!(f.next(&mut input), Some(Fragment::Literal { length: 4, sync: true }));
/// assert!(f.collect()); // and send "+ Ready for literal data"
/// assert_eq!(f.next(&mut input), Some(Fragment::Literal { length: 6, sync: false }));
/// assert!(f.collect());
/// let Some(Fragment::Command(c)) = f.next(&mut input) else { panic!() };
/// assert_eq!(&c[..], b"a LOGIN {4}\r\nfred {6+}\r\nsecret\r\n");
/// assert_eq!(f.next(&mut input), Some(Fragment::Command("b NOOP\r\n".into())));
/// assert_eq!(f.next(&mut input), None);
/// ```
#[derive(Debug)]
pub struct Fragmenter {
    line_limit: usize,
    unterminated: usize,
    literal_limit: u64,
    literals_limit: usize,
    command_limit: usize,
    /// The collected octets of the current command.
    command: BytesMut,
    /// How far the input was searched for LF already.
    scanned: usize,
    /// Octets of the current line already dropped (an over-long line).
    dropped: usize,
    /// The last octets dropped of the current line.
    tail: Vec<u8>,
    state: State,
    literals: usize,
    /// The command broke a limit: its tag and why.
    poison: Option<(Option<Tag>, FrameError)>,
    /// A fragment to return before reading on.
    queued: Option<Fragment>,
}

impl Fragmenter {
    /// A fragmenter with these limits (`line`, `unterminated_line`,
    /// `literal`, `literals`, `command`).
    pub fn new(limits: &Limits) -> Self {
        Fragmenter {
            line_limit: limits.line,
            unterminated: limits.unterminated_line,
            literal_limit: limits.literal,
            literals_limit: limits.literals,
            command_limit: limits.command,
            command: BytesMut::new(),
            scanned: 0,
            dropped: 0,
            tail: Vec::new(),
            state: State::Line,
            literals: 0,
            poison: None,
            queued: None,
        }
    }

    /// Sets the longest line accepted from now on (the session raises it
    /// for SASL responses).
    pub fn set_line_limit(&mut self, limit: usize) {
        self.line_limit = limit;
    }

    /// Whether a command is partly read (lines or literals of it have
    /// arrived, or a literal decision is open).
    pub fn in_command(&self) -> bool {
        !self.command.is_empty() || self.poison.is_some() || self.state != State::Line
    }

    /// The octets of the current command collected so far (while a
    /// [`Fragment::Literal`] decision is open: up to and including the
    /// announcement's line end).
    pub fn command_so_far(&self) -> &[u8] {
        &self.command
    }

    /// Drops everything of the current command and any partial line (after
    /// STARTTLS, the plaintext that followed it).
    pub fn reset(&mut self) {
        self.command.clear();
        self.scanned = 0;
        self.dropped = 0;
        self.tail.clear();
        self.state = State::Line;
        self.literals = 0;
        self.poison = None;
        self.queued = None;
    }

    /// Takes the announced literal into the command, if it fits the
    /// `literal` and `command` limits; returns false (and changes nothing)
    /// when it does not.
    pub fn collect(&mut self) -> bool {
        let State::Decide { length, .. } = self.state else {
            return false;
        };
        let fits = length <= self.literal_limit
            && (self.command.len() as u64).saturating_add(length) <= self.command_limit as u64;
        if fits {
            self.command.reserve(length as usize);
            self.state = State::Literal {
                remaining: length,
                mode: Mode::Collect,
            };
        }
        fits
    }

    /// Streams the announced literal out as [`Fragment::Chunk`]s.
    pub fn stream(&mut self) {
        if let State::Decide { length, .. } = self.state {
            self.state = State::Literal {
                remaining: length,
                mode: Mode::Stream,
            };
        }
    }

    /// Refuses the announced literal. A synchronising one is never sent:
    /// the command ends here. A non-synchronising one is read and dropped,
    /// and so is the rest of the command. Either way the next fragment of
    /// this command is [`Fragment::Rejected`].
    pub fn refuse(&mut self) {
        let State::Decide { length, sync } = self.state else {
            return;
        };
        self.poison(None, FrameError::LiteralRefused);
        if sync {
            self.state = State::Line;
            let fragment = self.finish();
            self.queued = Some(fragment);
        } else {
            self.state = State::Literal {
                remaining: length,
                mode: Mode::Discard,
            };
        }
    }

    fn poison(&mut self, input: Option<&[u8]>, error: FrameError) {
        if self.poison.is_none() {
            let start = if self.command.is_empty() {
                input.unwrap_or_default()
            } else {
                &self.command[..]
            };
            // Only the first octets are looked at, all of which have
            // arrived whenever a limit is found broken: the tag must not
            // depend on how the input was split.
            let window = start.len().min(self.line_limit).min(TAG_WINDOW);
            let tag = crate::parse::leading_tag(&start[..window]);
            self.poison = Some((tag, error));
            self.command.clear();
        }
    }

    /// The end of a command: it, or its rejection.
    fn finish(&mut self) -> Fragment {
        self.literals = 0;
        match self.poison.take() {
            Some((tag, error)) => {
                self.command.clear();
                Fragment::Rejected { tag, error }
            }
            None => Fragment::Command(self.command.split().freeze()),
        }
    }

    /// The next fragment found in `input` (consumed from its front), or
    /// `None` when more input is needed or a literal decision is open.
    pub fn next(&mut self, input: &mut BytesMut) -> Option<Fragment> {
        if let Some(fragment) = self.queued.take() {
            return Some(fragment);
        }
        loop {
            match self.state {
                State::Dead | State::Decide { .. } => return None,
                State::Literal { remaining, mode } => {
                    if remaining == 0 {
                        self.state = State::Line;
                        continue;
                    }
                    if input.is_empty() {
                        return None;
                    }
                    let n = remaining.min(input.len() as u64) as usize;
                    self.state = State::Literal {
                        remaining: remaining - n as u64,
                        mode,
                    };
                    match mode {
                        Mode::Collect => self.command.extend_from_slice(&input[..n]),
                        Mode::Stream => return Some(Fragment::Chunk(input.split_to(n).freeze())),
                        Mode::Discard => {}
                    }
                    input.advance(n);
                }
                State::Line => match self.line(input) {
                    Step::Emit(fragment) => return Some(fragment),
                    Step::NeedMore => return None,
                    Step::Continue => {}
                },
            }
        }
    }

    fn line(&mut self, input: &mut BytesMut) -> Step {
        let Some(i) = memchr::memchr(b'\n', &input[self.scanned..]) else {
            let len = self.dropped + input.len();
            if len > self.unterminated {
                self.state = State::Dead;
                input.clear();
                return Step::Emit(Fragment::Unterminated);
            }
            if len > self.line_limit {
                // Drop what has come of this line; keep its tail, which may
                // announce a literal.
                self.poison(Some(input), FrameError::LineTooLong);
                self.keep_tail(input);
                self.dropped = len;
                input.clear();
                self.scanned = 0;
            } else {
                self.scanned = input.len();
            }
            return Step::NeedMore;
        };
        let end = self.scanned + i + 1;
        self.scanned = 0;
        let total = self.dropped + end;
        if total - 1 > self.unterminated {
            self.state = State::Dead;
            input.clear();
            return Step::Emit(Fragment::Unterminated);
        }
        let line = input.split_to(end);
        // A line over the limit is looked at only in its last TAIL octets,
        // whether it came whole or in pieces (of which only the tail is
        // kept), so that the outcome never depends on the split.
        let announcement = if self.dropped > 0 {
            self.keep_tail(&line);
            announcement(&self.tail)
        } else if total > self.line_limit {
            announcement(&line[line.len().saturating_sub(TAIL)..])
        } else {
            announcement(&line)
        };
        self.dropped = 0;
        self.tail.clear();
        if total > self.line_limit {
            self.poison(Some(&line), FrameError::LineTooLong);
        }
        if self.poison.is_none() {
            if self.command.len() + line.len() > self.command_limit {
                self.poison(None, FrameError::CommandTooLong);
            } else if self.command.is_empty() && announcement.is_none() {
                // The usual case: a one-line command, without a copy.
                return Step::Emit(Fragment::Command(line.freeze()));
            } else {
                self.command.extend_from_slice(&line);
            }
        }
        let Some((length, sync)) = announcement else {
            return Step::Emit(self.finish());
        };
        self.literals += 1;
        if self.literals > self.literals_limit {
            self.poison(None, FrameError::TooManyLiterals);
        }
        if self.poison.is_some() {
            if sync {
                return Step::Emit(self.finish());
            }
            self.state = State::Literal {
                remaining: length,
                mode: Mode::Discard,
            };
            return Step::Continue;
        }
        self.state = State::Decide { length, sync };
        Step::Emit(Fragment::Literal { length, sync })
    }

    fn keep_tail(&mut self, bytes: &[u8]) {
        self.tail.extend_from_slice(bytes);
        if self.tail.len() > TAIL {
            self.tail.drain(..self.tail.len() - TAIL);
        }
    }
}

/// The literal a line announces at its end: `{n}` or `{n+}` before CRLF
/// (or LF). Lengths beyond `u64` count as `u64::MAX`, which no limit admits.
fn announcement(line: &[u8]) -> Option<(u64, bool)> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_suffix(b"}")?;
    let (line, sync) = match line.strip_suffix(b"+") {
        Some(l) => (l, false),
        None => (line, true),
    };
    let digits = line.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || line.len() == digits || line[line.len() - digits - 1] != b'{' {
        return None;
    }
    let length = line[line.len() - digits..].iter().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    });
    Some((length, sync))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the fragmenter over `input` split into `pieces`, collecting
    /// literals up to the limit and streaming the rest.
    fn run(limits: &Limits, pieces: &[&[u8]]) -> Vec<Fragment> {
        let mut f = Fragmenter::new(limits);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in pieces {
            buf.extend_from_slice(piece);
            while let Some(fragment) = f.next(&mut buf) {
                if let Fragment::Literal { .. } = fragment
                    && !f.collect()
                {
                    f.refuse();
                }
                out.push(fragment);
            }
        }
        out
    }

    fn three_ways(limits: &Limits, input: &[u8]) -> Vec<Fragment> {
        let whole = run(limits, &[input]);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(limits, &bytes), whole, "byte by byte");
        let mut trailing = input.to_vec();
        trailing.extend_from_slice(b"z NOOP");
        assert_eq!(run(limits, &[&trailing]), whole, "with trailing data");
        whole
    }

    #[test]
    fn announcements() {
        assert_eq!(announcement(b"a {12}\r\n"), Some((12, true)));
        assert_eq!(announcement(b"a {12+}\n"), Some((12, false)));
        assert_eq!(announcement(b"a 12}\r\n"), None);
        assert_eq!(announcement(b"a {}\r\n"), None);
        assert_eq!(
            announcement(b"{99999999999999999999999}\r\n"),
            Some((u64::MAX, true))
        );
    }

    #[test]
    fn long_lines_are_dropped_whole() {
        let limits = Limits {
            line: 16,
            ..Limits::default()
        };
        let input = b"a1 SELECT aaaaaaaaaaaaaaaaaaaa\r\na2 NOOP\r\n";
        let out = three_ways(&limits, input);
        assert_eq!(
            out,
            vec![
                Fragment::Rejected {
                    tag: Some(Tag::new("a1").unwrap()),
                    error: FrameError::LineTooLong
                },
                Fragment::Command("a2 NOOP\r\n".into()),
            ]
        );
    }

    /// Found by the `imap_framing` fuzz target: an announcement more than
    /// `TAIL` octets from the end of an over-long line counted when the
    /// line came whole but not when it came in pieces.
    #[test]
    fn an_over_long_line_is_read_the_same_however_it_is_split() {
        let limits = Limits::default();
        let mut input = b"a1 SELECT ".to_vec();
        input.extend(std::iter::repeat_n(b'x', 8200));
        input
            .extend_from_slice(b" {00000000000000000000000000000011+}\r\nb1 LOGOUT\r\na2 NOOP\r\n");
        let whole = run(&limits, &[&input]);
        let split = run(&limits, &[&input[..8215], &input[8215..]]);
        assert_eq!(whole, split);
        assert_eq!(three_ways(&limits, &input), whole);
    }

    #[test]
    fn refused_literals_keep_framing() {
        let limits = Limits {
            literal: 4,
            ..Limits::default()
        };
        // The non-synchronising literal's octets look like a command: they
        // must be read and dropped, never run.
        let input = b"a1 LOGIN {11+}\r\nb1 LOGOUT\r\n x\r\na2 LOGIN {10}\r\na3 NOOP\r\n";
        let out = three_ways(&limits, input);
        assert_eq!(
            out,
            vec![
                Fragment::Literal {
                    length: 11,
                    sync: false
                },
                Fragment::Rejected {
                    tag: Some(Tag::new("a1").unwrap()),
                    error: FrameError::LiteralRefused
                },
                Fragment::Literal {
                    length: 10,
                    sync: true
                },
                Fragment::Rejected {
                    tag: Some(Tag::new("a2").unwrap()),
                    error: FrameError::LiteralRefused
                },
                Fragment::Command("a3 NOOP\r\n".into()),
            ]
        );
    }

    #[test]
    fn a_long_line_announcing_a_literal_drops_the_literal_too() {
        let limits = Limits {
            line: 16,
            ..Limits::default()
        };
        let input = b"a1 SELECT xxxxxxxxxxxxxxxxxxxxxx {5+}\r\nb NOP\r\na2 NOOP\r\n";
        let out = three_ways(&limits, input);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1], Fragment::Command("a2 NOOP\r\n".into()));
    }

    #[test]
    fn too_many_literals() {
        let limits = Limits {
            literals: 1,
            ..Limits::default()
        };
        let input = b"a LOGIN {1+}\r\nx {1+}\r\ny\r\nb NOOP\r\n";
        let out = three_ways(&limits, input);
        assert_eq!(
            out[1],
            Fragment::Rejected {
                tag: Some(Tag::new("a").unwrap()),
                error: FrameError::TooManyLiterals
            }
        );
        assert_eq!(out[2], Fragment::Command("b NOOP\r\n".into()));
    }

    #[test]
    fn unterminated_lines_end_framing() {
        let limits = Limits {
            line: 8,
            unterminated_line: 32,
            ..Limits::default()
        };
        let mut input = vec![b'x'; 40];
        input.extend_from_slice(b"\r\na NOOP\r\n");
        let out = three_ways(&limits, &input);
        assert_eq!(out, vec![Fragment::Unterminated]);
        // Exactly at the limit still resynchronises.
        let mut input = vec![b'x'; 32];
        input.extend_from_slice(b"\na NOOP\r\n");
        let out = three_ways(&limits, &input);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn streamed_literals_come_out_in_chunks() {
        let mut f = Fragmenter::new(&Limits::default());
        let mut buf = BytesMut::from(&b"a APPEND x {5}\r\n"[..]);
        assert!(matches!(
            f.next(&mut buf),
            Some(Fragment::Literal { length: 5, .. })
        ));
        assert_eq!(f.command_so_far(), b"a APPEND x {5}\r\n");
        f.stream();
        buf.extend_from_slice(b"ab");
        assert_eq!(f.next(&mut buf), Some(Fragment::Chunk("ab".into())));
        buf.extend_from_slice(b"cde\r\n");
        assert_eq!(f.next(&mut buf), Some(Fragment::Chunk("cde".into())));
        assert_eq!(
            f.next(&mut buf),
            Some(Fragment::Command("a APPEND x {5}\r\n\r\n".into()))
        );
    }
}
