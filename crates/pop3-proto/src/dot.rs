//! Multi-line message bodies (RFC 1939 section 3): the server's
//! [`DotStuffer`] and the client's [`DotReader`]. Both stream: neither ever
//! holds more than a few bytes of the message.

use bytes::{Buf, BytesMut};

/// Where a TOP command stands: it sends the header, the blank line and then
/// `n` lines of the body (RFC 1939 section 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// RETR: everything.
    Whole,
    /// TOP, in the header; then this many body lines.
    Header { body_lines: u32 },
    /// TOP, in the body; this many lines still to send.
    Body { remaining: u32 },
    /// TOP: everything wanted was sent; the rest is dropped.
    Complete,
}

/// Turns message bytes into the body of a multi-line response: every line
/// ends with CRLF (a bare LF becomes CRLF; a CR not followed by LF is
/// content), a line starting with `.` gets a second one, a last line
/// without its end gets one, and `.` CRLF ends it all.
#[derive(Debug)]
pub(crate) struct DotStuffer {
    at_line_start: bool,
    /// A CR was the last byte seen: its meaning depends on the next byte.
    pending_cr: bool,
    /// The current line has no content yet (for the header's end).
    line_empty: bool,
    cut: Cut,
}

impl DotStuffer {
    /// For RETR (`None`) or TOP with `n` body lines.
    pub(crate) fn new(top: Option<u32>) -> Self {
        DotStuffer {
            at_line_start: true,
            pending_cr: false,
            line_empty: true,
            cut: match top {
                None => Cut::Whole,
                Some(body_lines) => Cut::Header { body_lines },
            },
        }
    }

    /// Whether TOP has sent all it wants.
    pub(crate) fn is_complete(&self) -> bool {
        self.cut == Cut::Complete
    }

    /// Stuffs the next bytes of the message into `out`.
    pub(crate) fn push(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        while !input.is_empty() && !self.is_complete() {
            if self.pending_cr {
                self.pending_cr = false;
                if input[0] == b'\n' {
                    input = &input[1..];
                    self.end_line(out);
                } else {
                    // A bare CR is content.
                    self.content(b"\r", out);
                }
                continue;
            }
            match memchr::memchr2(b'\r', b'\n', input) {
                None => {
                    self.content(input, out);
                    return;
                }
                Some(i) => {
                    self.content(&input[..i], out);
                    if input[i] == b'\n' {
                        self.end_line(out);
                    } else {
                        self.pending_cr = true;
                    }
                    input = &input[i + 1..];
                }
            }
        }
    }

    /// Ends the message: the last line's end if it had none, then `.` CRLF.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.is_complete() && (self.pending_cr || !self.at_line_start) {
            out.extend_from_slice(b"\r\n");
        }
        self.pending_cr = false;
        self.at_line_start = true;
        out.extend_from_slice(b".\r\n");
    }

    /// Bytes of one line, without CR or LF.
    fn content(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        if self.at_line_start && bytes[0] == b'.' {
            out.push(b'.');
        }
        out.extend_from_slice(bytes);
        self.at_line_start = false;
        self.line_empty = false;
    }

    fn end_line(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"\r\n");
        let empty = std::mem::replace(&mut self.line_empty, true);
        self.at_line_start = true;
        self.cut = match self.cut {
            Cut::Header { body_lines: 0 } if empty => Cut::Complete,
            Cut::Header { body_lines } if empty => Cut::Body {
                remaining: body_lines,
            },
            Cut::Body { remaining: 1 } => Cut::Complete,
            Cut::Body { remaining } => Cut::Body {
                remaining: remaining - 1,
            },
            cut => cut,
        };
    }
}

/// Where the client's reader is within a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    LineStart,
    /// A `.` opened the line.
    Dot,
    /// `.` CR opened the line.
    DotCr,
    InLine,
}

/// Reads the body of a multi-line response: takes one `.` off lines that
/// start with it and stops after the `.` line (`.` CRLF; `.` LF from
/// servers that end lines with LF alone). Line ends are kept as sent.
#[derive(Debug)]
pub(crate) struct DotReader {
    position: Position,
}

impl DotReader {
    pub(crate) fn new() -> Self {
        DotReader {
            position: Position::LineStart,
        }
    }

