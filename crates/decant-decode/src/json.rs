//! A validating, allocation-free JSON scanner for the hot loop.
//!
//! Why not a general parser: decoding a Debezium event needs only (a) the extent of each member of
//! a few objects, so most values can be skipped, and (b) borrowed keys. `sonic-rs`'s lazy iterator
//! allocates an owned key per member and a DOM costs a tree per message; this scanner returns
//! [`Value`]s that are slices of the input, validated as they are skipped. Strings are unescaped
//! only when asked for, and only when they contain escapes.
//!
//! Accepted beyond RFC 8259: the bare tokens `NaN`, `Infinity`, `-Infinity` as numbers (Jackson
//! writes them for non-finite doubles). Nesting is limited to [`MAX_DEPTH`].

use std::borrow::Cow;
use std::fmt;

pub const MAX_DEPTH: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// Byte offset of the problem within the scanned text.
    pub at: usize,
    pub message: &'static str,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.message, self.at)
    }
}

impl std::error::Error for JsonError {}

fn err<T>(at: usize, message: &'static str) -> Result<T, JsonError> {
    Err(JsonError { at, message })
}

/// One complete, already validated JSON value: a slice of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Value<'a> {
    raw: &'a str,
    /// The scanner saw that this string has no escapes (false: unknown).
    plain: bool,
}

/// Parses a whole document: exactly one value, surrounded by whitespace only.
pub fn parse(text: &str) -> Result<Value<'_>, JsonError> {
    let b = text.as_bytes();
    let start = skip_ws(b, 0);
    let end = skip_value(b, start, 0)?;
    if skip_ws(b, end) != b.len() {
        return err(end, "trailing characters after the JSON value");
    }
    Ok(Value {
        raw: &text[start..end],
        plain: false,
    })
}

impl<'a> Value<'a> {
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    pub fn kind(&self) -> Kind {
        match self.raw.as_bytes().first() {
            Some(b'"') => Kind::String,
            Some(b'{') => Kind::Object,
            Some(b'[') => Kind::Array,
            Some(b't' | b'f') => Kind::Bool,
            Some(b'n') => Kind::Null,
            _ => Kind::Number,
        }
    }

    pub fn is_null(&self) -> bool {
        self.raw == "null"
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.raw {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }

    /// An integer without fraction or exponent.
    #[inline]
    pub fn as_i64(&self) -> Option<i64> {
        parse_i64(self.raw)
    }

    /// The string's text, borrowed unless it contains escapes.
    pub fn as_str(&self) -> Option<Cow<'a, str>> {
        if self.kind() != Kind::String {
            return None;
        }
        let inner = &self.raw[1..self.raw.len() - 1];
        if self.plain || !inner.as_bytes().contains(&b'\\') {
            return Some(Cow::Borrowed(inner));
        }
        unescape(inner).map(Cow::Owned)
    }

    /// Members of an object; `None` if this is not an object.
    pub fn members(&self) -> Option<Members<'a>> {
        (self.kind() == Kind::Object).then_some(Members {
            text: self.raw,
            pos: 1,
            first: true,
            done: false,
        })
    }

    /// Elements of an array; `None` if this is not an array.
    pub fn elements(&self) -> Option<Elements<'a>> {
        (self.kind() == Kind::Array).then_some(Elements {
            text: self.raw,
            pos: 1,
            first: true,
            done: false,
        })
    }

    /// The first member named `key` of an object.
    pub fn get(&self, key: &str) -> Option<Value<'a>> {
        self.members()?
            .filter_map(Result::ok)
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
}

/// Iterates the members of an object document given as text.
pub fn members(text: &str) -> Result<Members<'_>, JsonError> {
    let b = text.as_bytes();
    let start = skip_ws(b, 0);
    if b.get(start) != Some(&b'{') {
        return err(start, "expected a JSON object");
    }
    Ok(Members {
        text,
        pos: start + 1,
        first: true,
        done: false,
    })
}

/// Why [`Members::for_each_member`] stopped: malformed JSON, or the callback's own error.
#[derive(Debug)]
pub enum ScanError<E> {
    Json(JsonError),
    Inner(E),
}

pub struct Members<'a> {
    text: &'a str,
    pos: usize,
    first: bool,
    done: bool,
}

