//! IMAP wire strings (RFC 3501 section 4.3 and 9): `NIL`, quoted strings and
//! literals, chosen the way mainstream servers choose them so that ENVELOPE
//! and BODYSTRUCTURE renderings compare byte for byte.
//!
//! - [`write_nstring`]: `NIL` for `None`; a quoted string when every byte is
//!   7-bit without CR or LF and there are at most four `"` or `\` to escape;
//!   a literal `{n}\r\n...` otherwise.
//! - [`write_nstring_nolf`]: the same after removing CR and LF (unfolding a
//!   header value; a line break not followed by white space becomes a space).
//! - [`write_string_for_humans`]: for display text (subjects, display names):
//!   runs of white space become one space, leading and trailing white space
//!   go, and anything needing escapes is sent as a literal.
//! - [`write_literal`]: always a literal (section contents).
//!
//! A NUL byte ends a string, as it does in C servers (header NULs are turned
//! into U+FFFD before they get here).

/// Quoted-string escapes allowed before a literal is cheaper.
const QUOTED_MAX_ESCAPES: usize = 4;

fn until_nul(s: &[u8]) -> &[u8] {
    match s.iter().position(|&b| b == 0) {
        Some(i) => &s[..i],
        None => s,
    }
}

/// Appends `{len}\r\n` and the bytes.
pub fn write_literal(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", s.len()).as_bytes());
    out.extend_from_slice(s);
}

/// Appends a quoted string, escaping `"` and `\` (CR, LF and 8-bit bytes
/// are left out: callers check first).
fn write_quoted(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &b in s {
        match b {
            b'\r' | b'\n' => {}
            b'"' | b'\\' => {
                out.push(b'\\');
                out.push(b);
            }
            0x80..=0xff => {}
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// Appends an IMAP `string`: quoted when safe, a literal otherwise.
pub fn write_string(out: &mut Vec<u8>, s: &[u8]) {
    let s = until_nul(s);
    let mut escapes = 0;
    for &b in s {
        let literal = match b {
            b'"' | b'\\' => {
                escapes += 1;
                escapes > QUOTED_MAX_ESCAPES
            }
            b'\r' | b'\n' | 0x80..=0xff => true,
            _ => false,
        };
        if literal {
            write_literal(out, s);
            return;
        }
    }
    write_quoted(out, s);
}

/// Appends an IMAP `nstring`: `NIL` for `None`, else [`write_string`].
pub fn write_nstring(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        None => out.extend_from_slice(b"NIL"),
        Some(s) => write_string(out, s),
    }
}

/// Removes CR and LF; a line break followed by something other than white
/// space or another line break becomes one space.
pub fn unfold(s: &[u8]) -> Vec<u8> {
    let s = until_nul(s);
    let mut out = Vec::with_capacity(s.len());
    for (i, &b) in s.iter().enumerate() {
        if b != b'\r' && b != b'\n' {
            out.push(b);
        } else if let Some(&next) = s.get(i + 1)
            && !matches!(next, b' ' | b'\t' | b'\r' | b'\n')
        {
            out.push(b' ');
        }
    }
    out
}

/// Appends an `nstring` of an unfolded header value.
pub fn write_nstring_nolf(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        Some(s) if s.iter().any(|&b| b == b'\r' || b == b'\n') => write_string(out, &unfold(s)),
        _ => write_nstring(out, s),
    }
}

/// The cleaned form of display text: white space runs (including line
/// breaks and tabs) become one space, none at either end.
pub fn clean_for_humans(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut last_blank = true;
    for &b in s {
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => {
                if !last_blank {
                    out.push(b' ');
                }
                last_blank = true;
            }
            0 => {
                out.push(0x80);
                last_blank = false;
            }
            _ => {
                out.push(b);
                last_blank = false;
            }
        }
    }
    if last_blank && out.last() == Some(&b' ') {
        out.pop();
    }
    out
}

/// Appends display text: a plain quoted string when nothing needs changing
/// or escaping, `""` when only white space, a literal of the cleaned text
/// otherwise.
pub fn write_string_for_humans(out: &mut Vec<u8>, s: &[u8]) {
    let needs_change = {
        let mut last_blank = true;
        let mut change = false;
        for &b in s {
            match b {
                b'\t' | b'\r' | b'\n' | 0 | b'"' | b'\\' | 0x80..=0xff => {
                    change = true;
                    last_blank = matches!(b, b'\t' | b'\r' | b'\n');
                }
                b' ' => {
                    change |= last_blank;
                    last_blank = true;
                }
                _ => last_blank = false,
            }
        }
        change || (last_blank && !s.is_empty())
    };
    if !needs_change {
        out.push(b'"');
        out.extend_from_slice(s);
        out.push(b'"');
        return;
    }
    let cleaned = clean_for_humans(s);
    if cleaned.is_empty() {
        out.extend_from_slice(b"\"\"");
    } else {
        write_literal(out, &cleaned);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(f: impl Fn(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn quoted_or_literal() {
        assert_eq!(s(|o| write_nstring(o, None)), "NIL");
        assert_eq!(s(|o| write_string(o, b"a \"b\"")), "\"a \\\"b\\\"\"");
        assert_eq!(s(|o| write_string(o, b"\"\"\"\"\"")), "{5}\r\n\"\"\"\"\"");
        assert_eq!(
            s(|o| write_string(o, "caf\u{e9}".as_bytes())),
            "{5}\r\ncaf\u{e9}"
        );
        assert_eq!(s(|o| write_string(o, b"a\r\nb")), "{4}\r\na\r\nb");
        assert_eq!(s(|o| write_string(o, b"")), "\"\"");
    }

    #[test]
    fn unfolds_header_values() {
        assert_eq!(s(|o| write_nstring_nolf(o, Some(b"a\r\n b"))), "\"a b\"");
        assert_eq!(s(|o| write_nstring_nolf(o, Some(b"a\rb"))), "\"a b\"");
    }

    #[test]
    fn display_text() {
        assert_eq!(
            s(|o| write_string_for_humans(o, b"plain text")),
            "\"plain text\""
        );
        assert_eq!(s(|o| write_string_for_humans(o, b"  a\t b ")), "{3}\r\na b");
        assert_eq!(s(|o| write_string_for_humans(o, b" \t ")), "\"\"");
        assert_eq!(s(|o| write_string_for_humans(o, b"")), "\"\"");
        assert_eq!(
            s(|o| write_string_for_humans(o, b"say \"hi\"")),
            "{8}\r\nsay \"hi\""
        );
    }
}
