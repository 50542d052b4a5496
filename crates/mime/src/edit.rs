//! Edits that leave every byte outside the edit as it was (SPEC M-2): a
//! DKIM signature over the untouched parts stays valid, and the rest of the
//! message is exactly what the sender sent.
//!
//! Every function takes the raw message and returns the edited copy. New
//! lines use the message's own line ending (CRLF, or LF for LF-only input).
//!
//! ```
//! use ironpost_mime::edit;
//!
//! let raw = b"Subject: hello\r\n\r\nbody\r\n";
//! let out = edit::prepend_headers(raw, &[("Delivered-To", "alice@example.com")]).unwrap();
//! assert_eq!(out, b"Delivered-To: alice@example.com\r\nSubject: hello\r\n\r\nbody\r\n");
//! let out = edit::prefix_subject(&out, "[SPAM]").unwrap();
//! assert!(out.ends_with(b"Subject: [SPAM] hello\r\n\r\nbody\r\n"));
//! ```

use std::ops::Range;

use crate::decode::{TransferEncoding, decode_text};
use crate::error::MimeError;
use crate::lex::Lexer;
use crate::message::Message;
use crate::structure::{Part, PartKind, parse_media_type};

/// The line ending the message uses: that of its first line.
fn line_ending(raw: &[u8]) -> &'static [u8] {
    match raw.iter().position(|&b| b == b'\n') {
        Some(i) if i > 0 && raw[i - 1] == b'\r' => b"\r\n",
        Some(_) => b"\n",
        None => b"\r\n",
    }
}

fn check_name(name: &str) -> Result<(), MimeError> {
    if name.is_empty() || !name.bytes().all(|b| (33..=126).contains(&b) && b != b':') {
        return Err(MimeError::BadHeaderName(name.to_string()));
    }
    Ok(())
}

/// A header field line `Name: value` with the message's line ending; a
/// value may be folded with a line break followed by a space or tab.
fn field_line(name: &str, value: &str, eol: &[u8]) -> Result<Vec<u8>, MimeError> {
    check_name(name)?;
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(name.len() + value.len() + 4);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\r' | b'\n' => {
                let skip = if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                if !matches!(bytes.get(i + skip), Some(b' ' | b'\t')) {
                    return Err(MimeError::BadHeaderValue(name.to_string()));
                }
                out.extend_from_slice(eol);
                i += skip;
            }
            0 => return Err(MimeError::BadHeaderValue(name.to_string())),
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out.extend_from_slice(eol);
    Ok(out)
}

/// Replaces ranges of `raw` (sorted, not overlapping) with new bytes.
fn splice(raw: &[u8], mut edits: Vec<(Range<usize>, Vec<u8>)>) -> Vec<u8> {
    edits.sort_by_key(|(r, _)| r.start);
    let mut out = Vec::with_capacity(raw.len() + 256);
    let mut pos = 0;
    for (range, bytes) in edits {
        let start = range.start.clamp(pos, raw.len());
        out.extend_from_slice(&raw[pos..start]);
        out.extend_from_slice(&bytes);
        pos = range.end.clamp(start, raw.len());
    }
    out.extend_from_slice(&raw[pos..]);
    out
}

/// Puts header lines in front of the message, in the order given (trace
/// fields such as `Received`, `Delivered-To`, spam headers). The message
/// itself follows unchanged.
pub fn prepend_headers(raw: &[u8], fields: &[(&str, &str)]) -> Result<Vec<u8>, MimeError> {
    let eol = line_ending(raw);
    let mut out = Vec::with_capacity(raw.len() + 128 * fields.len());
    for (name, value) in fields {
        out.extend_from_slice(&field_line(name, value, eol)?);
    }
    out.extend_from_slice(raw);
    Ok(out)
}

/// Where a new field goes: after the last field of the top header (before
/// the empty line), with a line break added if the header ended without one.
fn append_point(raw: &[u8], root: &Part, eol: &[u8]) -> (usize, Vec<u8>) {
    let end = root.fields.last().map_or(root.header.start, |f| f.raw.end);
    let mut prefix = Vec::new();
    if end > 0 && raw[end - 1] == b'\r' {
        // a bare CR at the end must not pair with an LF into an empty line
        prefix.extend_from_slice(b"\r\n");
    } else if end > 0 && raw[end - 1] != b'\n' {
        prefix.extend_from_slice(eol);
    }
    (end, prefix)
}

