//! Decoded values for people and filters (not for the IMAP wire, which
//! carries raw bytes): RFC 2047 encoded words in header text, RFC 2231
//! parameter values, charsets, transfer encodings and `Date:` values. The
//! decoding itself is mail-parser's.

use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::{HeaderValue, MessageParser};

/// `bytes` in `charset` as UTF-8; an unknown or empty charset reads the bytes
/// as UTF-8 (invalid sequences become U+FFFD).
pub fn charset_to_utf8(charset: &[u8], bytes: &[u8]) -> String {
    match charset_decoder(charset) {
        Some(decode) if !charset.is_empty() => decode(bytes),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Decodes an unstructured header value (Subject, Comments, display text):
/// unfolds it and decodes RFC 2047 encoded words; 8-bit bytes are read as
/// UTF-8.
pub fn decode_text(raw_value: &[u8]) -> String {
    match plain_value(raw_value) {
        // Printable ASCII: valid UTF-8 as it is.
        Some(plain) => String::from_utf8_lossy(plain).into_owned(),
        None => parse_text(raw_value),
    }
}

/// A value with nothing to decode or unfold (printable ASCII and tabs on one
/// line, no `=?`, not all blank) without the blanks at either end: what
/// [`decode_text`] makes of it, borrowed. `None` for any other value.
pub fn plain_value(raw_value: &[u8]) -> Option<&[u8]> {
    let plain = raw_value
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
        && !raw_value.windows(2).any(|w| w == b"=?");
    if !plain {
        return None;
    }
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = raw_value.iter().position(|b| !blank(b))?;
    let end = raw_value.iter().rposition(|b| !blank(b))?;
    Some(&raw_value[start..=end])
}

fn parse_text(raw_value: &[u8]) -> String {
    let mut block = Vec::with_capacity(raw_value.len() + 16);
    block.extend_from_slice(b"Subject: ");
    block.extend_from_slice(raw_value);
    block.extend_from_slice(b"\r\n\r\n");
    let parsed = MessageParser::default().parse_headers(&block);
    match parsed
        .as_ref()
        .and_then(|m| m.headers().first())
        .map(|h| h.value())
    {
        Some(HeaderValue::Text(text)) => text.to_string(),
        Some(HeaderValue::TextList(list)) => list.join(" "),
        _ => String::new(),
    }
}

/// A parameter value for people: an RFC 2231 extended value (`name*` keys,
/// `charset'lang'%xx`) is percent-decoded and converted from its charset,
/// any other value has its RFC 2047 encoded words decoded.
pub fn decode_parameter(key: &[u8], value: &[u8]) -> String {
    if key.ends_with(b"*") {
        crate::lex::decode_rfc2231_value(value)
    } else {
        decode_text(value)
    }
}

/// The date and time of a `Date:` field as written, in the field's own zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentDate {
    /// The year (two-digit years read as RFC 5322 says: 00-49 are 20xx,
    /// 50-99 are 19xx; three-digit years add 1900).
    pub year: u16,
    /// The month, 1-12.
    pub month: u8,
    /// The day of the month, checked against the month's length.
    pub day: u8,
    /// The hour, 0-23.
    pub hour: u8,
    /// The minute, 0-59.
    pub minute: u8,
    /// The second, 0-60 (a leap second is allowed).
    pub second: u8,
    /// The zone's offset from UTC in minutes (`-0700` is -420).
    pub zone: i16,
}

impl SentDate {
    /// Seconds since the Unix epoch of this moment.
    pub fn unix_timestamp(&self) -> i64 {
        // Days since 1970-01-01 (Howard Hinnant's days_from_civil).
        let (m, d) = (i64::from(self.month), i64::from(self.day));
        let y = i64::from(self.year) - i64::from(m <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
        let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
        days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
            - i64::from(self.zone) * 60
    }
}

const MONTHS: [&[u8]; 12] = [
    b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec",
];

const DAYS: [&[u8]; 7] = [b"mon", b"tue", b"wed", b"thu", b"fri", b"sat", b"sun"];

/// Parses a `Date:` value: RFC 5322 `date-time` and its obsolete forms
/// (comments anywhere, folding, two- and three-digit years, no seconds,
/// zone names such as `EST`; a military zone letter or a missing zone reads
/// as UTC, as RFC 5322 section 4.3 allows). Full month and day names are
/// taken too. A date that does not exist (`31 Feb`), a year outside 1 to
/// 9999 or anything else unreadable gives `None`.
pub fn parse_date(raw_value: &[u8]) -> Option<SentDate> {
    let cleaned = strip_comments(raw_value);
    let mut tokens = cleaned
        .split(|&b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b','))
        .filter(|t| !t.is_empty())
        .peekable();
    if tokens
        .peek()
        .is_some_and(|t| t.len() >= 3 && DAYS.iter().any(|d| t[..3].eq_ignore_ascii_case(d)))
    {
        tokens.next();
    }
    let day = number(tokens.next()?, 1, 2)?;
    let month_name = tokens.next()?;
    let month = MONTHS
        .iter()
        .position(|m| month_name.len() >= 3 && month_name[..3].eq_ignore_ascii_case(m))?;
    let year_token = tokens.next()?;
    let year = match (number(year_token, 1, 4)?, year_token.len()) {
        (y, 2) if y < 50 => y + 2000,
        (y, 2 | 3) => y + 1900,
        (y, _) => y,
    };
    let mut time = tokens.next()?.split(|&b| b == b':');
    let hour = number(time.next()?, 1, 2)?;
    let minute = number(time.next()?, 2, 2)?;
    let second = match time.next() {
        Some(s) => number(s, 2, 2)?,
        None => 0,
    };
    let zone = match tokens.next() {
        None => 0,
        Some(z) => zone(z)?,
    };
    let date = SentDate {
        year: u16::try_from(year).ok()?,
        month: u8::try_from(month + 1).ok()?,
        day: u8::try_from(day).ok()?,
        hour: u8::try_from(hour).ok()?,
        minute: u8::try_from(minute).ok()?,
        second: u8::try_from(second).ok()?,
        zone,
    };
    let valid = time.next().is_none()
        && (1..=9999).contains(&date.year)
        && (1..=days_in_month(date.year, date.month)).contains(&date.day)
        && date.hour < 24
        && date.minute < 60
        && date.second <= 60;
    valid.then_some(date)
}

/// The value with comments (nested, with quoted pairs) replaced by a space.
fn strip_comments(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut depth = 0usize;
    let mut escaped = false;
    for &b in value {
        if depth == 0 {
            if b == b'(' {
                depth = 1;
                out.push(b' ');
            } else {
                out.push(b);
            }
        } else if escaped {
            escaped = false;
        } else {
            match b {
                b'\\' => escaped = true,
                b'(' => depth += 1,
                b')' => depth -= 1,
                _ => {}
            }
        }
    }
    out
}

/// A decimal number of `min` to `max` digits.
fn number(token: &[u8], min: usize, max: usize) -> Option<u32> {
    if !(min..=max).contains(&token.len()) || !token.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(token.iter().fold(0, |n, &b| n * 10 + u32::from(b - b'0')))
}

/// A zone: `+hhmm` / `-hhmm` (`+hh:mm` too), or an RFC 5322 zone name.
fn zone(token: &[u8]) -> Option<i16> {
    if let Some((&sign, digits)) = token.split_first()
        && (sign == b'+' || sign == b'-')
    {
        let digits: Vec<u8> = digits.iter().copied().filter(|&b| b != b':').collect();
        let hhmm = number(&digits, 4, 4)?;
        let (hours, minutes) = (hhmm / 100, hhmm % 100);
        if minutes >= 60 {
            return None;
        }
        let offset = i16::try_from(hours * 60 + minutes).ok()?;
        return Some(if sign == b'-' { -offset } else { offset });
    }
    let hours = match token.to_ascii_uppercase().as_slice() {
        b"UT" | b"UTC" | b"GMT" | b"Z" => 0,
        b"EDT" => -4,
        b"EST" | b"CDT" => -5,
        b"CST" | b"MDT" => -6,
        b"MST" | b"PDT" => -7,
        b"PST" => -8,
        [letter] if letter.is_ascii_alphabetic() => 0,
        _ => return None,
    };
    Some(hours * 60)
}

fn days_in_month(year: u16, month: u8) -> u8 {
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => 31,
    }
}

