//! [`MessageReader`]: a stored message as it is read, the message row's
//! header prefix followed by the body (a file, or bytes kept in the
//! database for a small body).
//!
//! A body blob is shared by every mailbox the message was delivered to; the
//! header fields that belong to one delivery alone (`Delivered-To:`) live in
//! the message row instead. Every way of reading a message goes through this
//! type, so what IMAP, POP3 and the size in the index see is always the same
//! bytes: prefix, then blob.

use std::fs::File;
use std::io::{self, Cursor, Read, Seek, SeekFrom};

/// Where a body's bytes are.
#[derive(Debug)]
pub(crate) enum Body {
    /// A blob file.
    File(File),
    /// A small body kept in the database (`blob_data`).
    Inline(Cursor<Vec<u8>>),
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Body::File(f) => f.read(buf),
            Body::Inline(c) => c.read(buf),
        }
    }
}

impl Seek for Body {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        match self {
            Body::File(f) => f.seek(to),
            Body::Inline(c) => c.seek(to),
        }
    }
}

/// A message's bytes: its header prefix, then its body. Implements
/// [`Read`] and [`Seek`] over the whole; positions count from the start of
/// the prefix. Made by [`crate::Store::open_message`].
#[derive(Debug)]
pub struct MessageReader {
    prefix: Vec<u8>,
    body: Body,
    /// Prefix plus body, in octets.
    size: u64,
    /// Position in the whole. The body file's own cursor is always at
    /// `pos - prefix.len()`, or 0 while `pos` is inside the prefix.
    pos: u64,
}

impl MessageReader {
    /// A reader of `prefix` followed by `body` (of `body_size` octets), at
    /// position 0. `body`'s cursor must be at its start.
    pub(crate) fn new(prefix: Vec<u8>, body: Body, body_size: u64) -> Self {
        MessageReader {
            size: prefix.len() as u64 + body_size,
            prefix,
            body,
            pos: 0,
        }
    }

    /// The size of the whole message in octets: what [`crate::Message::size`]
    /// says and what reading to the end yields.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The header lines stored for this delivery alone (empty for most
    /// messages). The body file starts right after them.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    fn prefix_len(&self) -> u64 {
        self.prefix.len() as u64
    }
}

impl Read for MessageReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = if self.pos < self.prefix_len() {
            // `pos` is below a `usize` length here.
            let rest = &self.prefix[self.pos as usize..];
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            n
        } else {
            self.body.read(buf)?
        };
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for MessageReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(delta) => self.size.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.pos.checked_add_signed(delta),
        }
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek to a negative or overflowing position",
            )
        })?;
        self.body
            .seek(SeekFrom::Start(target.saturating_sub(self.prefix_len())))?;
        self.pos = target;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use proptest::prelude::*;

    use super::*;

    fn reader(dir: &tempfile::TempDir, prefix: &[u8], body: &[u8]) -> MessageReader {
        let path = dir.path().join("body");
        File::create(&path).unwrap().write_all(body).unwrap();
        MessageReader::new(
            prefix.to_vec(),
            Body::File(File::open(&path).unwrap()),
            body.len() as u64,
        )
    }

    #[test]
    fn reads_the_prefix_then_the_body() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = reader(
            &dir,
            b"Delivered-To: a@example.com\r\n",
            b"Subject: x\r\n\r\nhi\r\n",
        );
        assert_eq!(r.size(), 29 + 18);
        assert_eq!(r.prefix(), b"Delivered-To: a@example.com\r\n");
        let mut all = Vec::new();
        r.read_to_end(&mut all).unwrap();
        assert_eq!(
            all,
            b"Delivered-To: a@example.com\r\nSubject: x\r\n\r\nhi\r\n"
        );
        // Into the body, back into the prefix, from the end.
        let mut two = [0u8; 2];
        r.seek(SeekFrom::Start(29 + 9)).unwrap();
        r.read_exact(&mut two).unwrap();
        assert_eq!(&two, b"x\r");
        r.seek(SeekFrom::Start(27)).unwrap();
        let mut four = [0u8; 4];
        r.read_exact(&mut four).unwrap();
        assert_eq!(&four, b"\r\nSu");
        assert_eq!(r.seek(SeekFrom::End(-4)).unwrap(), 43);
        assert_eq!(r.stream_position().unwrap(), 43);
        assert!(r.seek(SeekFrom::Current(-44)).is_err());
        assert_eq!(
            r.stream_position().unwrap(),
            43,
            "a failed seek moves nothing"
        );
    }

    #[test]
    fn an_empty_prefix_reads_the_body_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = reader(&dir, b"", b"body");
        let mut all = Vec::new();
        r.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"body");
        assert_eq!(r.size(), 4);
    }

    proptest! {
        /// Any sequence of seeks and reads gives what the same calls give on
        /// the concatenated bytes in memory.
        #[test]
        fn behaves_like_a_cursor_over_prefix_and_body(
            prefix in proptest::collection::vec(any::<u8>(), 0..40),
            body in proptest::collection::vec(any::<u8>(), 0..80),
            ops in proptest::collection::vec((0u8..4, -130i64..130, 0usize..50), 1..20),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut r = reader(&dir, &prefix, &body);
            let mut c = Cursor::new([prefix.clone(), body.clone()].concat());
            for (op, offset, len) in ops {
                match op {
                    0 => {
                        let to = SeekFrom::Start(offset.unsigned_abs());
                        prop_assert_eq!(r.seek(to).ok(), c.seek(to).ok());
                    }
                    1 => {
                        let to = SeekFrom::End(offset);
                        prop_assert_eq!(r.seek(to).ok(), c.seek(to).ok());
                    }
                    2 => {
                        let to = SeekFrom::Current(offset);
                        prop_assert_eq!(r.seek(to).ok(), c.seek(to).ok());
                    }
                    _ => {
                        // Short reads are allowed; read the same count both ways.
                        let mut a = vec![0u8; len];
                        let n = r.read(&mut a).unwrap();
                        let mut b = vec![0u8; n];
                        c.read_exact(&mut b).unwrap();
                        prop_assert_eq!(&a[..n], &b[..]);
                        prop_assert!(n > 0 || len == 0 || c.position() >= c.get_ref().len() as u64);
                    }
                }
                prop_assert_eq!(r.stream_position().unwrap(), c.position());
            }
            let mut rest_r = Vec::new();
            let mut rest_c = Vec::new();
            r.read_to_end(&mut rest_r).unwrap();
            c.read_to_end(&mut rest_c).unwrap();
            prop_assert_eq!(rest_r, rest_c);
        }
    }
}