/// Sets a header field: the first field of that name gets the new value in
/// place, later ones are removed; without one, the field is added at the
/// end of the header.
pub fn set_header(raw: &[u8], name: &str, value: &str) -> Result<Vec<u8>, MimeError> {
    let eol = line_ending(raw);
    let line = field_line(name, value, eol)?;
    let msg = Message::parse(raw);
    let mut edits = Vec::new();
    let mut first = true;
    for field in msg.headers().iter().filter(|f| f.is(raw, name)) {
        let replacement = if first { line.clone() } else { Vec::new() };
        edits.push((field.raw.clone(), replacement));
        first = false;
    }
    if first {
        let (at, mut bytes) = append_point(raw, msg.root(), eol);
        bytes.extend_from_slice(&line);
        edits.push((at..at, bytes));
    }
    Ok(splice(raw, edits))
}

/// Replaces the value of every field named `name`; an error if there is
/// none.
pub fn replace_header(raw: &[u8], name: &str, value: &str) -> Result<Vec<u8>, MimeError> {
    let eol = line_ending(raw);
    let line = field_line(name, value, eol)?;
    let msg = Message::parse(raw);
    let edits: Vec<_> = msg
        .headers()
        .iter()
        .filter(|f| f.is(raw, name))
        .map(|f| (f.raw.clone(), line.clone()))
        .collect();
    if edits.is_empty() {
        return Err(MimeError::NothingToEdit(format!("no {name} header")));
    }
    Ok(splice(raw, edits))
}

/// Removes every field named `name` (the message is returned unchanged when
/// there is none).
pub fn remove_header(raw: &[u8], name: &str) -> Result<Vec<u8>, MimeError> {
    check_name(name)?;
    let msg = Message::parse(raw);
    let edits = msg
        .headers()
        .iter()
        .filter(|f| f.is(raw, name))
        .map(|f| (f.raw.clone(), Vec::new()))
        .collect();
    Ok(splice(raw, edits))
}

/// RFC 2047 `Q` encoding of a whole phrase as one or more encoded words.
fn encoded_words(text: &str) -> String {
    let mut words = Vec::new();
    let mut current = String::new();
    for ch in text.chars() {
        let mut buf = [0u8; 4];
        let mut piece = String::new();
        for &b in ch.encode_utf8(&mut buf).as_bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'!' | b'*' | b'+' | b'-' | b'/') {
                piece.push(b as char);
            } else if b == b' ' {
                piece.push('_');
            } else {
                piece.push_str(&format!("={b:02X}"));
            }
        }
        // encoded words are at most 75 characters (RFC 2047 section 2)
        if current.len() + piece.len() > 75 - "=?utf-8?q??=".len() {
            words.push(std::mem::take(&mut current));
        }
        current.push_str(&piece);
    }
    words.push(current);
    words
        .iter()
        .map(|w| format!("=?utf-8?q?{w}?="))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Puts `prefix` in front of the subject (`[SPAM]`, `[EXTERNAL]`...), once:
/// a subject whose decoded text already starts with it is left alone. The
/// prefix is separated from the old value by a space, so an encoded word
/// that starts the subject stays an encoded word; a non-ASCII prefix is
/// itself written as an encoded word. A message without a subject gets one.
pub fn prefix_subject(raw: &[u8], prefix: &str) -> Result<Vec<u8>, MimeError> {
    let msg = Message::parse(raw);
    let eol = line_ending(raw);
    let encoded_prefix = if prefix
        .bytes()
        .all(|b| (32..=126).contains(&b) && b != b'=' && b != b'?')
    {
        prefix.to_string()
    } else {
        encoded_words(prefix)
    };
    let Some(field) = msg.root().field(raw, "Subject") else {
        let (at, mut bytes) = append_point(raw, msg.root(), eol);
        bytes.extend_from_slice(&field_line("Subject", &encoded_prefix, eol)?);
        return Ok(splice(raw, vec![(at..at, bytes)]));
    };
    let current = decode_text(&field.value(raw));
    if current.trim_start().starts_with(prefix) {
        return Ok(raw.to_vec());
    }
    let at = field.value.start;
    let mut insert = encoded_prefix.into_bytes();
    if field.value.is_empty() {
        // `Subject:` with nothing after it: the value starts right here.
        if raw.get(at.wrapping_sub(1)) == Some(&b':') {
            insert.insert(0, b' ');
        }
    } else {
        insert.push(b' ');
    }
    Ok(splice(raw, vec![(at..at, insert)]))
}