/// Transfer encodings of a body part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransferEncoding {
    /// 7bit, 8bit, binary or anything unknown: the bytes as they are.
    Identity,
    /// base64.
    Base64,
    /// quoted-printable.
    QuotedPrintable,
}

impl TransferEncoding {
    /// The encoding named by a Content-Transfer-Encoding value.
    pub fn from_name(name: &[u8]) -> TransferEncoding {
        let name = name.trim_ascii();
        if name.eq_ignore_ascii_case(b"base64") {
            TransferEncoding::Base64
        } else if name.eq_ignore_ascii_case(b"quoted-printable") {
            TransferEncoding::QuotedPrintable
        } else {
            TransferEncoding::Identity
        }
    }

    /// Decodes `body`; content that does not decode is returned unchanged
    /// (what a mail client shows for a broken part).
    pub fn decode(self, body: &[u8]) -> Vec<u8> {
        self.try_decode(body).unwrap_or_else(|| body.to_vec())
    }

    /// Decodes `body`, or `None` when it does not decode (identity always
    /// does).
    pub fn try_decode(self, body: &[u8]) -> Option<Vec<u8>> {
        match self {
            TransferEncoding::Identity => Some(body.to_vec()),
            TransferEncoding::Base64 => base64_decode(body),
            TransferEncoding::QuotedPrintable => quoted_printable_decode(body),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn plain_values_read_as_the_parser_reads_them(
            value in proptest::collection::vec(
                proptest::sample::select(b" \t\tax=?(\"\\;<>,:@.".to_vec()), 0..40)
        ) {
            if let Some(fast) = plain_value(&value) {
                prop_assert_eq!(String::from_utf8_lossy(fast), parse_text(&value));
            } else {
                prop_assert!(value.windows(2).any(|w| w == b"=?") || value.iter().all(|&b| b == b' ' || b == b'\t'));
            }
        }
    }

    #[test]
    fn encoded_words() {
        assert_eq!(
            decode_text(b"=?UTF-8?Q?J=C3=B6rg?= and =?ISO-8859-1?B?SvZyZw==?="),
            "J\u{f6}rg and J\u{f6}rg"
        );
        assert_eq!(decode_text(b"plain\r\n folded"), "plain folded");
    }

    #[test]
    fn parameters() {
        assert_eq!(
            decode_parameter(b"filename*", b"utf-8''na%C3%AFve.txt"),
            "na\u{ef}ve.txt"
        );
        assert_eq!(
            decode_parameter(b"name", b"=?utf-8?b?w6QucG5n?="),
            "\u{e4}.png"
        );
    }

    #[test]
    fn dates() {
        let d = parse_date(b"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)").unwrap();
        assert_eq!(
            (d.year, d.month, d.day, d.hour, d.minute, d.second, d.zone),
            (1996, 7, 17, 2, 23, 25, -420)
        );
        assert_eq!(d.unix_timestamp(), 837_595_405);
        let d = parse_date(b" 1 Jan 2024 23:59 +0130").unwrap();
        assert_eq!(
            (d.year, d.month, d.day, d.second, d.zone),
            (2024, 1, 1, 0, 90)
        );
        assert_eq!(d.unix_timestamp(), 1_704_153_540 - 90 * 60);
        let d = parse_date(b"Fri, 3 Mar 95 10:00:00 EST").unwrap();
        assert_eq!((d.year, d.zone), (1995, -300));
        let d = parse_date(b"Thu,\r\n 29 Feb 2024 12:00:00 GMT").unwrap();
        assert_eq!((d.month, d.day, d.zone), (2, 29, 0));
        let d = parse_date(b"Tuesday, 05 March 2024 (x (y) \\) z) 7:05:09 +02:00 (CEST)").unwrap();
        assert_eq!(
            (d.year, d.month, d.day, d.hour, d.minute, d.second, d.zone),
            (2024, 3, 5, 7, 5, 9, 120)
        );
        let d = parse_date(b"5 Mar 124 07:05:09").unwrap();
        assert_eq!(
            parse_date(b"5 Mar 2024 07:05:09 +0100 CET").unwrap().zone,
            60
        );
        assert_eq!((d.year, d.zone), (2024, 0));
        assert_eq!(
            parse_date(b"5 Mar 1970 00:00:00 +0000")
                .unwrap()
                .unix_timestamp(),
            5_443_200
        );
        for bad in [
            &b"garbage date"[..],
            b"17 Jul 1996 02:23:25 +0760",
            b"17 Jul 1996 24:00:00 +0000",
            b"17 Jul 0 02:23:25 +0000",
            b"17 Jul 1996 02:23:25:10 +0000",
            b"17 Jul 1996 2:3 +0000",
            b"",
            b"Wed, 17 Jul 1996",
            b"31 Feb 2023 10:00:00 +0000",
            b"29 Feb 2023 10:00:00 +0000",
            b"17 Foo 1996 02:23:25 +0000",
        ] {
            assert_eq!(parse_date(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn transfer_encodings() {
        assert_eq!(
            TransferEncoding::from_name(b" BASE64").decode(b"aGVsbG8="),
            b"hello"
        );
        assert_eq!(
            TransferEncoding::QuotedPrintable.decode(b"caf=C3=A9"),
            "caf\u{e9}".as_bytes()
        );
        assert_eq!(TransferEncoding::Base64.decode(b"!!!"), b"!!!");
        assert_eq!(TransferEncoding::Base64.try_decode(b"!!!"), None);
        assert_eq!(
            TransferEncoding::Identity.try_decode(b"!!!").as_deref(),
            Some(&b"!!!"[..])
        );
    }
}
