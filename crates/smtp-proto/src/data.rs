//! The body of DATA: dot-unstuffing and end detection on the server side,
//! dot-stuffing on the client side (RFC 5321 section 4.5.2).
//!
//! Only `<CRLF>.<CRLF>` ends DATA. A bare LF or a bare CR is never a line
//! end for the purposes of dot handling: `<LF>.<LF>`, `<CR>.<CR>`,
//! `<LF>.<CRLF>` and friends are content, which closes the SMTP smuggling
//! attack. What happens to the bare line ending itself is the host's choice
//! ([`BareLineEndings`]).

use bytes::{Buf, Bytes, BytesMut};

/// What the server does with a bare CR or a bare LF inside DATA (SPEC S-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BareLineEndings {
    /// Replace each bare CR and bare LF with CRLF in the stored message.
    #[default]
    Normalize,
    /// Refuse the message with `554 5.6.0` once its end has come.
    Reject,
}

/// Reads the body of one DATA command from the session's input buffer.
#[derive(Debug)]
pub(crate) struct DataReader {
    line_start: bool,
    policy: BareLineEndings,
    max: u64,
    /// Octets of the message so far, after unstuffing and normalising.
    pub(crate) size: u64,
    /// The message went over `max`: nothing more is emitted.
    pub(crate) too_big: bool,
    /// A bare line ending was seen under [`BareLineEndings::Reject`].
    pub(crate) bare: bool,
}

const CRLF: Bytes = Bytes::from_static(b"\r\n");

impl DataReader {
    pub(crate) fn new(policy: BareLineEndings, max: u64) -> Self {
        DataReader {
            line_start: true,
            policy,
            max,
            size: 0,
            too_big: false,
            bare: false,
        }
    }

    /// Whether the message is refused already (too big or a bare line end).
    pub(crate) fn failed(&self) -> bool {
        self.too_big || self.bare
    }

    fn emit(&mut self, chunk: Bytes, out: &mut Vec<Bytes>) {
        if chunk.is_empty() {
            return;
        }
        let before = self.size;
        self.size += chunk.len() as u64;
        if self.failed() {
            return;
        }
        if self.size > self.max {
            // Emit exactly up to the limit, so that what the host sees does
            // not depend on how the input was split.
            self.too_big = true;
            let fits = (self.max - before.min(self.max)) as usize;
            if fits > 0 {
                out.push(chunk.slice(..fits));
            }
            return;
        }
        out.push(chunk);
    }

    /// Consumes body bytes from `buf`, pushing unstuffed chunks to `out`.
    /// Returns `true` once `<CRLF>.<CRLF>` has been consumed; bytes after it
    /// stay in `buf`. Bytes that cannot be judged yet (a `.` at a line start,
    /// a trailing CR) stay in `buf` until more input comes.
    ///
    /// The scan is two passes that each run at memory speed: a block-wise
    /// check for the first bare CR or LF, then a substring search for
    /// `<CRLF>.` (a line that starts with a dot) up to that point. Content
    /// in between is emitted as one chunk, without copying.
    pub(crate) fn read(&mut self, buf: &mut BytesMut, out: &mut Vec<Bytes>) -> bool {
        // `buf[..i]` is content that needs no change and is not emitted yet;
        // `stop` caches the first bare CR/LF (or undecided CR) at or after `i`.
        let mut i = 0;
        let mut stop: Option<usize> = None;
        loop {
            if self.line_start {
                if i >= buf.len() {
                    break;
                }
                if buf[i] == b'.' {
                    match (buf.get(i + 1), buf.get(i + 2)) {
                        (None, _) | (Some(b'\r'), None) => break,
                        (Some(b'\r'), Some(b'\n')) => {
                            let run = buf.split_to(i).freeze();
                            self.emit(run, out);
                            buf.advance(3);
                            return true;
                        }
                        _ => {
                            // Dot-unstuffing: the first dot of the line goes.
                            let run = buf.split_to(i).freeze();
                            self.emit(run, out);
                            buf.advance(1);
                            // The first bare byte lies past the dot: shift it,
                            // so the buffer is never scanned twice.
                            stop = stop.map(|s| s - i - 1);
                            i = 0;
                        }
                    }
                }
                self.line_start = false;
            }
            let end = match stop {
                Some(end) if end >= i => end,
                _ => {
                    let end = i + first_bare(&buf[i..]);
                    stop = Some(end);
                    end
                }
            };
            if let Some(p) = DOT_LINE.find(&buf[i..end]) {
                i += p + 2;
                self.line_start = true;
                continue;
            }
            i = end;
            if end == buf.len() {
                // Every LF before `end` ends a CRLF.
                self.line_start = end > 0 && buf[end - 1] == b'\n';
                break;
            }
            if end + 1 == buf.len() && buf[end] == b'\r' {
                // A CR whose next byte has not come yet.
                break;
            }
            // A bare CR or a bare LF at `end`.
            let run = buf.split_to(end).freeze();
            self.emit(run, out);
            buf.advance(1);
            i = 0;
            stop = None;
            match self.policy {
                BareLineEndings::Normalize => self.emit(CRLF, out),
                BareLineEndings::Reject => self.bare = true,
            }
        }
        let run = buf.split_to(i).freeze();
        self.emit(run, out);
        false
    }
}