/// The media type (lower case `type/subtype`) and charset of a part.
fn media_of(raw: &[u8], part: &Part) -> (String, Option<String>, bool) {
    let mut media = String::from("text/plain");
    let mut charset = None;
    let mut attachment = false;
    if !part.is_mime {
        return (media, charset, attachment);
    }
    if let Some(field) = part.field(raw, "Content-Type") {
        let value = field.value(raw);
        let mut lexer = Lexer::new(&value);
        let mut bytes = Vec::new();
        parse_media_type(&mut lexer, &mut bytes);
        media = String::from_utf8_lossy(&bytes).to_ascii_lowercase();
        charset = lexer
            .parse_parameters()
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(b"charset"))
            .map(|(_, v)| String::from_utf8_lossy(&v).to_ascii_lowercase());
    }
    if let Some(field) = part.field(raw, "Content-Disposition") {
        let value = field.value(raw);
        attachment = value
            .trim_ascii_start()
            .get(..10)
            .is_some_and(|v| v.eq_ignore_ascii_case(b"attachment"));
    }
    (media, charset, attachment)
}

fn encoding_of(raw: &[u8], part: &Part) -> TransferEncoding {
    if !part.is_mime {
        return TransferEncoding::Identity;
    }
    part.field(raw, "Content-Transfer-Encoding")
        .map_or(TransferEncoding::Identity, |f| {
            TransferEncoding::from_name(&f.value(raw))
        })
}

/// The text parts a reader sees: (plain, html), following the first part of
/// mixed and related multiparts and both sides of an alternative.
fn body_parts<'p>(raw: &[u8], part: &'p Part, out: &mut (Option<&'p Part>, Option<&'p Part>)) {
    let (media, _, attachment) = media_of(raw, part);
    match &part.kind {
        PartKind::Multipart(children) => {
            if media == "multipart/alternative" {
                for child in children {
                    body_parts(raw, child, out);
                }
            } else if let Some(first) = children.first() {
                body_parts(raw, first, out);
            }
        }
        PartKind::Message(_) => {}
        PartKind::Leaf if attachment => {}
        PartKind::Leaf => {
            if media == "text/plain" && out.0.is_none() {
                out.0 = Some(part);
            } else if media == "text/html" && out.1.is_none() {
                out.1 = Some(part);
            }
        }
    }
}

fn charset_takes_utf8(charset: Option<&str>, text: &str) -> bool {
    text.is_ascii() || matches!(charset, None | Some("utf-8" | "utf8" | "us-ascii"))
}

fn base64_lines(data: &[u8], eol: &[u8]) -> Vec<u8> {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(data.len() * 4 / 3 + 8);
    for (i, chunk) in data.chunks(3).enumerate() {
        if i > 0 && i % 19 == 0 {
            out.extend_from_slice(eol);
        }
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * k)) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
    out.extend_from_slice(eol);
    out
}

fn quoted_printable_lines(text: &str, eol: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 16);
    let lines: Vec<&str> = text.split('\n').collect();
    for (n, line) in lines.iter().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let mut col = 0;
        let bytes = line.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            let last = i + 1 == bytes.len();
            let piece = if b == b'='
                || b >= 0x7f
                || b < 0x20 && b != b'\t'
                || last && (b == b' ' || b == b'\t')
            {
                format!("={b:02X}")
            } else {
                (b as char).to_string()
            };
            if col + piece.len() > 75 {
                out.push(b'=');
                out.extend_from_slice(eol);
                col = 0;
            }
            col += piece.len();
            out.extend_from_slice(piece.as_bytes());
        }
        if n + 1 < lines.len() {
            out.extend_from_slice(eol);
        }
    }
    out
}