impl<'a> Iterator for Members<'a> {
    type Item = Result<(Cow<'a, str>, Value<'a>), JsonError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = self.step();
        if !matches!(r, Some(Ok(_))) {
            self.done = true;
        }
        r
    }
}

impl<'a> Members<'a> {
    /// After the iterator returned `None`: whether only whitespace follows the closing brace.
    pub fn ends_document(&self) -> bool {
        self.text.as_bytes()[self.pos.min(self.text.len())..]
            .iter()
            .all(|c| matches!(c, b' ' | b'\n' | b'\r' | b'\t'))
            && self.text.as_bytes().get(self.pos.wrapping_sub(1)) == Some(&b'}')
    }

    /// Calls `f` for every remaining member, in order, without per-member `Option`/`Result`
    /// wrapping: the hot loop's way to walk a row image or a `source` block.
    #[inline]
    pub fn for_each_member<E>(
        &mut self,
        mut f: impl FnMut(&str, Value<'a>) -> Result<(), E>,
    ) -> Result<(), ScanError<E>> {
        let text = self.text;
        let b = text.as_bytes();
        let mut p = self.pos;
        let mut first = self.first;
        self.done = true;
        loop {
            p = skip_ws(b, p);
            match b.get(p) {
                Some(b'}') => {
                    self.pos = p + 1;
                    self.first = false;
                    return Ok(());
                }
                Some(b',') if !first => p = skip_ws(b, p + 1),
                Some(_) if first => {}
                Some(_) => {
                    return Err(ScanError::Json(JsonError {
                        at: p,
                        message: "expected ',' or '}' in object",
                    }));
                }
                None => {
                    return Err(ScanError::Json(JsonError {
                        at: p,
                        message: "unterminated object",
                    }));
                }
            }
            first = false;
            if b.get(p) != Some(&b'"') {
                return Err(ScanError::Json(JsonError {
                    at: p,
                    message: "expected a member name",
                }));
            }
            let (key_end, escaped) = skip_string(b, p).map_err(ScanError::Json)?;
            let inner = &text[p + 1..key_end - 1];
            p = skip_ws(b, key_end);
            if b.get(p) != Some(&b':') {
                return Err(ScanError::Json(JsonError {
                    at: p,
                    message: "expected ':' after member name",
                }));
            }
            let start = skip_ws(b, p + 1);
            let mut plain = false;
            let end = match b.get(start) {
                Some(b'"') => skip_string(b, start).map(|(e, esc)| {
                    plain = !esc;
                    e
                }),
                Some(b'-' | b'0'..=b'9') => skip_number(b, start),
                Some(b'n') if b[start..].starts_with(b"null") => Ok(start + 4),
                _ => skip_value(b, start, 1),
            }
            .map_err(ScanError::Json)?;
            let value = Value {
                raw: &text[start..end],
                plain,
            };
            if escaped {
                let key = unescape(inner).ok_or(ScanError::Json(JsonError {
                    at: p,
                    message: "invalid escape in member name",
                }))?;
                f(&key, value).map_err(ScanError::Inner)?;
            } else {
                f(inner, value).map_err(ScanError::Inner)?;
            }
            p = end;
        }
    }

    /// Pull mode: the next member's name and the offset where its value starts. The caller
    /// must then consume the value with [`Members::skip_value_at`] or [`Members::nested_object`]
    /// + [`Members::resume_after`].
    pub fn next_key(&mut self) -> Option<Result<(Cow<'a, str>, usize), JsonError>> {
        if self.done {
            return None;
        }
        let r = self.key_step();
        if !matches!(r, Some(Ok(_))) {
            self.done = true;
        }
        r
    }

    #[inline(always)]
    fn key_step(&mut self) -> Option<Result<(Cow<'a, str>, usize), JsonError>> {
        let b = self.text.as_bytes();
        let mut p = skip_ws(b, self.pos);
        match b.get(p) {
            Some(b'}') => {
                self.pos = p + 1;
                return None;
            }
            Some(b',') if !self.first => p = skip_ws(b, p + 1),
            Some(_) if self.first => {}
            Some(_) => return Some(err(p, "expected ',' or '}' in object")),
            None => return Some(err(p, "unterminated object")),
        }
        self.first = false;
        if b.get(p) != Some(&b'"') {
            return Some(err(p, "expected a member name"));
        }
        let (key_end, escaped) = match skip_string(b, p) {
            Ok(x) => x,
            Err(e) => return Some(Err(e)),
        };
        let inner = &self.text[p + 1..key_end - 1];
        let key = if escaped {
            match unescape(inner) {
                Some(k) => Cow::Owned(k),
                None => return Some(err(p, "invalid escape in member name")),
            }
        } else {
            Cow::Borrowed(inner)
        };
        p = skip_ws(b, key_end);
        if b.get(p) != Some(&b':') {
            return Some(err(p, "expected ':' after member name"));
        }
        p = skip_ws(b, p + 1);
        self.pos = p;
        Some(Ok((key, p)))
    }

    /// Skips the value starting at `start` (from [`Members::next_key`]) and returns it.
    #[inline]
    pub fn skip_value_at(&mut self, start: usize) -> Result<Value<'a>, JsonError> {
        let b = self.text.as_bytes();
        let mut plain = false;
        // Scalars (nearly every member) without the general recursive walk.
        let end = match b.get(start) {
            Some(b'"') => skip_string(b, start).map(|(e, escaped)| {
                plain = !escaped;
                e
            }),
            Some(b'-' | b'0'..=b'9') => skip_number(b, start),
            Some(b'n') if b[start..].starts_with(b"null") => Ok(start + 4),
            _ => skip_value(b, start, 1),
        }
        .inspect_err(|_| self.done = true)?;
        self.pos = end;
        Ok(Value {
            raw: &self.text[start..end],
            plain,
        })
    }