    /// Moves the content at the start of `input` to `out`; returns true once
    /// the terminating line was consumed (what follows stays in `input`).
    pub(crate) fn read(&mut self, input: &mut BytesMut, out: &mut Vec<u8>) -> bool {
        loop {
            if input.is_empty() {
                return false;
            }
            match self.position {
                Position::LineStart => {
                    if input[0] == b'.' {
                        input.advance(1);
                        self.position = Position::Dot;
                    } else {
                        self.position = Position::InLine;
                    }
                }
                Position::Dot => match input[0] {
                    b'\r' => {
                        input.advance(1);
                        self.position = Position::DotCr;
                    }
                    b'\n' => {
                        input.advance(1);
                        return true;
                    }
                    // The stuffed dot is dropped; the line goes on.
                    _ => self.position = Position::InLine,
                },
                Position::DotCr => {
                    if input[0] == b'\n' {
                        input.advance(1);
                        return true;
                    }
                    // `.` CR and more: the dot is dropped, the CR is content.
                    out.push(b'\r');
                    self.position = Position::InLine;
                }
                Position::InLine => match memchr::memchr(b'\n', input) {
                    Some(i) => {
                        out.extend_from_slice(&input[..=i]);
                        input.advance(i + 1);
                        self.position = Position::LineStart;
                    }
                    None => {
                        out.extend_from_slice(input);
                        input.clear();
                        return false;
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stuff(top: Option<u32>, message: &[u8], split: usize) -> Vec<u8> {
        let mut s = DotStuffer::new(top);
        let mut out = Vec::new();
        for piece in message.chunks(split.max(1)) {
            s.push(piece, &mut out);
        }
        s.finish(&mut out);
        out
    }

    fn unstuff(wire: &[u8], split: usize) -> (Vec<u8>, bool, Vec<u8>) {
        let mut r = DotReader::new();
        let mut out = Vec::new();
        let mut input = BytesMut::new();
        let mut ended = false;
        for piece in wire.chunks(split.max(1)) {
            input.extend_from_slice(piece);
            if !ended {
                ended = r.read(&mut input, &mut out);
            }
        }
        (out, ended, input.to_vec())
    }

    #[test]
    fn stuffing_known_answers() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b".\r\n"),
            (b"a\r\n", b"a\r\n.\r\n"),
            (b"a", b"a\r\n.\r\n"),
            (b".\r\n", b"..\r\n.\r\n"),
            (b"..x\r\n.", b"...x\r\n..\r\n.\r\n"),
            (b"a\nb\n", b"a\r\nb\r\n.\r\n"),
            (b"a\n.\nb", b"a\r\n..\r\nb\r\n.\r\n"),
            (b"a\rb\r\n", b"a\rb\r\n.\r\n"),
            (b"\r.x\r\n", b"\r.x\r\n.\r\n"),
            (b"a\r", b"a\r\n.\r\n"),
            (b"a\r\r\n", b"a\r\r\n.\r\n"),
        ];
        for (message, wire) in cases {
            for split in 1..4 {
                assert_eq!(
                    stuff(None, message, split).escape_ascii().to_string(),
                    wire.escape_ascii().to_string(),
                    "{message:?} split {split}"
                );
            }
        }
    }

    #[test]
    fn top_stops_after_the_header_and_n_lines() {
        let message = b"A: 1\r\nB: 2\r\n\r\none\r\n.two\r\nthree\r\n";
        let cases: &[(u32, &[u8])] = &[
            (0, b"A: 1\r\nB: 2\r\n\r\n.\r\n"),
            (1, b"A: 1\r\nB: 2\r\n\r\none\r\n.\r\n"),
            (2, b"A: 1\r\nB: 2\r\n\r\none\r\n..two\r\n.\r\n"),
            (9, b"A: 1\r\nB: 2\r\n\r\none\r\n..two\r\nthree\r\n.\r\n"),
        ];
        for (n, wire) in cases {
            for split in 1..5 {
                assert_eq!(
                    stuff(Some(*n), message, split),
                    *wire,
                    "TOP {n} split {split}"
                );
            }
        }
        // No blank line: the header is all there is.
        assert_eq!(stuff(Some(0), b"A: 1\nB: 2", 3), b"A: 1\r\nB: 2\r\n.\r\n");
        // A bare-LF message: the blank line is LF alone.
        assert_eq!(
            stuff(Some(1), b"A: 1\n\nx\ny\n", 1),
            b"A: 1\r\n\r\nx\r\n.\r\n"
        );
        // The last body line without its end.
        assert_eq!(stuff(Some(5), b"A\r\n\r\nx", 2), b"A\r\n\r\nx\r\n.\r\n");
        let mut s = DotStuffer::new(Some(0));
        s.push(b"A\r\n\r\nbody", &mut Vec::new());
        assert!(s.is_complete());
    }

    #[test]
    fn unstuffing_known_answers() {
        let cases: &[(&[u8], &[u8], &[u8])] = &[
            (b".\r\n", b"", b""),
            (b"a\r\n.\r\n+OK", b"a\r\n", b"+OK"),
            (b"..\r\n.\r\n", b".\r\n", b""),
            (b"...x\r\n.\r\n", b"..x\r\n", b""),
            (b".x\r\n.\r\n", b"x\r\n", b""),
            (b".\rx\r\n.\r\n", b"\rx\r\n", b""),
            (b"a\n.\nrest", b"a\n", b"rest"),
            (b"a.\r\n.\r\n", b"a.\r\n", b""),
        ];
        for (wire, content, rest) in cases {
            for split in 1..4 {
                let (out, ended, left) = unstuff(wire, split);
                assert!(ended, "{wire:?}");
                assert_eq!(
                    (&out[..], &left[..]),
                    (*content, *rest),
                    "{wire:?} split {split}"
                );
            }
        }
        // Content goes out as soon as it is known: the stuffed dot of ".."
        // is dropped and the second one is content.
        let (out, ended, _) = unstuff(b"no end\r\n..", 3);
        assert!(!ended);
        assert_eq!(out, b"no end\r\n.");
        // ". CR" could still be the end: nothing of it is given out yet.
        let (out, ended, _) = unstuff(b"x\r\n.\r", 1);
        assert!(!ended);
        assert_eq!(out, b"x\r\n");
    }

    #[test]
    fn stuffing_round_trips_normalised_messages() {
        let message = b"From: a\r\n\r\n.\r\n..\r\n.x\r\nend\r\n";
        let wire = stuff(None, message, 5);
        let (out, ended, rest) = unstuff(&wire, 3);
        assert!(ended && rest.is_empty());
        assert_eq!(out, message);
    }
}