/// The edit that adds `addition` (already in the part's line endings) to
/// the decoded content of `part`, inserted at `insert_at` of the decoded
/// text (or appended).
fn append_to_part(
    raw: &[u8],
    part: &Part,
    eol: &[u8],
    build: impl Fn(&str) -> String,
) -> Option<(Range<usize>, Vec<u8>)> {
    let body = &raw[part.body.clone()];
    match encoding_of(raw, part) {
        TransferEncoding::Base64 => {
            let decoded = TransferEncoding::Base64.decode(body);
            let text = String::from_utf8(decoded).ok()?;
            let new = build(&text);
            let mut bytes = base64_lines(new.as_bytes(), eol);
            if !body.ends_with(b"\n") {
                bytes.truncate(bytes.len() - eol.len());
            }
            Some((part.body.clone(), bytes))
        }
        TransferEncoding::QuotedPrintable => {
            let decoded = TransferEncoding::QuotedPrintable.decode(body);
            let text = String::from_utf8(decoded).ok()?;
            let new = build(&text);
            // Only the tail after the unchanged prefix is re-encoded.
            let common = text
                .bytes()
                .zip(new.bytes())
                .take_while(|(a, b)| a == b)
                .count();
            if common == text.len() {
                let tail = &new[common..];
                let mut bytes = Vec::new();
                if !body.ends_with(b"\n") && !body.is_empty() {
                    bytes.extend_from_slice(b"=");
                    bytes.extend_from_slice(eol);
                }
                bytes.extend_from_slice(&quoted_printable_lines(tail, eol));
                return Some((part.body.end..part.body.end, bytes));
            }
            Some((part.body.clone(), quoted_printable_lines(&new, eol)))
        }
        TransferEncoding::Identity => {
            let text = std::str::from_utf8(body).ok()?;
            let new = build(text);
            let common = text
                .bytes()
                .zip(new.bytes())
                .take_while(|(a, b)| a == b)
                .count();
            if common == text.len() {
                return Some((
                    part.body.end..part.body.end,
                    new.as_bytes()[common..].to_vec(),
                ));
            }
            // Insert (before `</body>`): only the inserted bytes are new.
            let tail_len = text.len() - common;
            // (byte offsets: the shared prefix may end inside a character)
            let inserted = &new.as_bytes()[common..new.len() - tail_len];
            let at = part.body.start + common;
            Some((at..at, inserted.to_vec()))
        }
    }
}

fn with_eol(text: &str, eol: &[u8]) -> String {
    let eol = std::str::from_utf8(eol).unwrap_or("\r\n");
    text.replace("\r\n", "\n").replace('\n', eol)
}

/// Appends a signature to the body a reader sees: `text` to the text/plain
/// part and `html` to the text/html part (before `</body>` when there is
/// one), in a single-part message or in the parts of a multipart/alternative
/// (also inside mixed or related). Quoted-printable and base64 parts are
/// re-encoded; other bytes of the message are untouched. Parts in a charset
/// that cannot carry the (UTF-8) signature are left alone. An error if the
/// message has no text part at all.
pub fn append_signature(raw: &[u8], text: &str, html: &str) -> Result<Vec<u8>, MimeError> {
    let msg = Message::parse(raw);
    let eol = line_ending(raw);
    let mut found = (None, None);
    body_parts(raw, msg.root(), &mut found);
    let (plain, rich) = found;
    if plain.is_none() && rich.is_none() {
        return Err(MimeError::NothingToEdit("no text part to sign".into()));
    }
    let mut edits = Vec::new();
    if let Some(part) = plain {
        let (_, charset, _) = media_of(raw, part);
        if charset_takes_utf8(charset.as_deref(), text) {
            let sig = with_eol(text, eol);
            let eol_str = std::str::from_utf8(eol).unwrap_or("\r\n").to_string();
            if let Some(edit) = append_to_part(raw, part, eol, |body| {
                let mut out = body.to_string();
                if !out.is_empty() && !out.ends_with('\n') {
                    out.push_str(&eol_str);
                }
                out.push_str(&sig);
                if !sig.ends_with('\n') {
                    out.push_str(&eol_str);
                }
                out
            }) {
                edits.push(edit);
            }
        }
    }
    if let Some(part) = rich {
        let (_, charset, _) = media_of(raw, part);
        if charset_takes_utf8(charset.as_deref(), html) {
            let sig = with_eol(html, eol);
            if let Some(edit) = append_to_part(raw, part, eol, |body| {
                let lower = body.to_ascii_lowercase();
                match lower.rfind("</body>") {
                    Some(i) => format!("{}{}{}", &body[..i], sig, &body[i..]),
                    None => format!("{body}{sig}"),
                }
            }) {
                edits.push(edit);
            }
        }
    }
    Ok(splice(raw, edits))
}

