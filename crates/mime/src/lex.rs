//! RFC 5322 / RFC 2045 tokens of header values: comments, atoms, quoted
//! strings, phrases, domains, MIME tokens and `;`-parameters with RFC 2231
//! continuations.
//!
//! The parsers are deliberately lenient in the same places mainstream IMAP
//! servers are (the golden test compares with Dovecot): they return what they
//! could read and say whether the input was broken, and they never fail on
//! 8-bit bytes.

/// The result of one lexer step, in the style of a cursor: more input left,
/// the input ended cleanly, or the input was broken here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Broken input at the cursor.
    Broken,
    /// The value ended.
    End,
    /// More input follows.
    More,
}

impl Step {
    fn from_more(more: bool) -> Step {
        if more { Step::More } else { Step::End }
    }
}

/// `atext` of RFC 5322 (8-bit bytes count as atext).
pub(crate) fn is_atext(b: u8) -> bool {
    matches!(b,
        b'!' | b'#'..=b'\'' | b'*' | b'+' | b'-' | b'/' | b'0'..=b'9' | b'=' | b'?'
        | b'A'..=b'Z' | b'^'..=b'~' | 0x80..=0xff)
}

/// A MIME `token` character (atext minus `/`, `=` and `?`).
fn is_token(b: u8) -> bool {
    is_atext(b) && !matches!(b, b'/' | b'=' | b'?')
}