    /// The members of the object value starting at `start`, to be consumed in place.
    pub fn nested_object(&self, start: usize) -> Option<Members<'a>> {
        (self.text.as_bytes().get(start) == Some(&b'{')).then(|| Members {
            text: self.text,
            pos: start + 1,
            first: true,
            done: false,
        })
    }

    /// Continues after a nested object that was consumed to its closing brace; returns the
    /// object as a value. `None` if the nested iterator did not finish cleanly.
    pub fn resume_after(&mut self, start: usize, nested: &Members<'a>) -> Option<Value<'a>> {
        let closed =
            nested.done && self.text.as_bytes().get(nested.pos.wrapping_sub(1)) == Some(&b'}');
        if !closed || nested.pos <= start {
            return None;
        }
        self.pos = nested.pos;
        Some(Value {
            raw: &self.text[start..nested.pos],
            plain: false,
        })
    }

    #[inline(always)]
    fn step(&mut self) -> Option<Result<(Cow<'a, str>, Value<'a>), JsonError>> {
        let (key, start) = match self.key_step()? {
            Ok(x) => x,
            Err(e) => return Some(Err(e)),
        };
        Some(self.skip_value_at(start).map(|v| (key, v)))
    }
}

pub struct Elements<'a> {
    text: &'a str,
    pos: usize,
    first: bool,
    done: bool,
}