/// An attachment of a message: where it is and what it says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The IMAP part number.
    pub part: Vec<u32>,
    /// The media type, lower case (`application/pdf`).
    pub media_type: String,
    /// The file name (decoded), from Content-Disposition or Content-Type.
    pub filename: Option<String>,
    /// The size of the encoded body in octets.
    pub size: usize,
}

/// Every leaf part that is not the message text: parts with a file name or
/// an `attachment` disposition, and non-text parts.
pub fn attachments(raw: &[u8]) -> Vec<Attachment> {
    let msg = Message::parse(raw);
    let mut out = Vec::new();
    let mut stack: Vec<(&Part, Vec<u32>)> = Vec::new();
    match &msg.root().kind {
        PartKind::Multipart(children) => {
            for (i, c) in children.iter().enumerate().rev() {
                stack.push((c, vec![i as u32 + 1]));
            }
        }
        _ => stack.push((msg.root(), vec![1])),
    }
    while let Some((part, number)) = stack.pop() {
        match &part.kind {
            PartKind::Multipart(children) => {
                for (i, c) in children.iter().enumerate().rev() {
                    let mut n = number.clone();
                    n.push(i as u32 + 1);
                    stack.push((c, n));
                }
            }
            PartKind::Message(_) | PartKind::Leaf => {
                let (media, _, is_attachment) = media_of(raw, part);
                let filename = filename_of(raw, part);
                let is_message = matches!(part.kind, PartKind::Message(_));
                if is_attachment || filename.is_some() || is_message || !media.starts_with("text/")
                {
                    out.push(Attachment {
                        part: number,
                        media_type: media,
                        filename,
                        size: part.body.len(),
                    });
                }
            }
        }
    }
    out
}

fn filename_of(raw: &[u8], part: &Part) -> Option<String> {
    if !part.is_mime {
        return None;
    }
    let lookup = |field: &str, key: &[u8]| {
        let value = part.field(raw, field)?.value(raw).into_owned();
        let mut lexer = Lexer::new(&value);
        let mut token = Vec::new();
        if field == "Content-Type" {
            parse_media_type(&mut lexer, &mut token);
        } else {
            lexer.skip_lwsp();
            lexer.parse_mime_token(&mut token);
        }
        lexer
            .parse_parameters()
            .into_iter()
            .find(|(k, _)| {
                k.eq_ignore_ascii_case(key)
                    || (k.len() == key.len() + 1
                        && k[..key.len()].eq_ignore_ascii_case(key)
                        && k.ends_with(b"*"))
            })
            .map(|(k, v)| crate::decode::decode_parameter(&k, &v))
    };
    lookup("Content-Disposition", b"filename").or_else(|| lookup("Content-Type", b"name"))
}