/// Finds `<CRLF>.`: the start of a line that begins with a dot.
static DOT_LINE: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\r\n."));

/// The index of the first bare LF (one not after a CR) or bare CR (one not
/// before an LF) in `s`, where `s` starts right after a complete line end or
/// a handled byte; a CR in the last position counts as found (its next byte
/// decides). `s.len()` when there is none.
fn first_bare(s: &[u8]) -> usize {
    const BLOCK: usize = 256;
    match s.first() {
        None => return 0,
        Some(b'\n') => return 0,
        Some(_) => {}
    }
    let mut k = 1;
    // A byte at k is wrong when "is LF" differs from "the byte before is CR".
    // Whole blocks are checked without branches, which the compiler turns
    // into vector instructions.
    while k + BLOCK <= s.len() {
        let current: &[u8; BLOCK] = s[k..k + BLOCK].try_into().expect("a whole block");
        let previous: &[u8; BLOCK] = s[k - 1..k - 1 + BLOCK].try_into().expect("a whole block");
        let mut wrong = 0u8;
        for j in 0..BLOCK {
            wrong |= u8::from(current[j] == b'\n') ^ u8::from(previous[j] == b'\r');
        }
        if wrong != 0 {
            break;
        }
        k += BLOCK;
    }
    while k < s.len() {
        let lf = s[k] == b'\n';
        let cr_before = s[k - 1] == b'\r';
        if lf && !cr_before {
            return k;
        }
        if cr_before && !lf {
            return k - 1;
        }
        k += 1;
    }
    if s[s.len() - 1] == b'\r' {
        s.len() - 1
    } else {
        s.len()
    }
}

/// Dot-stuffs a body for DATA as it streams, normalising bare CR and bare LF
/// to CRLF so that no receiver can read a line end we did not mean.
#[derive(Debug, Clone)]
pub(crate) struct DotStuffer {
    line_start: bool,
    pending_cr: bool,
}

impl DotStuffer {
    pub(crate) fn new() -> Self {
        DotStuffer {
            line_start: true,
            pending_cr: false,
        }
    }

