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
    /// A value the scanner has just validated (`plain`: a string without escapes).
    pub(crate) fn scanned(raw: &'a str, plain: bool) -> Self {
        Value { raw, plain }
    }

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
    /// wrapping: the hot loop's way to walk an object.
    #[inline]
    pub fn for_each_member<E>(
        &mut self,
        mut f: impl FnMut(&str, Value<'a>) -> Result<(), E>,
    ) -> Result<(), ScanError<E>> {
        let mut uncached = KeyOrder::disabled();
        self.for_each_member_in_order(&mut uncached, |_| (), |(), k, v| f(k, v))
    }

    /// Like [`Members::for_each_member`], but the member names are first compared with the
    /// names `order` remembers at the same positions; a name seen there before is recognised by
    /// one byte compare (no scan, no lookup) and `f` gets the meaning `classify` gave it then.
    /// Names that differ are scanned, classified and remembered for the next object.
    #[inline]
    pub fn for_each_member_in_order<T: Copy + PartialEq, E>(
        &mut self,
        order: &mut KeyOrder<T>,
        mut classify: impl FnMut(&str) -> T,
        mut f: impl FnMut(T, &str, Value<'a>) -> Result<(), E>,
    ) -> Result<(), ScanError<E>> {
        let text = self.text;
        let b = text.as_bytes();
        let mut p = self.pos;
        let mut first = self.first;
        self.done = true;
        for index in 0.. {
            // Compact JSON repeating the member remembered at this position, name and value:
            // one compare.
            if let Some(slot) = order.slots.get_mut(index)
                && !slot.member.is_empty()
                && let Some(at) = if first {
                    Some(p)
                } else {
                    (b.get(p) == Some(&b',')).then_some(p + 1)
                }
                && has_prefix(b.get(at..).unwrap_or_default(), &slot.member)
                && matches!(b.get(at + slot.member.len()), Some(b',' | b'}'))
            {
                let (start, end) = (at + slot.pattern.len(), at + slot.member.len());
                slot.changes = 0;
                first = false;
                p = end;
                if !slot.ignored {
                    let value = Value {
                        raw: &text[start..end],
                        plain: slot.value_plain,
                    };
                    f(slot.meaning, &slot.name, value).map_err(ScanError::Inner)?;
                }
                continue;
            }
            // Compact JSON with the name remembered at this position: one compare.
            let remember_values = order.remember_values;
            if let Some((slot, start)) = order.remembered(b, p, first, index) {
                // Here a remembered value can only repeat after whitespace following the colon.
                let repeated = remember_values
                    .then(|| slot.repeated_value_end(b, start))
                    .flatten();
                let (end, plain) = match repeated {
                    Some(end) => {
                        slot.changes = 0;
                        (end, slot.value_plain)
                    }
                    None => {
                        let (end, plain) = scan_value(b, start).map_err(ScanError::Json)?;
                        if remember_values {
                            slot.note_value(&b[start..end], plain);
                        }
                        (end, plain)
                    }
                };
                first = false;
                if slot.ignored {
                    p = end;
                    continue;
                }
                let value = Value {
                    raw: &text[start..end],
                    plain,
                };
                f(slot.meaning, &slot.name, value).map_err(ScanError::Inner)?;
                p = end;
                continue;
            }
            let Some(name_at) = member_start(b, p, first).map_err(ScanError::Json)? else {
                break;
            };
            first = false;
            let (meaning, name, name_end) = order
                .learn(text, name_at, index, &mut classify)
                .map_err(ScanError::Json)?;
            p = skip_ws(b, name_end);
            if b.get(p) != Some(&b':') {
                return Err(ScanError::Json(JsonError {
                    at: p,
                    message: "expected ':' after member name",
                }));
            }
            let start = skip_ws(b, p + 1);
            let (end, plain) = scan_value(b, start).map_err(ScanError::Json)?;
            if order.remember_values
                && let Some(slot) = order.slots.get_mut(index)
            {
                slot.note_value(&b[start..end], plain);
            }
            let value = Value {
                raw: &text[start..end],
                plain,
            };
            f(meaning, &name, value).map_err(ScanError::Inner)?;
            p = end;
        }
        // At the closing brace (checked by `member_start`).
        self.pos = skip_ws(b, p) + 1;
        self.first = false;
        Ok(())
    }

    /// Validates the remaining members like [`Members::for_each_member_in_order`] with a
    /// callback that ignores them, without building their values (an image the output does
    /// not need, such as an update's `before`).
    pub fn skip_in_order<T: Copy + PartialEq>(
        &mut self,
        order: &mut KeyOrder<T>,
        mut classify: impl FnMut(&str) -> T,
    ) -> Result<(), JsonError> {
        let b = self.text.as_bytes();
        let mut p = self.pos;
        let mut first = self.first;
        self.done = true;
        for index in 0.. {
            if let Some((_, start)) = order.remembered(b, p, first, index) {
                p = scan_value(b, start)?.0;
                first = false;
                continue;
            }
            let Some(name_at) = member_start(b, p, first)? else {
                break;
            };
            first = false;
            let (_, _, name_end) = order.learn(self.text, name_at, index, &mut classify)?;
            p = skip_ws(b, name_end);
            if b.get(p) != Some(&b':') {
                return err(p, "expected ':' after member name");
            }
            p = scan_value(b, skip_ws(b, p + 1))?.0;
        }
        self.pos = skip_ws(b, p) + 1;
        self.first = false;
        Ok(())
    }

    /// Pull mode through a [`KeyOrder`] (see [`Members::for_each_member_in_order`]): the next
    /// member's meaning and the offset where its value starts; consume the value as after
    /// [`Members::next_key`].
    #[inline]
    pub fn next_key_in_order<T: Copy + PartialEq>(
        &mut self,
        order: &mut KeyOrder<T>,
        index: usize,
        classify: impl FnMut(&str) -> T,
    ) -> Option<Result<(T, usize), JsonError>> {
        if self.done {
            return None;
        }
        let r = self.key_step_in_order(order, index, classify);
        if !matches!(r, Some(Ok(_))) {
            self.done = true;
        }
        r
    }

    #[inline(always)]
    fn key_step_in_order<T: Copy + PartialEq>(
        &mut self,
        order: &mut KeyOrder<T>,
        index: usize,
        mut classify: impl FnMut(&str) -> T,
    ) -> Option<Result<(T, usize), JsonError>> {
        let b = self.text.as_bytes();
        if let Some((slot, start)) = order.remembered(b, self.pos, self.first, index) {
            self.first = false;
            self.pos = start;
            return Some(Ok((slot.meaning, start)));
        }
        let name_at = match member_start(b, self.pos, self.first) {
            Ok(Some(at)) => at,
            Ok(None) => {
                self.pos = skip_ws(b, self.pos) + 1;
                return None;
            }
            Err(e) => return Some(Err(e)),
        };
        self.first = false;
        let (meaning, _, name_end) = match order.learn(self.text, name_at, index, &mut classify) {
            Ok(x) => x,
            Err(e) => return Some(Err(e)),
        };
        let p = skip_ws(b, name_end);
        if b.get(p) != Some(&b':') {
            return Some(err(p, "expected ':' after member name"));
        }
        self.pos = skip_ws(b, p + 1);
        Some(Ok((meaning, self.pos)))
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

    /// The text and the index of the first member, for a caller that consumes the members
    /// itself (then [`Members::consumed_to`]); `None` once members have been taken.
    pub(crate) fn unstarted(&self) -> Option<(&'a str, usize)> {
        (self.first && !self.done).then_some((self.text, self.pos))
    }

    /// Marks the object consumed up to `end`, the index just after its closing brace.
    pub(crate) fn consumed_to(&mut self, end: usize) {
        self.pos = end;
        self.first = false;
        self.done = true;
    }

    /// Skips the value starting at `start` (from [`Members::next_key`]) and returns it.
    #[inline]
    pub fn skip_value_at(&mut self, start: usize) -> Result<Value<'a>, JsonError> {
        let (end, plain) =
            scan_value(self.text.as_bytes(), start).inspect_err(|_| self.done = true)?;
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

    /// Continues after the value `text[start..end]`, which the caller has read itself (a
    /// plan), and returns it.
    pub(crate) fn read_through(&mut self, start: usize, end: usize) -> Value<'a> {
        self.pos = end;
        Value {
            raw: &self.text[start..end],
            plain: false,
        }
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

/// The member names of one object shape in the order last seen, each with what the caller made
/// of it. Debezium repeats the same names in the same order message after message (`source`
/// blocks, row images of one table), so [`Members::for_each_member_in_order`] recognises each
/// name of the next object by one byte compare against the name remembered at that position.
#[derive(Debug, Clone)]
pub struct KeyOrder<T> {
    slots: Vec<Slot<T>>,
    /// Positions remembered at most: an object with more members is still scanned, just not
    /// remembered past this (bounded memory whatever the input).
    capacity: usize,
    /// Whether values are remembered too. Worth it where most values repeat (`source` blocks);
    /// in row images most values change, and the attempt would cost a compare and a copy each.
    remember_values: bool,
    /// A meaning the caller does not use: members remembered with it are validated and passed
    /// over without calling the caller back.
    ignored: Option<T>,
}

#[derive(Debug, Clone)]
struct Slot<T> {
    /// `"name":` as raw bytes. The name never contains an escape, so input bytes equal to
    /// these are a valid member name followed by its colon.
    pattern: Vec<u8>,
    name: String,
    meaning: T,
    /// `"name":value` with the (already validated) value that followed last time, if short
    /// (else empty): many members repeat their value too (`"connector":"mysql"`), and a repeat
    /// is recognised, name and value, by one compare and needs no scan.
    member: Vec<u8>,
    value_plain: bool,
    /// The name's meaning is the order's `ignored` one.
    ignored: bool,
    /// How often in a row the value changed; past [`VALUE_CHANGES_MAX`] it is no longer
    /// remembered (a timestamp never repeats, and copying it each time would cost).
    changes: u8,
}

/// Values longer than this are not remembered.
const VALUE_MAX: usize = 48;
const VALUE_CHANGES_MAX: u8 = 8;

impl<T> Slot<T> {
    /// Where the value at `start` ends if it repeats the remembered one byte for byte.
    #[inline(always)]
    fn repeated_value_end(&self, b: &[u8], start: usize) -> Option<usize> {
        let value = self.member.get(self.pattern.len()..).unwrap_or_default();
        if value.is_empty() || !has_prefix(b.get(start..)?, value) {
            return None;
        }
        let end = start + value.len();
        // The value must end there too (`2` is a prefix of `23`); in compact JSON a member's
        // value is followed by a comma or the closing brace.
        matches!(b.get(end), Some(b',' | b'}')).then_some(end)
    }

    /// Remembers the value just scanned after this name (it differed from the remembered one).
    #[inline(always)]
    fn note_value(&mut self, raw: &[u8], plain: bool) {
        if self.changes >= VALUE_CHANGES_MAX {
            return;
        }
        self.changes += 1;
        self.member.clear();
        // A value that keeps changing is no longer remembered (nor compared).
        if self.changes < VALUE_CHANGES_MAX && raw.len() <= VALUE_MAX {
            self.value_plain = plain;
            self.member.extend_from_slice(&self.pattern);
            self.member.extend_from_slice(raw);
        }
    }
}

impl<T> Default for KeyOrder<T> {
    fn default() -> Self {
        KeyOrder {
            slots: Vec::new(),
            capacity: 256,
            remember_values: true,
            ignored: None,
        }
    }
}

impl<T: Copy + PartialEq> KeyOrder<T> {
    /// Without memory: every name is scanned and classified.
    fn disabled() -> Self {
        KeyOrder {
            slots: Vec::new(),
            capacity: 0,
            remember_values: false,
            ignored: None,
        }
    }

    /// Members classified as `meaning` are validated but not passed to the callback once their
    /// name is remembered (the callback must do nothing for them anyway).
    pub fn ignoring(meaning: T) -> Self {
        KeyOrder {
            ignored: Some(meaning),
            ..KeyOrder::default()
        }
    }

    /// The first `n` remembered names as `"name":` bytes, with their meanings; `None` unless all
    /// `n` are remembered. Right after a walk over an object of `n` members these are its names.
    pub fn remembered_names(&self, n: usize) -> Option<impl Iterator<Item = (&[u8], T)> + '_> {
        self.slots
            .get(..n)
            .map(|slots| slots.iter().map(|s| (&s.pattern[..], s.meaning)))
    }

    /// Remembers names only: for objects whose values mostly change (row images).
    pub fn names_only() -> Self {
        KeyOrder {
            remember_values: false,
            ..KeyOrder::default()
        }
    }

    /// The fast path for compact JSON: when the `index`-th member starts at `p` (after its
    /// comma unless `first`) with exactly the name remembered there, followed by its colon,
    /// returns the slot and where the value starts.
    #[inline(always)]
    fn remembered(
        &mut self,
        b: &[u8],
        p: usize,
        first: bool,
        index: usize,
    ) -> Option<(&mut Slot<T>, usize)> {
        let slot = self.slots.get_mut(index)?;
        let at = if first {
            p
        } else if b.get(p) == Some(&b',') {
            p + 1
        } else {
            return None;
        };
        let rest = b.get(at..)?;
        if !has_prefix(rest, &slot.pattern) {
            return None;
        }
        // Whitespace after the colon is rare but allowed.
        let start = skip_ws(b, at + slot.pattern.len());
        Some((slot, start))
    }

    /// The general path: the member name whose opening quote is at `at` is scanned and
    /// classified, and remembered as the `index`-th name. Returns its meaning, its text and
    /// the index after its closing quote.
    #[inline(always)]
    fn learn<'a>(
        &mut self,
        text: &'a str,
        at: usize,
        index: usize,
        classify: &mut impl FnMut(&str) -> T,
    ) -> Result<(T, Cow<'a, str>, usize), JsonError> {
        let b = text.as_bytes();
        let (end, escaped) = skip_string(b, at)?;
        let inner = &text[at + 1..end - 1];
        if escaped {
            let name = unescape(inner).ok_or(JsonError {
                at,
                message: "invalid escape in member name",
            })?;
            // An escaped name cannot be recognised by its bytes; nothing after it is remembered.
            self.slots.truncate(index);
            return Ok((classify(&name), Cow::Owned(name), end));
        }
        let meaning = classify(inner);
        let remembered = self.slots.len();
        let slot = match self.slots.get_mut(index) {
            Some(slot) => slot,
            None if index == remembered && index < self.capacity => {
                self.slots.push(Slot {
                    pattern: Vec::new(),
                    name: String::new(),
                    meaning,
                    member: Vec::new(),
                    value_plain: false,
                    ignored: false,
                    changes: 0,
                });
                &mut self.slots[index]
            }
            None => return Ok((meaning, Cow::Borrowed(inner), end)),
        };
        slot.pattern.clear();
        slot.pattern.extend_from_slice(&b[at..end]);
        slot.pattern.push(b':');
        slot.name.clear();
        slot.name.push_str(inner);
        slot.meaning = meaning;
        slot.ignored = self.ignored == Some(meaning);
        slot.member.clear();
        slot.changes = 0;
        Ok((meaning, Cow::Borrowed(inner), end))
    }
}

/// Before the next member of an object: skips whitespace and the separating comma. Returns the
/// index of the member name's opening quote, or `None` at the closing brace.
#[inline(always)]
fn member_start(b: &[u8], p: usize, first: bool) -> Result<Option<usize>, JsonError> {
    let mut p = skip_ws(b, p);
    match b.get(p) {
        Some(b'}') => return Ok(None),
        Some(b',') if !first => p = skip_ws(b, p + 1),
        Some(_) if first => {}
        Some(_) => return err(p, "expected ',' or '}' in object"),
        None => return err(p, "unterminated object"),
    }
    if b.get(p) != Some(&b'"') {
        return err(p, "expected a member name");
    }
    Ok(Some(p))
}

/// `hay.starts_with(pat)` by whole-word compares: member names are short, and a call to
/// `memcmp` would cost more than the compare itself.
#[inline(always)]
pub(crate) fn has_prefix(hay: &[u8], pat: &[u8]) -> bool {
    let n = pat.len();
    let Some(head) = hay.get(..n) else {
        return false;
    };
    match n {
        0..=3 => head.iter().zip(pat).all(|(x, y)| x == y),
        // Two overlapping words cover the common short names.
        4..=8 => {
            half_word(&head[..4]) == half_word(&pat[..4])
                && half_word(&head[n - 4..]) == half_word(&pat[n - 4..])
        }
        9..=16 => {
            word(&head[..8]) == word(&pat[..8]) && word(&head[n - 8..]) == word(&pat[n - 8..])
        }
        _ => {
            let mut i = 0;
            while i + 8 < n {
                if word(&head[i..i + 8]) != word(&pat[i..i + 8]) {
                    return false;
                }
                i += 8;
            }
            word(&head[n - 8..]) == word(&pat[n - 8..])
        }
    }
}

/// Eight bytes as one integer (the caller passes exactly eight).
#[inline(always)]
fn word(chunk: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(chunk);
    u64::from_le_bytes(w)
}

/// Four bytes as one integer (the caller passes exactly four).
#[inline(always)]
fn half_word(chunk: &[u8]) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(chunk);
    u32::from_le_bytes(w)
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
    let mut v: u64 = 0;
    let mut rest = digits;
    while let Some((chunk, tail)) = rest.split_first_chunk::<8>() {
        let w = u64::from_le_bytes(*chunk);
        if non_digit_mask(w) != 0 {
            return None;
        }
        v = v * 100_000_000 + eight_digits(w);
        rest = tail;
    }
    for &d in rest {
        let d = d.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + d as u64;
    }
    // At most 18 digits: below 10^18, so it fits in i64.
    let v = v as i64;
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

/// Sixteen bytes per step where SSE2 is part of the target (every x86_64 CPU). The one place
/// the workspace allows `unsafe`: the intrinsics are `unsafe` only because they need a CPU
/// feature, which this module is compiled only for; no memory is touched through them.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[allow(unsafe_code)]
mod sse2 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set_epi64x,
        _mm_set1_epi8,
    };

    /// Bit `k` set when byte `k` of the chunk (exactly 16 bytes) is `"`, `\\` or below 0x20.
    #[inline(always)]
    pub(super) fn stops(chunk: &[u8]) -> u32 {
        let lo = super::word(&chunk[..8]) as i64;
        let hi = super::word(&chunk[8..16]) as i64;
        // SAFETY: SSE2 is enabled for this build (the module's `cfg`); the operands are
        // values, not pointers.
        unsafe {
            // Two words into one register: the compiler makes it a single unaligned load.
            let x = _mm_set_epi64x(hi, lo);
            let quote = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'"' as i8));
            let slash = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'\\' as i8));
            // Unsigned x <= 0x1F exactly when max(x, 0x1F) == 0x1F.
            let low = _mm_set1_epi8(0x1F);
            let control = _mm_cmpeq_epi8(_mm_max_epu8(x, low), low);
            _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, slash), control)) as u32
        }
    }
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
pub(crate) fn find_stop(b: &[u8], mut i: usize) -> usize {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    while let Some(chunk) = b.get(i..i + 16) {
        let hits = sse2::stops(chunk);
        if hits != 0 {
            return i + hits.trailing_zeros() as usize;
        }
        i += 16;
    }
    while let Some(chunk) = b.get(i..i + 8) {
        let w = word(chunk);
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

/// The end of the run of ASCII digits at `p`, eight bytes per step while they last.
#[inline(always)]
pub(crate) fn skip_digits(b: &[u8], mut p: usize) -> usize {
    while let Some(chunk) = b.get(p..p + 8) {
        let non_digits = non_digit_mask(word(chunk));
        if non_digits != 0 {
            return p + (non_digits.trailing_zeros() / 8) as usize;
        }
        p += 8;
    }
    while b.get(p).is_some_and(u8::is_ascii_digit) {
        p += 1;
    }
    p
}

/// The value of the ASCII digits `b[start..end]` (already known to be digits, at most 16, with
/// `end >= 16` or at most 8 and `end >= 8`): whole-word loads ending at `end`, the bytes before
/// `start` replaced by '0'. `None` outside those bounds (the caller parses bytewise).
#[inline(always)]
pub(crate) fn digits_value(b: &[u8], start: usize, end: usize) -> Option<u64> {
    let n = end.checked_sub(start)?;
    match n {
        1..=8 => digits_before(b, end, n),
        9..=16 => Some(digits_before(b, end - 8, n - 8)? * 100_000_000 + digits_before(b, end, 8)?),
        _ => None,
    }
}

/// The value of the last `k` (1..=8) bytes before `at`, which are digits.
#[inline(always)]
fn digits_before(b: &[u8], at: usize, k: usize) -> Option<u64> {
    let w = word(b.get(at.checked_sub(8)?..at)?);
    let keep = u64::MAX << (8 * (8 - k));
    Some(eight_digits((w & keep) | ((LO * 0x30) & !keep)))
}

/// The value of eight ASCII digits loaded little-endian (first digit most significant): pairs,
/// then quads, then the whole, each step one multiply.
#[inline(always)]
fn eight_digits(w: u64) -> u64 {
    let w = w - LO * 0x30;
    let w = (w * 10 + (w >> 8)) & 0x00FF_00FF_00FF_00FF;
    let w = (w * 100 + (w >> 16)) & 0x0000_FFFF_0000_FFFF;
    (w * 10_000 + (w >> 32)) & 0xFFFF_FFFF
}

/// Bit 7 of each byte of `w` that is not an ASCII digit ('0'..='9' is 0x30..=0x39: the high
/// nibble is 3, and adding 6 does not carry into it).
#[inline(always)]
fn non_digit_mask(w: u64) -> u64 {
    let high_nibble_not_3 = (w & (LO * 0xF0)) ^ (LO * 0x30);
    let above_9 = (w.wrapping_add(LO * 0x06) & (LO * 0xF0)) ^ (LO * 0x30);
    // Any nonzero bit in a byte's lane marks it; fold each lane's bits onto its bit 7.
    let lanes = high_nibble_not_3 | above_9;
    (((lanes & !HI) + LO * 0x7F) | lanes) & HI
}

#[inline(always)]
pub(crate) fn skip_number(b: &[u8], p: usize) -> Result<usize, JsonError> {
    let mut i = p;
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = skip_digits(b, i + 1),
        Some(b'I') if b[i..].starts_with(b"Infinity") => return Ok(i + 8),
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

/// Skips the member or element value at `p`: scalars (nearly every value) without the general
/// recursive walk. Returns the end and whether the value is a string without escapes.
#[inline(always)]
pub(crate) fn scan_value(b: &[u8], p: usize) -> Result<(usize, bool), JsonError> {
    match b.get(p) {
        Some(b'"') => skip_string(b, p).map(|(end, escaped)| (end, !escaped)),
        Some(b'-' | b'0'..=b'9') => skip_number(b, p).map(|end| (end, false)),
        Some(b'n') if b[p..].starts_with(b"null") => Ok((p + 4, false)),
        _ => skip_value(b, p, 1).map(|end| (end, false)),
    }
}

/// Like [`skip_value`] for a nested value at `depth`, with the scalar cases inline.
#[inline(always)]
fn skip_nested(b: &[u8], p: usize, depth: usize) -> Result<usize, JsonError> {
    if depth > MAX_DEPTH {
        return err(p, "nesting too deep");
    }
    match b.get(p) {
        Some(b'"') => skip_string(b, p).map(|(end, _)| end),
        Some(b'-' | b'0'..=b'9') => skip_number(b, p),
        Some(b'n') if b[p..].starts_with(b"null") => Ok(p + 4),
        _ => skip_value(b, p, depth),
    }
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
                i = skip_ws(b, skip_nested(b, skip_ws(b, i + 1), depth + 1)?);
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
                i = skip_ws(b, skip_nested(b, i, depth + 1)?);
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

    proptest::proptest! {
        #[test]
        fn digit_words_match_parse(pad in "[ -~]{0,20}", digits in "[0-9]{1,16}") {
            let text = format!("{pad}{digits}");
            let b = text.as_bytes();
            let got = digits_value(b, pad.len(), b.len());
            if b.len() >= 8 && (digits.len() <= 8 || b.len() >= 16) {
                proptest::prop_assert_eq!(got, digits.parse::<u64>().ok());
            } else {
                proptest::prop_assert_eq!(got, None);
            }
        }

        #[test]
        fn swar_digits_match_bytewise(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40), start in 0usize..40) {
            let start = start.min(bytes.len());
            let naive = (start..bytes.len()).find(|&i| !bytes[i].is_ascii_digit()).unwrap_or(bytes.len());
            proptest::prop_assert_eq!(skip_digits(&bytes, start), naive);
        }

        #[test]
        fn integer_parsing_matches_std_on_digit_strings(text in "-?[0-9]{0,20}|[0-9/:]{1,20}") {
            proptest::prop_assert_eq!(parse_i64(&text), text.parse::<i64>().ok());
        }
    }

    /// Every member as (name, raw value) and whether the object ends the document, or the first
    /// error: through `order` or uncached.
    fn scan_all(
        doc: &str,
        order: Option<&mut KeyOrder<usize>>,
    ) -> Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        let mut iter = members(doc).map_err(|e| e.to_string())?;
        let mut push = |k: &str, v: Value| -> Result<(), ()> {
            out.push((k.to_owned(), v.raw().to_owned()));
            Ok(())
        };
        let r = match order {
            Some(order) => iter.for_each_member_in_order(order, str::len, |_, k, v| push(k, v)),
            None => iter.for_each_member(push),
        };
        r.map_err(|e| match e {
            ScanError::Json(e) => e.to_string(),
            ScanError::Inner(()) => "inner".into(),
        })?;
        out.push(("(whole document)".into(), iter.ends_document().to_string()));
        Ok(out)
    }

    const SHAPES: [&str; 3] = [
        r#"{"version":"1.1.1.Final","connector":"mysql","ts_ms":1589362329874,"snapshot":"false","db":"inventory","table":"products","gtid":null,"pos":2364}"#,
        r#"{"id":139,"name":"spare tire","description":"Professional 24 inch spare tire","weight":49.68}"#,
        r#"{"a":1, "bb" : [1,{"c":"d"}],"a_very_long_member_name_x":{"y":null},"e\u0041":true}"#,
    ];

    #[test]
    fn remembered_values_must_end_where_they_did() {
        let mut order = KeyOrder::default();
        let first = r#"{"a":2,"b":"x","c":null}"#;
        for doc in [
            first,
            first,
            r#"{"a":23,"b":"xy","c":nulll}"#,
            r#"{"a":2,"b":"x","c":null"#,
            r#"{"a": "b","b":"x"}"#,
        ] {
            assert_eq!(
                scan_all(doc, Some(&mut order)),
                scan_all(doc, None),
                "{doc}"
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// Remembered names and values must change nothing: a mutated object scans exactly as
        /// without them.
        #[test]
        fn key_order_scan_matches_uncached(shape in 0usize..3, warm in 0usize..3,
                                           edits in proptest::collection::vec((proptest::prelude::any::<usize>(), 0x20u8..0x7f, 0u8..3), 0..4)) {
            let mut doc = SHAPES[shape].as_bytes().to_vec();
            for (at, byte, how) in edits {
                let at = at % (doc.len() + 1);
                match how {
                    0 if at < doc.len() => doc[at] = byte,
                    1 => doc.insert(at, byte),
                    _ if at < doc.len() => { doc.remove(at); }
                    _ => {}
                }
            }
            let doc = String::from_utf8(doc).expect("ASCII edits");
            let mut order = KeyOrder::default();
            let _ = scan_all(SHAPES[warm], Some(&mut order));
            let expected = scan_all(&doc, None);
            proptest::prop_assert_eq!(scan_all(&doc, Some(&mut order)), expected.clone(), "{}", doc);
            // And again, now that the mutated names are remembered.
            proptest::prop_assert_eq!(scan_all(&doc, Some(&mut order)), expected.clone(), "again: {}", doc);
            // Skipping validates exactly as walking does, and ends in the same place.
            let skipped = {
                let mut order = KeyOrder::names_only();
                let _ = members(SHAPES[warm]).map(|mut m| m.skip_in_order(&mut order, str::len));
                members(&doc).map_err(|e| e.to_string()).and_then(|mut m| {
                    m.skip_in_order(&mut order, str::len).map_err(|e| e.to_string())?;
                    Ok(m.ends_document().to_string())
                })
            };
            proptest::prop_assert_eq!(
                skipped,
                expected.clone().map(|m| m.last().map(|(_, end)| end.clone()).unwrap_or_default()),
                "skip: {}", doc
            );
            let whole = expected.as_ref().is_ok_and(|m| m.last().is_some_and(|(_, end)| end == "true"));
            if whole && !doc.contains("NaN") && !doc.contains("Infinity") {
                proptest::prop_assert!(serde_json::from_str::<serde::de::IgnoredAny>(&doc).is_ok());
            }
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