/// Replaces the part numbered `part` (header and body) with a short
/// text/plain part carrying `notice`; everything else, boundaries included,
/// stays as it was. The message itself (part `[]`) cannot be replaced.
pub fn remove_attachment(raw: &[u8], part: &[u32], notice: &str) -> Result<Vec<u8>, MimeError> {
    let msg = Message::parse(raw);
    let number = part
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".");
    if part.is_empty() {
        return Err(MimeError::NothingToEdit("the message itself".into()));
    }
    let target = msg.part(part)?;
    if std::ptr::eq(target, msg.root()) {
        return Err(MimeError::NothingToEdit(format!(
            "part {number} is the body of a single-part message"
        )));
    }
    if let PartKind::Message(inner) = &msg
        .part(&part[..part.len() - 1])
        .map(|p| &p.kind)
        .unwrap_or(&PartKind::Leaf)
        && std::ptr::eq(&**inner, target)
    {
        return Err(MimeError::NothingToEdit(format!(
            "part {number} is the whole attached message; remove its parent instead"
        )));
    }
    let eol = line_ending(raw);
    let eol_s = std::str::from_utf8(eol).unwrap_or("\r\n");
    let encoding = if notice.is_ascii() { "7bit" } else { "8bit" };
    let mut replacement = format!(
        "Content-Type: text/plain; charset=utf-8{eol_s}Content-Transfer-Encoding: {encoding}{eol_s}Content-Disposition: inline{eol_s}{eol_s}"
    )
    .into_bytes();
    replacement.extend_from_slice(with_eol(notice, eol).as_bytes());
    // A part that ends in a line break (a message/rfc822 part whose inner
    // header ran into the boundary) keeps it: it separates the boundary.
    let mut end = target.body.end;
    if raw[end..].starts_with(b"--") {
        if raw[..end].ends_with(b"\r\n") && end - 2 >= target.header.start {
            end -= 2;
        } else if raw[..end].ends_with(b"\n") && end > target.header.start {
            end -= 1;
        }
    }
    Ok(splice(raw, vec![(target.header.start..end, replacement)]))
}