impl<'a> Iterator for Elements<'a> {
    type Item = Result<Value<'a>, JsonError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let b = self.text.as_bytes();
        let mut p = skip_ws(b, self.pos);
        match b.get(p) {
            Some(b']') => {
                self.done = true;
                return None;
            }
            Some(b',') if !self.first => p = skip_ws(b, p + 1),
            Some(_) if self.first => {}
            _ => {
                self.done = true;
                return Some(err(p, "expected ',' or ']' in array"));
            }
        }
        self.first = false;
        match skip_value(b, p, 1) {
            Ok(end) => {
                self.pos = end;
                Some(Ok(Value {
                    raw: &self.text[p..end],
                    plain: false,
                }))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Decimal integer text to i64: a digit loop for up to 18 digits (which cannot overflow), the
/// standard parser beyond.
#[inline]
pub fn parse_i64(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let (neg, digits) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 18 {
        return text.parse().ok();
    }
    let mut v: i64 = 0;
    for &d in digits {
        let d = d.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + d as i64;
    }
    Some(if neg { -v } else { v })
}

#[inline(always)]
fn skip_ws(b: &[u8], mut p: usize) -> usize {
    while let Some(c) = b.get(p) {
        if !matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
            break;
        }
        p += 1;
    }
    p
}

/// Bytes that end the fast scan of a string body: quote, backslash, control characters.
const STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Index of the first byte at or after `i` that is `"`, `\\` or below 0x20 (or `b.len()`).
#[inline(always)]
fn find_stop(b: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = b.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let quote = w ^ (LO * b'"' as u64);
        let slash = w ^ (LO * b'\\' as u64);
        // A byte is zero in `x` iff its bit 7 is set in (x - LO) & !x; the lowest hit is exact.
        let hits = (quote.wrapping_sub(LO) & !quote)
            | (slash.wrapping_sub(LO) & !slash)
            | (w.wrapping_sub(LO * 0x20) & !w);
        let hits = hits & HI;
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < b.len() && !STOP[b[i] as usize] {
        i += 1;
    }
    i
}

/// Skips the string starting at `p` (an opening quote). Returns the index after the closing
/// quote and whether it contains escapes.
#[inline(always)]
fn skip_string(b: &[u8], p: usize) -> Result<(usize, bool), JsonError> {
    let mut i = p + 1;
    let mut escaped = false;
    loop {
        // Eight bytes at a time (SWAR): the first quote, backslash or control byte.
        i = find_stop(b, i);
        match b.get(i) {
            None => return err(p, "unterminated string"),
            Some(b'"') => return Ok((i + 1, escaped)),
            Some(b'\\') => {}
            Some(_) => return err(i, "control character in string"),
        }
        escaped = true;
        match b.get(i + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
            Some(b'u') => {
                let hex = b.get(i + 2..i + 6).ok_or(JsonError {
                    at: i,
                    message: "truncated \\u escape",
                })?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return err(i, "invalid \\u escape");
                }
                i += 6;
            }
            _ => return err(i, "invalid escape"),
        }
    }
}

#[inline(always)]
fn skip_digits(b: &[u8], mut p: usize) -> usize {
    while b.get(p).is_some_and(u8::is_ascii_digit) {
        p += 1;
    }
    p
}

#[inline(always)]
fn skip_number(b: &[u8], p: usize) -> Result<usize, JsonError> {
    let mut i = p;
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    if b[i..].starts_with(b"Infinity") {
        return Ok(i + 8);
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = skip_digits(b, i + 1),
        _ => return err(i, "invalid number"),
    }
    if b.get(i) == Some(&b'.') {
        let j = skip_digits(b, i + 1);
        if j == i + 1 {
            return err(i, "digits expected after '.'");
        }
        i = j;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let j = skip_digits(b, i);
        if j == i {
            return err(i, "digits expected in exponent");
        }
        i = j;
    }
    Ok(i)
}

fn skip_value(b: &[u8], p: usize, depth: usize) -> Result<usize, JsonError> {
    if depth > MAX_DEPTH {
        return err(p, "nesting too deep");
    }
    match b.get(p) {
        Some(b'"') => skip_string(b, p).map(|(e, _)| e),
        Some(b'{') => {
            let mut i = skip_ws(b, p + 1);
            if b.get(i) == Some(&b'}') {
                return Ok(i + 1);
            }
            loop {
                if b.get(i) != Some(&b'"') {
                    return err(i, "expected a member name");
                }
                i = skip_ws(b, skip_string(b, i)?.0);
                if b.get(i) != Some(&b':') {
                    return err(i, "expected ':' after member name");
                }
                i = skip_ws(b, skip_value(b, skip_ws(b, i + 1), depth + 1)?);
                match b.get(i) {
                    Some(b',') => i = skip_ws(b, i + 1),
                    Some(b'}') => return Ok(i + 1),
                    _ => return err(i, "expected ',' or '}' in object"),
                }
            }
        }
        Some(b'[') => {
            let mut i = skip_ws(b, p + 1);
            if b.get(i) == Some(&b']') {
                return Ok(i + 1);
            }
            loop {
                i = skip_ws(b, skip_value(b, i, depth + 1)?);
                match b.get(i) {
                    Some(b',') => i = skip_ws(b, i + 1),
                    Some(b']') => return Ok(i + 1),
                    _ => return err(i, "expected ',' or ']' in array"),
                }
            }
        }
        Some(b't') if b[p..].starts_with(b"true") => Ok(p + 4),
        Some(b'f') if b[p..].starts_with(b"false") => Ok(p + 5),
        Some(b'n') if b[p..].starts_with(b"null") => Ok(p + 4),
        Some(b'N') if b[p..].starts_with(b"NaN") => Ok(p + 3),
        Some(b'I') if b[p..].starts_with(b"Infinity") => Ok(p + 8),
        Some(b'-' | b'0'..=b'9') => skip_number(b, p),
        Some(_) => err(p, "unexpected character"),
        None => err(p, "unexpected end of input"),
    }
}

/// Decodes the escapes of a string body (between the quotes).
fn unescape(inner: &str) -> Option<String> {
    let b = inner.as_bytes();
    let mut out = String::with_capacity(inner.len());
    let mut i = 0;
    while i < b.len() {
        let Some(off) = memchr::memchr(b'\\', &b[i..]) else {
            out.push_str(&inner[i..]);
            break;
        };
        out.push_str(&inner[i..i + off]);
        i += off;
        let c = match b.get(i + 1)? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = u32::from_str_radix(inner.get(i + 2..i + 6)?, 16).ok()?;
                i += 6;
                let code = if (0xD800..0xDC00).contains(&hi) {
                    // A surrogate pair: the low half must follow as another \u escape.
                    if inner.get(i..i + 2)? != "\\u" {
                        return None;
                    }
                    let lo = u32::from_str_radix(inner.get(i + 2..i + 6)?, 16).ok()?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return None;
                    }
                    i += 6;
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else {
                    hi
                };
                out.push(char::from_u32(code)?);
                continue;
            }
            _ => return None,
        };
        out.push(c);
        i += 2;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_borrow_and_validate() {
        let doc = r#" {"a":1,"b\n":"x\"y","c":[1,{"d":null}],"e":-1.5e3,"f":NaN} "#;
        let m: Vec<_> = members(doc)
            .expect("object")
            .collect::<Result<_, _>>()
            .expect("valid");
        assert_eq!(m.len(), 5);
        assert!(matches!(m[0].0, Cow::Borrowed("a")));
        assert_eq!(m[1].0, "b\n");
        assert_eq!(m[1].1.as_str().as_deref(), Some("x\"y"));
        assert_eq!(m[2].1.kind(), Kind::Array);
        assert_eq!(m[3].1.raw(), "-1.5e3");
        assert_eq!(m[4].1.kind(), Kind::Number);
    }