    /// Appends the stuffed form of `chunk` to `out`.
    pub(crate) fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let mut i = 0;
        while i < chunk.len() {
            if self.pending_cr {
                self.pending_cr = false;
                out.extend_from_slice(b"\r\n");
                self.line_start = true;
                if chunk[i] == b'\n' {
                    i += 1;
                    continue;
                }
            }
            if self.line_start {
                if chunk[i] == b'.' {
                    out.push(b'.');
                }
                self.line_start = false;
            }
            match memchr::memchr2(b'\r', b'\n', &chunk[i..]) {
                None => {
                    out.extend_from_slice(&chunk[i..]);
                    break;
                }
                Some(offset) => {
                    let j = i + offset;
                    out.extend_from_slice(&chunk[i..j]);
                    if chunk[j] == b'\n' {
                        out.extend_from_slice(b"\r\n");
                        self.line_start = true;
                    } else {
                        self.pending_cr = true;
                    }
                    i = j + 1;
                }
            }
        }
    }

    /// Appends the end of the body: a CRLF if the body did not end with
    /// one, then `.<CRLF>`.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) {
        if self.pending_cr {
            self.pending_cr = false;
            out.extend_from_slice(b"\r\n");
            self.line_start = true;
        }
        if !self.line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        self.line_start = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the reader over `input` split at every `step` bytes; returns the
    /// message, whether the end was found, and the bytes left after it.
    fn read(input: &[u8], step: usize, policy: BareLineEndings) -> (Vec<u8>, bool, Vec<u8>, bool) {
        let mut reader = DataReader::new(policy, u64::MAX);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut ended = false;
        for piece in input.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            if !ended {
                ended = reader.read(&mut buf, &mut out);
            }
        }
        let message: Vec<u8> = out.iter().flat_map(|b| b.iter().copied()).collect();
        (message, ended, buf.to_vec(), reader.bare)
    }

    fn check(input: &[u8], expected: &[u8], rest: &[u8]) {
        for step in [input.len(), 1, 2, 3, 7] {
            let (message, ended, left, _) = read(input, step, BareLineEndings::Normalize);
            assert!(ended, "no end found in {input:?} (step {step})");
            assert_eq!(message, expected, "{input:?} step {step}");
            assert_eq!(left, rest, "{input:?} step {step}");
        }
    }

    #[test]
    fn known_answers() {
        check(b".\r\n", b"", b"");
        check(
            b"Subject: x\r\n\r\nbody\r\n.\r\n",
            b"Subject: x\r\n\r\nbody\r\n",
            b"",
        );
        check(b"a\r\n..b\r\n.\r\nQUIT\r\n", b"a\r\n.b\r\n", b"QUIT\r\n");
        check(b"..\r\n.\r\n", b".\r\n", b"");
        check(b".x\r\n.\r\n", b"x\r\n", b"");
        check(b"a.\r\n.\r\n", b"a.\r\n", b"");
        check(b"a\r\n. \r\n.\r\n", b"a\r\n \r\n", b"");
    }

    #[test]
    fn bare_line_endings_are_normalised_and_never_end_data() {
        // Every smuggling variant: none of them ends the message.
        for fake_end in [
            &b"\n.\n"[..],
            b"\r.\r",
            b"\n.\r\n",
            b"\r\n.\n",
            b"\r.\n",
            b"\n.\r",
            b"\r.\r\n",
            b"\r\n.\r",
        ] {
            let mut input = b"hello".to_vec();
            input.extend_from_slice(fake_end);
            input.extend_from_slice(b"MAIL FROM:<evil@example.com>\r\n");
            for step in [input.len(), 1, 2] {
                let (_, ended, left, _) = read(&input, step, BareLineEndings::Normalize);
                assert!(!ended, "{fake_end:?} ended DATA");
                // Nothing is left over to be read as a command.
                assert!(left.len() <= 2, "{left:?}");
            }
            input.extend_from_slice(b"\r\n.\r\n");
            let (message, ended, left, _) = read(&input, input.len(), BareLineEndings::Normalize);
            assert!(ended);
            assert!(left.is_empty());
            // The smuggled command is content, and no bare CR/LF survives.
            assert!(message.windows(4).any(|w| w == b"MAIL"));
            for (k, &b) in message.iter().enumerate() {
                if b == b'\n' {
                    assert_eq!(message[k - 1], b'\r', "{message:?}");
                }
                if b == b'\r' {
                    assert_eq!(message[k + 1], b'\n', "{message:?}");
                }
            }
        }
    }

    #[test]
    fn bare_line_endings_can_be_refused() {
        let (_, ended, _, bare) = read(b"a\nb\r\n.\r\n", 1, BareLineEndings::Reject);
        assert!(ended && bare);
        let (_, ended, _, bare) = read(b"a\rb\r\n.\r\n", 100, BareLineEndings::Reject);
        assert!(ended && bare);
        let (_, ended, _, bare) = read(b"a\r\nb\r\n.\r\n", 1, BareLineEndings::Reject);
        assert!(ended && !bare);
    }

    #[test]
    fn finds_the_first_bare_line_ending() {
        assert_eq!(first_bare(b""), 0);
        assert_eq!(first_bare(b"\n"), 0);
        assert_eq!(first_bare(b"abc"), 3);
        assert_eq!(first_bare(b"abc\r\ndef\r\n"), 10);
        assert_eq!(first_bare(b"abc\r"), 3);
        assert_eq!(first_bare(b"abc\rd"), 3);
        assert_eq!(first_bare(b"abc\nd"), 3);
        assert_eq!(first_bare(b"a\r\r\n"), 1);
        let mut long = b"0123456789abcdef0123456789\r\n".repeat(20);
        assert_eq!(first_bare(&long), long.len());
        long[300] = b'\n';
        assert_eq!(first_bare(&long), 300);
        long[300] = b'\r';
        assert_eq!(first_bare(&long), 300);
        long[300] = b'x';
        long.truncate(long.len() - 1);
        assert_eq!(first_bare(&long), long.len() - 1);
    }

    #[test]
    fn waits_for_what_it_cannot_judge() {
        let mut reader = DataReader::new(BareLineEndings::Normalize, u64::MAX);
        let mut out = Vec::new();
        let mut buf = BytesMut::from(&b"abc\r"[..]);
        assert!(!reader.read(&mut buf, &mut out));
        assert_eq!(&buf[..], b"\r");
        buf.extend_from_slice(b"\n.");
        assert!(!reader.read(&mut buf, &mut out));
        assert_eq!(&buf[..], b".");
        buf.extend_from_slice(b"\r");
        assert!(!reader.read(&mut buf, &mut out));
        buf.extend_from_slice(b"\n");
        assert!(reader.read(&mut buf, &mut out));
        assert_eq!(out.concat(), b"abc\r\n");
    }

    #[test]
    fn size_limit_stops_emitting_but_keeps_framing() {
        let mut reader = DataReader::new(BareLineEndings::Normalize, 10);
        let mut out = Vec::new();
        let mut buf = BytesMut::from(&b"0123456789abcdef\r\n.\r\nNOOP\r\n"[..]);
        assert!(reader.read(&mut buf, &mut out));
        assert!(reader.too_big);
        assert_eq!(reader.size, 18);
        assert_eq!(out.concat(), b"0123456789");
        assert_eq!(&buf[..], b"NOOP\r\n");
    }

    fn stuff(chunks: &[&[u8]]) -> Vec<u8> {
        let mut s = DotStuffer::new();
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut out);
        }
        s.finish(&mut out);
        out
    }

    #[test]
    fn stuffing_known_answers() {
        assert_eq!(stuff(&[]), b".\r\n");
        assert_eq!(stuff(&[b"a\r\n"]), b"a\r\n.\r\n");
        assert_eq!(stuff(&[b"a"]), b"a\r\n.\r\n");
        assert_eq!(stuff(&[b".a\r\n.\r\n"]), b"..a\r\n..\r\n.\r\n");
        assert_eq!(stuff(&[b"a\r", b"\n.b"]), b"a\r\n..b\r\n.\r\n");
        assert_eq!(stuff(&[b"a\n.\nb"]), b"a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(stuff(&[b"a\r.\r"]), b"a\r\n..\r\n.\r\n");
    }

    #[test]
    fn stuffing_then_reading_gives_back_the_body() {
        let body = b"From: a\r\n\r\n.\r\n..x\r\nend.\r\n.";
        for split in 0..body.len() {
            let wire = stuff(&[&body[..split], &body[split..]]);
            let (message, ended, left, _) = read(&wire, 3, BareLineEndings::Normalize);
            assert!(ended);
            assert!(left.is_empty());
            assert_eq!(message, b"From: a\r\n\r\n.\r\n..x\r\nend.\r\n.\r\n");
        }
    }
}