/// A short notice for a removed attachment.
pub fn attachment_notice(filename: Option<&str>, reason: &str) -> String {
    match filename {
        Some(name) => format!("The attachment \"{name}\" was removed: {reason}."),
        None => format!("An attachment was removed: {reason}."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts that `out` is `raw` with `old` replaced by exactly `new`.
    fn assert_only(raw: &[u8], out: &[u8], old: Range<usize>, new: &[u8]) {
        assert_eq!(
            &out[..old.start],
            &raw[..old.start],
            "bytes before the edit changed"
        );
        assert_eq!(
            &out[old.start..old.start + new.len()],
            new,
            "the edit itself"
        );
        assert_eq!(
            &out[old.start + new.len()..],
            &raw[old.end..],
            "bytes after the edit changed"
        );
    }

    const ALT: &[u8] = b"From: a@example.com\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\nContent-Type: multipart/alternative; boundary=a\r\n\r\n--a\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello\r\n--a\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<html><body><p>Hello</p></body></html>\r\n--a--\r\n--m\r\nContent-Type: application/pdf; name=\"x.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--m--\r\n";

    #[test]
    fn prepend_keeps_the_message() {
        let out =
            prepend_headers(ALT, &[("Received", "from a\r\n\tby b"), ("X-Spam", "no")]).unwrap();
        assert!(out.ends_with(ALT));
        assert!(out.starts_with(b"Received: from a\r\n\tby b\r\nX-Spam: no\r\n"));
        assert!(prepend_headers(ALT, &[("Bad Name", "x")]).is_err());
        assert!(prepend_headers(ALT, &[("X", "a\r\nInjected: yes")]).is_err());
        let lf = prepend_headers(b"Subject: x\n\nbody\n", &[("X-A", "1")]).unwrap();
        assert_eq!(lf, b"X-A: 1\nSubject: x\n\nbody\n");
    }

    #[test]
    fn set_replace_remove() {
        let raw = b"A: 1\r\nB: 2\r\nA: 3\r\n\r\nbody";
        assert_eq!(
            set_header(raw, "a", "x").unwrap(),
            b"a: x\r\nB: 2\r\n\r\nbody"
        );
        assert_eq!(
            set_header(raw, "C", "4").unwrap(),
            b"A: 1\r\nB: 2\r\nA: 3\r\nC: 4\r\n\r\nbody"
        );
        assert_eq!(
            replace_header(raw, "A", "y").unwrap(),
            b"A: y\r\nB: 2\r\nA: y\r\n\r\nbody"
        );
        assert!(replace_header(raw, "C", "y").is_err());
        assert_eq!(remove_header(raw, "A").unwrap(), b"B: 2\r\n\r\nbody");
        assert_eq!(set_header(b"A: 1", "B", "2").unwrap(), b"A: 1\r\nB: 2\r\n");
        // regression (fuzz): a header ending in a bare CR
        let raw = b"A: 1\nx\r";
        let out = set_header(raw, "B", "2").unwrap();
        let msg = Message::parse(&out);
        assert_eq!(msg.header_text("B").as_deref(), Some("2"));
        assert!(msg.root().body.is_empty());
    }

    #[test]
    fn subject_prefix_is_encoded_word_safe() {
        let out = prefix_subject(ALT, "[SPAM]").unwrap();
        let at = ALT.windows(9).position(|w| w == b"Subject: ").unwrap() + 9;
        assert_only(ALT, &out, at..at, b"[SPAM] ");
        let msg = Message::parse(&out);
        assert_eq!(
            msg.header_text("Subject").unwrap(),
            "[SPAM] Gr\u{fc}\u{df}e"
        );
        // once only
        assert_eq!(prefix_subject(&out, "[SPAM]").unwrap(), out);
        // non-ASCII prefix becomes an encoded word
        let out = prefix_subject(b"Subject: hi\r\n\r\n", "[Sp\u{e4}m]").unwrap();
        assert_eq!(
            Message::parse(&out).header_text("Subject").unwrap(),
            "[Sp\u{e4}m] hi"
        );
        // no subject at all
        let out = prefix_subject(b"From: a@b\r\n\r\nx", "[X]").unwrap();
        assert_eq!(out, b"From: a@b\r\nSubject: [X]\r\n\r\nx");
    }

    #[test]
    fn signatures_go_to_both_alternatives() {
        let out = append_signature(ALT, "-- \nAlice", "<p>-- Alice</p>").unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.contains("Hello\r\n-- \r\nAlice\r\n\r\n--a\r\n"),
            "{text}"
        );
        assert!(
            text.contains("<p>Hello</p><p>-- Alice</p></body>"),
            "{text}"
        );
        // the attachment and everything around it is untouched
        let tail = b"--m\r\nContent-Type: application/pdf";
        let i = ALT.windows(tail.len()).position(|w| w == tail).unwrap();
        assert!(out.ends_with(&ALT[i..]));
        let j = ALT.windows(5).position(|w| w == b"Hello").unwrap() + 5;
        assert_eq!(&out[..j], &ALT[..j]);
    }

    #[test]
    fn html_signature_sharing_a_multibyte_prefix() {
        // The signature and the text after the insertion point share
        // "</body>" and the first byte of a two-byte character.
        let raw = "Content-Type: text/html; charset=utf-8\r\n\r\n<p>x</p></body>\u{e8}".as_bytes();
        let out = append_signature(raw, "", "</body>\u{e9}").unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.ends_with("<p>x</p></body>\u{e9}</body>\u{e8}"),
            "{text}"
        );
    }

    #[test]
    fn signature_in_base64_part() {
        let raw = b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8K\r\n";
        let out = append_signature(raw, "sig", "").unwrap();
        let msg = Message::parse(&out);
        let body = &out[msg.root().body.clone()];
        assert_eq!(TransferEncoding::Base64.decode(body), b"hello\nsig\r\n");
        assert!(append_signature(b"Content-Type: image/png\r\n\r\nx", "s", "h").is_err());
    }

    #[test]
    fn attachment_replaced_by_notice() {
        let found = attachments(ALT);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].part, vec![2]);
        assert_eq!(found[0].filename.as_deref(), Some("x.pdf"));
        let notice = attachment_notice(found[0].filename.as_deref(), "it contained a virus");
        let out = remove_attachment(ALT, &found[0].part, &notice).unwrap();
        let msg = Message::parse(ALT);
        let target = msg.part(&[2]).unwrap();
        let new_part = format!(
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\nContent-Disposition: inline\r\n\r\n{notice}"
        );
        assert_only(
            ALT,
            &out,
            target.header.start..target.body.end,
            new_part.as_bytes(),
        );
        let edited = Message::parse(&out);
        assert_eq!(
            edited
                .section(&crate::Section::parse("2").unwrap(), None)
                .unwrap(),
            notice.as_bytes()
        );
        assert!(attachments(&out).is_empty());
        assert!(remove_attachment(ALT, &[9], "x").is_err());
        assert!(remove_attachment(b"Subject: x\r\n\r\nbody", &[1], "x").is_err());
    }
}