    #[test]
    fn rejects_malformed_input() {
        for bad in [
            "{\"a\":}",
            "{\"a\" 1}",
            "[1,]",
            "{\"a\":1,}",
            "\"abc",
            "01",
            "1.",
            "-",
            "tru",
            "{\"a\":\"\u{1}\"}",
            "\"\\x\"",
            "\"\\u12\"",
            "[1 2]",
            "{} x",
        ] {
            assert!(parse(bad).is_err(), "accepted {bad:?}");
        }
        let deep = "[".repeat(MAX_DEPTH + 5) + &"]".repeat(MAX_DEPTH + 5);
        assert!(parse(&deep).is_err());
    }

    proptest::proptest! {
        #[test]
        fn swar_scan_matches_bytewise(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80), start in 0usize..80) {
            let start = start.min(bytes.len());
            let naive = (start..bytes.len()).find(|&i| STOP[bytes[i] as usize]).unwrap_or(bytes.len());
            proptest::prop_assert_eq!(find_stop(&bytes, start), naive);
        }
    }

    #[test]
    fn integer_parsing_matches_std() {
        for t in [
            "0",
            "-0",
            "42",
            "-9223372036854775808",
            "9223372036854775807",
            "123456789012345678",
            "-",
            "",
            "1.5",
            "1e3",
            "+1",
            "99999999999999999999",
            "0x1",
        ] {
            assert_eq!(parse_i64(t), t.parse::<i64>().ok(), "{t:?}");
        }
    }

    #[test]
    fn unescapes_surrogate_pairs() {
        let v = parse(r#""\ud83d\ude00 \u00e9""#).expect("valid");
        assert_eq!(v.as_str().as_deref(), Some("😀 é"));
        assert_eq!(parse(r#""\ud83d""#).expect("scans").as_str(), None);
    }
}