fn is_lwsp(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// One `attribute=value` parameter.
pub(crate) type Param = (Vec<u8>, Vec<u8>);

/// A cursor over one header value.
pub(crate) struct Lexer<'a> {
    data: &'a [u8],
    pos: usize,
    /// The text of the last comment skipped, when asked to keep it.
    pub(crate) last_comment: Option<Vec<u8>>,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Lexer<'a> {
        Lexer {
            data,
            pos: 0,
            last_comment: None,
        }
    }

    pub(crate) fn with_comments(data: &'a [u8]) -> Lexer<'a> {
        Lexer {
            data,
            pos: 0,
            last_comment: Some(Vec::new()),
        }
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// The byte at the cursor (0 at the end, like a C string).
    pub(crate) fn peek(&self) -> u8 {
        self.data.get(self.pos).copied().unwrap_or(0)
    }

    pub(crate) fn bump(&mut self) {
        if self.pos < self.data.len() {
            self.pos += 1;
        }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn set_position(&mut self, pos: usize) {
        self.pos = pos.min(self.data.len());
    }

    /// `comment`, with nesting and quoted pairs.
    fn skip_comment(&mut self) -> Step {
        if let Some(c) = self.last_comment.as_mut() {
            c.clear();
        }
        self.pos += 1;
        let mut start = self.pos;
        let mut level = 1;
        while self.pos < self.data.len() {
            match self.data[self.pos] {
                b'(' => level += 1,
                b')' => {
                    level -= 1;
                    if level == 0 {
                        if let Some(c) = self.last_comment.as_mut() {
                            c.extend_from_slice(&self.data[start..self.pos]);
                        }
                        self.pos += 1;
                        return Step::from_more(!self.at_end());
                    }
                }
                b'\\' => {
                    if let Some(c) = self.last_comment.as_mut() {
                        c.extend_from_slice(&self.data[start..self.pos]);
                    }
                    start = self.pos + 1;
                    self.pos += 1;
                    if self.at_end() {
                        return Step::Broken;
                    }
                }
                _ => {}
            }
            self.pos += 1;
        }
        Step::Broken
    }

    /// `CFWS`: white space, line breaks and comments.
    pub(crate) fn skip_lwsp(&mut self) -> Step {
        while self.pos < self.data.len() {
            let b = self.data[self.pos];
            if is_lwsp(b) {
                self.pos += 1;
            } else if b == b'(' {
                if self.skip_comment() == Step::Broken {
                    return Step::Broken;
                }
            } else {
                break;
            }
        }
        Step::from_more(!self.at_end())
    }

    /// `atom`.
    pub(crate) fn parse_atom(&mut self, out: &mut Vec<u8>) -> Step {
        if self.at_end() || !is_atext(self.peek()) {
            return Step::Broken;
        }
        let start = self.pos;
        while self.pos < self.data.len() && is_atext(self.data[self.pos]) {
            self.pos += 1;
        }
        out.extend_from_slice(&self.data[start..self.pos]);
        if self.at_end() {
            Step::End
        } else {
            self.skip_lwsp()
        }
    }

    /// `dot-atom`, allowing white space around the dots as RFC 822 did.
    pub(crate) fn parse_dot_atom(&mut self, out: &mut Vec<u8>) -> Step {
        if self.at_end() || !is_atext(self.peek()) {
            return Step::Broken;
        }
        let mut start = self.pos;
        self.pos += 1;
        while self.pos < self.data.len() {
            if is_atext(self.data[self.pos]) {
                self.pos += 1;
                continue;
            }
            out.extend_from_slice(&self.data[start..self.pos]);
            let step = self.skip_lwsp();
            if step != Step::More {
                return step;
            }
            if self.peek() != b'.' {
                return Step::More;
            }
            self.pos += 1;
            out.push(b'.');
            let step = self.skip_lwsp();
            if step != Step::More {
                return step;
            }
            start = self.pos;
        }
        out.extend_from_slice(&self.data[start..self.pos]);
        Step::End
    }

    /// A MIME `token` (dots allowed, as servers do).
    pub(crate) fn parse_mime_token(&mut self, out: &mut Vec<u8>) -> Step {
        self.take_run(out, |b| is_token(b) || b == b'.')
    }

    /// Copies the run of bytes `wanted` accepts to `out`, then skips
    /// white space after it.
    fn take_run(&mut self, out: &mut Vec<u8>, wanted: impl Fn(u8) -> bool) -> Step {
        let start = self.pos;
        while self.pos < self.data.len() && wanted(self.data[self.pos]) {
            self.pos += 1;
        }
        out.extend_from_slice(&self.data[start..self.pos]);
        if self.pos < self.data.len() {
            self.skip_lwsp()
        } else {
            Step::End
        }
    }

    /// `quoted-string`; folding line breaks are removed, quoted pairs unescaped.
    pub(crate) fn parse_quoted_string(&mut self, out: &mut Vec<u8>) -> Step {
        self.pos += 1;
        let mut start = self.pos;
        while self.pos < self.data.len() {
            match self.data[self.pos] {
                b'"' => {
                    out.extend_from_slice(&self.data[start..self.pos]);
                    self.pos += 1;
                    return self.skip_lwsp();
                }
                b'\n' => {
                    let mut end = self.pos;
                    if end > start && self.data[end - 1] == b'\r' {
                        end -= 1;
                    }
                    out.extend_from_slice(&self.data[start..end]);
                    start = self.pos + 1;
                }
                b'\\' => {
                    self.pos += 1;
                    if self.at_end() {
                        return Step::Broken;
                    }
                    out.extend_from_slice(&self.data[start..self.pos - 1]);
                    start = self.pos;
                }
                _ => {}
            }
            self.pos += 1;
        }
        Step::Broken
    }

    fn parse_atom_or_dot(&mut self, out: &mut Vec<u8>) -> Step {
        self.take_run(out, |b| is_atext(b) || b == b'.')
    }

    /// `phrase` (with obs-phrase dots); words joined by one space.
    pub(crate) fn parse_phrase(&mut self, out: &mut Vec<u8>) -> Step {
        if self.at_end() {
            return Step::End;
        }
        if self.peek() == b'.' {
            return Step::Broken;
        }
        loop {
            let step = if self.peek() == b'"' {
                self.parse_quoted_string(out)
            } else {
                self.parse_atom_or_dot(out)
            };
            if step != Step::More {
                return step;
            }
            let b = self.peek();
            if !is_atext(b) && b != b'"' && b != b'.' {
                break;
            }
            out.push(b' ');
        }
        self.skip_lwsp()
    }

    fn parse_domain_literal(&mut self, out: &mut Vec<u8>) -> Step {
        let start = self.pos;
        while self.pos < self.data.len() {
            match self.data[self.pos] {
                b'\\' => {
                    self.pos += 1;
                    if self.at_end() {
                        break;
                    }
                }
                b']' => {
                    self.pos += 1;
                    out.extend_from_slice(&self.data[start..self.pos]);
                    return self.skip_lwsp();
                }
                _ => {}
            }
            self.pos += 1;
        }
        Step::Broken
    }

    /// `"@" domain` (the cursor is on the `@`).
    pub(crate) fn parse_domain(&mut self, out: &mut Vec<u8>) -> Step {
        self.pos += 1;
        if self.skip_lwsp() != Step::More {
            return Step::Broken;
        }
        if self.peek() == b'[' {
            self.parse_domain_literal(out)
        } else {
            self.parse_dot_atom(out)
        }
    }

    /// One `";" attribute "=" value`. `None` at the end of the value.
    fn parse_content_param(&mut self) -> Option<Result<Param, ()>> {
        if self.at_end() {
            return None;
        }
        if self.peek() != b';' {
            return Some(Err(()));
        }
        self.pos += 1;
        if self.skip_lwsp() != Step::More {
            return Some(Err(()));
        }
        let mut key = Vec::new();
        if self.parse_mime_token(&mut key) != Step::More {
            return Some(Err(()));
        }
        if self.peek() != b'=' {
            return Some(Err(()));
        }
        self.pos += 1;
        let mut value = Vec::new();
        let mut step = self.skip_lwsp();
        if step != Step::More {
            // no value
        } else if self.peek() == b'"' {
            step = self.parse_quoted_string(&mut value);
        } else if self.peek() == b'=' {
            // A raw encoded word as value (`name==?utf-8?b?...?=`): take it up
            // to the next separator.
            while self.pos < self.data.len()
                && !matches!(self.data[self.pos], b';' | b' ' | b'\t' | b'\r' | b'\n')
            {
                value.push(self.data[self.pos]);
                self.pos += 1;
            }
        } else {
            step = self.parse_mime_token(&mut value);
        }
        if step == Step::Broken {
            Some(Err(()))
        } else {
            Some(Ok((key, value)))
        }
    }

    /// Every parameter after the cursor, RFC 2231 continuations merged.
    pub(crate) fn parse_parameters(&mut self) -> Vec<(Vec<u8>, Vec<u8>)> {
        struct Piece {
            key: Vec<u8>,
            value: Vec<u8>,
            index: u32,
            extended: bool,
        }
        let mut result = Vec::new();
        let mut pieces: Vec<Piece> = Vec::new();
        while let Some(param) = self.parse_content_param() {
            let Ok((key, value)) = param else {
                if self.at_end() {
                    break;
                }
                self.pos += 1;
                continue;
            };
            let Some(star) = key.iter().position(|&b| b == b'*') else {
                result.push((key, value));
                continue;
            };
            // `name*` alone is an extended value without continuations.
            let mut p = if star + 1 == key.len() {
                star
            } else {
                star + 1
            };
            let mut index: u32 = 0;
            while p < key.len() && key[p].is_ascii_digit() {
                index = index
                    .wrapping_mul(10)
                    .wrapping_add(u32::from(key[p] - b'0'));
                p += 1;
            }
            let extended = p < key.len() && key[p] == b'*';
            if extended {
                p += 1;
            }
            if p != key.len() {
                result.push((key, value));
                continue;
            }
            pieces.push(Piece {
                key: key[..star].to_vec(),
                value,
                index,
                extended,
            });
        }
        if pieces.is_empty() {
            return result;
        }
        pieces.sort_by(|a, b| a.key.cmp(&b.key).then(a.index.cmp(&b.index)));
        let mut i = 0;
        while i < pieces.len() {
            let mut j = i;
            let mut ok = true;
            let mut have_extended = false;
            let mut next_index = 0;
            while j < pieces.len() && pieces[j].key.eq_ignore_ascii_case(&pieces[i].key) {
                if pieces[j].index != next_index {
                    ok = false;
                }
                have_extended |= pieces[j].extended;
                next_index += 1;
                j += 1;
            }
            if !ok {
                for piece in &pieces[i..j] {
                    let mut key = piece.key.clone();
                    key.extend_from_slice(format!("*{}", piece.index).as_bytes());
                    if piece.extended {
                        key.push(b'*');
                    }
                    result.push((key, piece.value.clone()));
                }
            } else {
                let mut value = Vec::new();
                if !pieces[i].extended && have_extended {
                    value.extend_from_slice(b"''");
                }
                for piece in &pieces[i..j] {
                    if !piece.extended && have_extended {
                        for &b in &piece.value {
                            if b == b'%' {
                                value.extend_from_slice(b"%25");
                            } else {
                                value.push(b);
                            }
                        }
                    } else {
                        value.extend_from_slice(&piece.value);
                    }
                }
                let mut key = pieces[i].key.clone();
                if have_extended {
                    key.push(b'*');
                }
                result.push((key, value));
            }
            i = j;
        }
        result
    }
}

/// Decodes an RFC 2231 extended value `charset'language'percent-encoded`
/// into UTF-8 (unknown charsets are read as UTF-8, lossily).
pub(crate) fn decode_rfc2231_value(value: &[u8]) -> String {
    let mut parts = value.splitn(3, |&b| b == b'\'');
    let (charset, encoded) = match (parts.next(), parts.next(), parts.next()) {
        (Some(charset), Some(_language), Some(rest)) => (charset, rest),
        _ => (&b""[..], value),
    };
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut i = 0;
    while i < encoded.len() {
        if encoded[i] == b'%'
            && i + 2 < encoded.len()
            && let (Some(h), Some(l)) = (hex(encoded[i + 1]), hex(encoded[i + 2]))
        {
            bytes.push(h * 16 + l);
            i += 3;
            continue;
        }
        bytes.push(encoded[i]);
        i += 1;
    }
    crate::decode::charset_to_utf8(charset, &bytes)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(value: &str) -> Vec<(String, String)> {
        let mut lexer = Lexer::new(value.as_bytes());
        lexer
            .parse_parameters()
            .into_iter()
            .map(|(k, v)| (String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap()))
            .collect()
    }

    #[test]
    fn merges_rfc2231_continuations() {
        assert_eq!(
            params("; name*1=\"b\"; name*0=\"a\""),
            [("name".to_string(), "ab".to_string())]
        );
        assert_eq!(
            params("; t*0*=us-ascii'en'a%20; t*1=\"50%\""),
            [("t*".to_string(), "us-ascii'en'a%2050%25".to_string())]
        );
        assert_eq!(
            params("; f*0=a; f*2=c"),
            [
                ("f*0".to_string(), "a".to_string()),
                ("f*2".to_string(), "c".to_string())
            ]
        );
    }

    #[test]
    fn skips_broken_parameters() {
        assert_eq!(
            params(";; ;charset=utf-8; =novalue; noequals"),
            [
                ("charset".to_string(), "utf-8".to_string()),
                (String::new(), "novalue".to_string())
            ]
        );
    }

    #[test]
    fn decodes_extended_values() {
        assert_eq!(decode_rfc2231_value(b"utf-8''na%C3%AFve"), "na\u{ef}ve");
        assert_eq!(decode_rfc2231_value(b"iso-8859-1'en'%A3%20x"), "\u{a3} x");
        assert_eq!(decode_rfc2231_value(b"plain%"), "plain%");
    }

    #[test]
    fn phrases_join_words() {
        let mut out = Vec::new();
        let mut lexer = Lexer::new(b"Mr.  \"John Q.\" Public <x@y>");
        assert_eq!(lexer.parse_phrase(&mut out), Step::More);
        assert_eq!(out, b"Mr. John Q. Public");
        assert_eq!(lexer.peek(), b'<');
    }
}
