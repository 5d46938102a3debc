//! JSON value → column builder, driven by the column's [`Wire`] type. One function per encoding
//! family; no intermediate value tree. Errors say what was expected and what was found.

use crate::json::{Kind as JsonType, Value as LazyValue};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// URL-safe base64 with or without padding (Java's URL encoder pads; other producers do not).
const URL_SAFE_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

use crate::batch::{ColBuilder, Overflow};
use crate::decimal;
use crate::temporal;
use crate::wire::{BinaryText, Wire};

/// A value that does not fit its declared encoding. `path` is relative to the column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub expected: String,
    pub found: String,
}

impl FieldError {
    pub fn new(expected: impl Into<String>, found: &str) -> Self {
        FieldError {
            path: String::new(),
            expected: expected.into(),
            found: excerpt(found),
        }
    }

    fn under(mut self, segment: &str) -> Self {
        self.path = format!("{segment}{}", self.path);
        self
    }
}

impl From<Overflow> for FieldError {
    fn from(o: Overflow) -> Self {
        FieldError::new(o.0, "a value out of range")
    }
}

/// A short, single-line excerpt of offending input for error messages.
pub fn excerpt(raw: &str) -> String {
    const MAX: usize = 80;
    if raw.len() <= MAX {
        return raw.to_owned();
    }
    let mut end = MAX;
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &raw[..end], raw.len())
}

/// Whether a value was stored or was Debezium's "unchanged" placeholder (stored as null).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    Value,
    Unchanged,
}

/// The TOAST placeholder in each of the forms Debezium sends it.
#[derive(Debug, Clone)]
pub struct Placeholder {
    /// As a JSON string literal, quotes included: compared against raw bytes.
    quoted: String,
    /// Base64 of its bytes, quoted (bytea columns).
    quoted_b64: String,
    /// Its bytes as JSON int array text (int[] columns).
    as_int_array: String,
    /// `UUID.nameUUIDFromBytes(placeholder)` quoted (uuid[] columns).
    quoted_uuid: String,
    text: String,
}

impl Placeholder {
    pub fn new(text: &str) -> Self {
        let ints: Vec<String> = text.bytes().map(|b| b.to_string()).collect();
        Placeholder {
            quoted: format!("\"{text}\""),
            quoted_b64: format!("\"{}\"", STANDARD.encode(text.as_bytes())),
            as_int_array: format!("[{}]", ints.join(",")),
            quoted_uuid: format!("\"{}\"", name_uuid_v3(text.as_bytes())),
            text: text.to_owned(),
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The placeholder of text-like columns: the quoted text itself (raw JSON).
    #[inline]
    pub(crate) fn is_text(&self, raw: &str) -> bool {
        raw == self.quoted
    }

    /// Debezium's placeholder for this wire type, compared on raw JSON text.
    pub(crate) fn matches(&self, raw: &str, wire: &Wire) -> bool {
        match wire {
            Wire::Bytes | Wire::BinaryText(_) => raw == self.quoted_b64 || raw == self.quoted,
            Wire::Array(_) => {
                if !raw.starts_with('[') {
                    return false;
                }
                let inner = raw[1..raw.len() - 1].trim();
                inner == self.quoted
                    || inner == self.quoted_b64
                    || inner == self.quoted_uuid
                    || squeeze(raw) == self.as_int_array
            }
            Wire::Map => squeeze(raw) == format!("{{{}:{}}}", self.quoted, self.quoted),
            _ => self.is_text(raw),
        }
    }
}

fn squeeze(raw: &str) -> String {
    raw.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Java's `UUID.nameUUIDFromBytes`: MD5, version 3, IETF variant.
fn name_uuid_v3(bytes: &[u8]) -> String {
    let mut h = md5(bytes);
    h[6] = (h[6] & 0x0f) | 0x30;
    h[8] = (h[8] & 0x3f) | 0x80;
    format_uuid(&h)
}

pub fn format_uuid(b: &[u8; 16]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn md5(input: &[u8]) -> [u8; 16] {
    use md5::{Digest, Md5};
    Md5::digest(input).into()
}

pub struct ConvCtx<'c> {
    pub placeholder: &'c Placeholder,
    pub scratch: &'c mut Vec<u8>,
}

fn type_name(v: &LazyValue) -> &'static str {
    match v.kind() {
        JsonType::Null => "null",
        JsonType::Bool => "a boolean",
        JsonType::Number => "a number",
        JsonType::String => "a string",
        JsonType::Array => "an array",
        JsonType::Object => "an object",
    }
}

fn want(expected: &str, v: &LazyValue) -> FieldError {
    FieldError::new(expected, &format!("{} {}", type_name(v), excerpt(v.raw())))
}

fn int_of(v: &LazyValue) -> Result<i64, FieldError> {
    crate::json::parse_i64(v.raw()).ok_or_else(|| want("an integer", v))
}

fn str_of<'a>(v: &LazyValue<'a>) -> Result<std::borrow::Cow<'a, str>, FieldError> {
    v.as_str().ok_or_else(|| want("a string", v))
}

fn base64_into(text: &str, alphabet: BinaryText, out: &mut Vec<u8>) -> Result<(), FieldError> {
    out.clear();
    let res = match alphabet {
        BinaryText::Base64 => STANDARD.decode_vec(text, out),
        BinaryText::Base64UrlSafe => URL_SAFE_ANY_PADDING.decode_vec(text, out),
        BinaryText::Hex => {
            if !text.len().is_multiple_of(2) {
                return Err(FieldError::new("hex text", text));
            }
            for pair in text.as_bytes().chunks(2) {
                let s = std::str::from_utf8(pair).unwrap_or("");
                out.push(u8::from_str_radix(s, 16).map_err(|_| FieldError::new("hex text", text))?);
            }
            return Ok(());
        }
    };
    res.map_err(|_| FieldError::new("base64 text", text))
}

/// Bytes that arrived as text (Avro strings in `binary.handling.mode` base64/hex).
pub fn append_json_text_bytes(
    b: &mut ColBuilder,
    wire: &Wire,
    text: &str,
) -> Result<(), FieldError> {
    let alphabet = match wire {
        Wire::BinaryText(a) => *a,
        _ => BinaryText::Base64,
    };
    let mut buf = Vec::new();
    base64_into(text, alphabet, &mut buf)?;
    b.push_bytes(&buf);
    Ok(())
}

/// Converts one JSON value of `wire` type and appends it to `b`.
pub fn append_json(
    b: &mut ColBuilder,
    wire: &Wire,
    v: &LazyValue,
    ctx: &mut ConvCtx,
) -> Result<Appended, FieldError> {
    let raw = v.raw();
    if raw == "null" {
        b.push_null();
        return Ok(Appended::Value);
    }
    if wire.carries_placeholder() && ctx.placeholder.matches(raw, wire) {
        b.push_null();
        return Ok(Appended::Unchanged);
    }
    match wire {
        Wire::Bool => match v.as_bool() {
            Some(x) => b.push_bool(x),
            None => return Err(want("a boolean", v)),
        },
        Wire::Int8 | Wire::Int16 | Wire::Int32 | Wire::Int64 | Wire::Year => {
            b.push_int(int_of(v)?)?
        }
        Wire::Float32 | Wire::Float64 => b.push_float(float_of(v)?),
        Wire::String | Wire::Interval | Wire::Xml | Wire::Enum | Wire::EnumSet => {
            b.push_bytes(str_of(v)?.as_bytes())
        }
        Wire::Json | Wire::Map => match v.kind() {
            JsonType::String => {
                let text = str_of(v)?;
                let text: &str = &text;
                if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() {
                    return Err(FieldError::new("JSON document text", text));
                }
                b.push_bytes(text.as_bytes())
            }
            // Maps (and JSON already embedded) are kept as their JSON text.
            _ => b.push_bytes(raw.as_bytes()),
        },
        Wire::Bytes | Wire::Bits => {
            base64_into(&str_of(v)?, BinaryText::Base64, ctx.scratch)?;
            b.push_bytes(ctx.scratch)
        }
        Wire::BinaryText(alphabet) => {
            base64_into(&str_of(v)?, *alphabet, ctx.scratch)?;
            b.push_bytes(ctx.scratch)
        }
        Wire::Decimal { scale, text, .. } => {
            let unscaled = match v.kind() {
                JsonType::Number => exact_at_scale(raw, *scale)?,
                JsonType::String if *text => exact_at_scale(&str_of(v)?, *scale)?,
                JsonType::String => {
                    base64_into(&str_of(v)?, BinaryText::Base64, ctx.scratch)?;
                    decimal::from_twos_complement(ctx.scratch)
                        .ok_or_else(|| FieldError::new("a decimal of at most 76 digits", raw))?
                }
                _ => return Err(want("a decimal (base64 bytes, number or text)", v)),
            };
            b.push_decimal(unscaled)?
        }
        Wire::DecimalText => {
            let text = match v.kind() {
                JsonType::Number => std::borrow::Cow::Borrowed(raw),
                _ => str_of(v)?,
            };
            let text: &str = &text;
            // Non-finite values exist in PostgreSQL numeric and MongoDB Decimal128.
            let special = matches!(text, "NaN" | "NAN" | "Infinity" | "-Infinity");
            if !special && !is_short_plain_decimal(text) && decimal::parse_text(text).is_none() {
                return Err(FieldError::new("decimal text", text));
            }
            b.push_bytes(text.as_bytes())
        }
        Wire::VariableScaleDecimal => {
            let (mut scale, mut value) = (None, None);
            for entry in v
                .clone()
                .members()
                .ok_or_else(|| want("an object {scale, value}", v))?
            {
                let (k, val) = entry.map_err(|_| want("an object {scale, value}", v))?;
                match &*k {
                    "scale" => scale = Some(int_of(&val)?),
                    "value" => value = Some(str_of(&val)?.into_owned()),
                    _ => {}
                }
            }
            let (Some(scale), Some(value)) = (scale, value) else {
                return Err(want("an object {scale, value}", v));
            };
            let scale = variable_scale(scale).ok_or_else(|| want(VARIABLE_SCALE, v))?;
            base64_into(&value, BinaryText::Base64, ctx.scratch)?;
            let unscaled = decimal::from_twos_complement(ctx.scratch)
                .ok_or_else(|| FieldError::new("a decimal of at most 76 digits", raw))?;
            let mut s = String::new();
            decimal::format(unscaled, scale, &mut s);
            b.push_bytes(s.as_bytes())
        }
        Wire::Date => b.push_int(int_of(v)?)?,
        Wire::TimeMillis | Wire::TimeMicros | Wire::TimeNanos => {
            let count = int_of(v)?;
            b.push_int(time_of_day(count, wire).ok_or_else(|| want(TIME_OF_DAY, v))?)?
        }
        Wire::SignedTimeMillis => b.push_int(
            int_of(v)?
                .checked_mul(1000)
                .ok_or_else(|| want("a time span in ms within ±292,000 years", v))?,
        )?,
        Wire::SignedTimeMicros | Wire::SignedTimeNanos | Wire::TimestampNanos => {
            b.push_int(int_of(v)?)?
        }
        Wire::MicroDuration | Wire::NanoDuration => b.push_int(int_of(v)?)?,
        Wire::TimestampMillis => {
            let ms = int_of(v)?;
            // PostgreSQL's ±infinity sentinels (µs) come in ms as their thousandths, and fit.
            b.push_int(normalise_pg_infinity(ms.checked_mul(1000).ok_or_else(
                || want("a timestamp in ms within ±292,000 years of 1970", v),
            )?))?
        }
        Wire::TimestampMicros => b.push_int(normalise_pg_infinity(int_of(v)?))?,
        Wire::ZonedTimestamp | Wire::IsoTimestamp => {
            let text = str_of(v)?;
            let text: &str = &text;
            b.push_int(zoned_micros(text)?)?
        }
        Wire::ZonedTime | Wire::IsoTime => {
            let text = str_of(v)?;
            let text: &str = &text;
            let nanos = temporal::parse_offset_time(text)
                .ok_or_else(|| FieldError::new("an ISO time with offset", text))?;
            b.push_int(micros_exact(nanos as i128, text)?)?
        }
        Wire::IsoDate => {
            let text = str_of(v)?;
            let text: &str = &text;
            let days = temporal::parse_date(text.trim_end_matches('Z'))
                .ok_or_else(|| FieldError::new("an ISO date", text))?;
            b.push_int(days)?
        }
        Wire::Uuid => {
            let text = str_of(v)?;
            let text: &str = &text;
            b.push_fixed16(parse_uuid(text).ok_or_else(|| FieldError::new("a UUID", text))?)
        }
        Wire::Geometry | Wire::Point => append_geometry(b, wire, v, ctx)?,
        Wire::Array(elem) => {
            let iter = v.clone().elements().ok_or_else(|| want("an array", v))?;
            for (i, item) in iter.enumerate() {
                let item = item.map_err(|_| want("an array", v))?;
                append_json(b.list_child(), elem, &item, ctx)
                    .map_err(|e| e.under(&format!("[{i}]")))?;
            }
            b.end_list();
        }
        Wire::Struct(fields) => {
            let members = object_members(v)?;
            let children = b.struct_children();
            for (child, field) in children.iter_mut().zip(fields) {
                match members.iter().find(|(k, _)| k == &field.name) {
                    Some((_, val)) => {
                        append_json(child, &field.wire, val, ctx)
                            .map_err(|e| e.under(&format!(".{}", field.name)))?;
                    }
                    None => child.push_null(),
                }
            }
            b.end_struct();
        }
    }
    Ok(Appended::Value)
}

fn object_members<'a>(v: &LazyValue<'a>) -> Result<Vec<(String, LazyValue<'a>)>, FieldError> {
    let iter = v.clone().members().ok_or_else(|| want("an object", v))?;
    iter.map(|e| {
        e.map(|(k, val)| (k.into_owned(), val))
            .map_err(|_| want("an object", v))
    })
    .collect()
}

fn append_geometry(
    b: &mut ColBuilder,
    wire: &Wire,
    v: &LazyValue,
    ctx: &mut ConvCtx,
) -> Result<(), FieldError> {
    let members = object_members(v)?;
    let get = |name: &str| members.iter().find(|(k, _)| k == name).map(|(_, val)| val);
    let names: &[&str] = if *wire == Wire::Point {
        &["x", "y", "wkb", "srid"]
    } else {
        &["wkb", "srid"]
    };
    let wires: &[Wire] = if *wire == Wire::Point {
        &[Wire::Float64, Wire::Float64, Wire::Bytes, Wire::Int32]
    } else {
        &[Wire::Bytes, Wire::Int32]
    };
    let children = b.struct_children();
    for ((child, name), w) in children.iter_mut().zip(names).zip(wires) {
        match get(name) {
            Some(val) => {
                append_json(child, w, val, ctx).map_err(|e| e.under(&format!(".{name}")))?;
            }
            None if *name == "srid" || *name == "wkb" && *wire == Wire::Point => child.push_null(),
            None => return Err(want(&format!("a geometry with {name}"), v)),
        }
    }
    b.end_struct();
    Ok(())
}

fn float_of(v: &LazyValue) -> Result<f64, FieldError> {
    let raw = v.raw();
    match v.kind() {
        JsonType::Number => match plain_f64(raw) {
            Some(x) => Ok(x),
            None => raw.parse::<f64>().map_err(|_| want("a number", v)),
        },
        JsonType::String => match v.as_str().as_deref().unwrap_or("") {
            "NaN" => Ok(f64::NAN),
            "Infinity" | "+Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            _ => Err(want("a number, NaN or ±Infinity", v)),
        },
        _ => Err(want("a number", v)),
    }
}

/// Powers of ten that f64 holds exactly.
const EXACT_POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A plain decimal (`-12.5`, no exponent) with at most 15 digits, without the general parser:
/// the digits as an integer and the power of ten are both exact in f64, so one division is
/// correctly rounded, the same result as `str::parse` (Clinger's fast path). `None`: use it.
fn plain_f64(text: &str) -> Option<f64> {
    let (negative, body) = match text.as_bytes() {
        [b'-', rest @ ..] => (true, rest),
        other => (false, other),
    };
    if body.is_empty() || body.len() > 16 {
        return None;
    }
    let (mut mantissa, mut fraction_digits, mut point) = (0u64, 0usize, false);
    for &c in body {
        match c {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(c - b'0');
                fraction_digits += usize::from(point);
            }
            b'.' if !point => point = true,
            _ => return None,
        }
    }
    let digits = body.len() - usize::from(point);
    if digits == 0 || digits > 15 {
        return None;
    }
    let value = mantissa as f64 / EXACT_POWERS_OF_TEN[fraction_digits];
    Some(if negative { -value } else { value })
}

/// Whether `text` is certainly valid decimal text for [`decimal::parse_text`] without running
/// it: a short run of digits with at most one point and an optional sign. `false`: parse it.
fn is_short_plain_decimal(text: &str) -> bool {
    let body = match text.as_bytes() {
        [b'-' | b'+', rest @ ..] => rest,
        other => other,
    };
    let mut points = 0;
    body.len() <= 38
        && body.iter().any(u8::is_ascii_digit)
        && body.iter().all(|&c| {
            points += usize::from(c == b'.');
            c.is_ascii_digit() || (c == b'.' && points == 1)
        })
}

fn exact_at_scale(text: &str, scale: i8) -> Result<arrow_buffer::i256, FieldError> {
    if let Some(unscaled) = short_plain_at_scale(text, scale) {
        return Ok(arrow_buffer::i256::from_i128(unscaled));
    }
    let d = decimal::parse_text(text).ok_or_else(|| FieldError::new("decimal text", text))?;
    d.rescale(scale as i32).ok_or_else(|| {
        FieldError::new(
            format!("a decimal with at most {scale} fraction digits"),
            text,
        )
    })
}

/// The common case of [`exact_at_scale`] without the general parser's wide arithmetic: plain
/// `[-+]digits[.digits]` of at most 18 digits, with no more fraction digits than `scale`.
/// `None` for anything else (the general path then decides, and words the error).
#[inline]
pub(crate) fn short_plain_at_scale(text: &str, scale: i8) -> Option<i128> {
    let b = text.as_bytes();
    let (negative, body) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    if body.len() > 18 {
        return None;
    }
    // At most 18 digits: below 10^18, so the digits fit in i64.
    let (mut value, mut point) = (0i64, None);
    for (i, &c) in body.iter().enumerate() {
        let digit = c.wrapping_sub(b'0');
        if digit < 10 {
            value = value * 10 + i64::from(digit);
        } else if c == b'.' && point.is_none() {
            point = Some(i);
        } else {
            return None;
        }
    }
    if body.len() == usize::from(point.is_some()) {
        return None;
    }
    let fraction = point.map_or(0, |p| body.len() - p - 1);
    let up = usize::try_from(scale).ok()?.checked_sub(fraction)?;
    let unscaled = i128::from(value).checked_mul(*POW10.get(up)?)?;
    Some(if negative { -unscaled } else { unscaled })
}

/// 10^0 ..= 10^38, every power of ten an i128 holds.
const POW10: [i128; 39] = {
    let mut table = [1i128; 39];
    let mut i = 1;
    while i < 39 {
        table[i] = table[i - 1] * 10;
        i += 1;
    }
    table
};

/// What a VariableScaleDecimal's scale must be, for errors.
pub(crate) const VARIABLE_SCALE: &str =
    "a VariableScaleDecimal with a scale within ±32767 (PostgreSQL numeric: -1000 to 16383)";

/// A VariableScaleDecimal's scale, if it is one a database can have. Rendering writes |scale|
/// digits, so an absurd scale is refused rather than truncated or written out.
pub(crate) fn variable_scale(scale: i64) -> Option<i32> {
    i32::try_from(scale).ok().filter(|s| s.abs() <= 32_767)
}

/// What a time-of-day column takes, for errors.
pub(crate) const TIME_OF_DAY: &str = "a time of day (00:00:00 to 24:00:00)";

/// A time-of-day count of `wire`'s unit in the column's unit (µs; ns for NanoTime), if it lies
/// within one day (24:00:00 included, PostgreSQL allows it). A negative or longer value is no
/// time of day: MySQL's signed `TIME` is [`Wire::SignedTimeMicros`] and friends.
pub(crate) fn time_of_day(count: i64, wire: &Wire) -> Option<i64> {
    let (value, per_day) = match wire {
        Wire::TimeMillis => (count.checked_mul(1000)?, temporal::MICROS_PER_DAY),
        Wire::TimeNanos => (count, temporal::NANOS_PER_DAY),
        _ => (count, temporal::MICROS_PER_DAY),
    };
    (0..=per_day).contains(&value).then_some(value)
}

fn normalise_pg_infinity(micros: i64) -> i64 {
    match micros {
        temporal::PG_INFINITY_MICROS => temporal::INFINITY,
        temporal::PG_NEG_INFINITY_MICROS => temporal::NEG_INFINITY,
        other => other,
    }
}

fn micros_exact(nanos: i128, text: &str) -> Result<i64, FieldError> {
    if nanos % 1000 != 0 {
        return Err(FieldError::new(
            "at most microsecond precision (sub-microsecond digits would be lost)",
            text,
        ));
    }
    i64::try_from(nanos / 1000).map_err(|_| FieldError::new("a representable instant", text))
}

fn zoned_micros(text: &str) -> Result<i64, FieldError> {
    match text {
        "infinity" | "+infinity" => return Ok(temporal::INFINITY),
        "-infinity" => return Ok(temporal::NEG_INFINITY),
        _ => {}
    }
    let nanos = temporal::parse_offset_datetime(text)
        .ok_or_else(|| FieldError::new("an ISO date-time with offset", text))?;
    micros_exact(nanos, text)
}

pub fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = text.bytes().filter(|b| *b != b'-').collect();
    if hex.len() != 32 || text.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_uuid_matches_java() {
        assert_eq!(
            name_uuid_v3(b"__debezium_unavailable_value"),
            "b68a35a7-17ad-35b3-af2a-ae46edb4545a"
        );
    }

    #[test]
    fn placeholder_forms() {
        let p = Placeholder::new("__debezium_unavailable_value");
        assert!(p.matches("\"__debezium_unavailable_value\"", &Wire::String));
        assert!(p.matches("\"X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ==\"", &Wire::Bytes));
        assert!(p.matches(
            "[95,95,100,101,98,101,122,105,117,109,95,117,110,97,118,97,105,108,97,98,108,101,95,118,97,108,117,101]",
            &Wire::Array(Box::new(Wire::Int32))
        ));
        assert!(p.matches(
            "[\"__debezium_unavailable_value\"]",
            &Wire::Array(Box::new(Wire::String))
        ));
        assert!(!p.matches("\"real text\"", &Wire::String));
    }

    #[test]
    fn fast_number_paths_agree_with_the_general_ones() {
        for t in [
            "0",
            "-0",
            "0.0",
            "-0.0",
            "49.68",
            "1.5",
            "123456789012345",
            "1234567890123456",
            "0.1",
            "9.999999999999999",
            "-12.340",
            "1.",
            ".5",
            "00.100",
            "1e3",
            "1.2.3",
            "-",
            "",
            "+1",
            "12a",
            ".",
        ] {
            if let Some(x) = plain_f64(t) {
                assert_eq!(
                    Some(x.to_bits()),
                    t.parse::<f64>().ok().map(f64::to_bits),
                    "{t}"
                );
            }
            if is_short_plain_decimal(t) {
                assert!(decimal::parse_text(t).is_some(), "{t}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn plain_f64_matches_std(text in "-?[0-9]{0,9}(\\.[0-9]{0,9})?") {
            if let Some(x) = plain_f64(&text) {
                proptest::prop_assert_eq!(Some(x.to_bits()), text.parse::<f64>().ok().map(f64::to_bits));
            }
        }

        #[test]
        fn short_decimal_fast_path_matches_general(text in "[-+]?[0-9.]{0,20}", scale in -2i8..20) {
            let general = decimal::parse_text(&text).and_then(|d| d.rescale(scale as i32));
            if let Some(fast) = short_plain_at_scale(&text, scale) {
                proptest::prop_assert_eq!(Some(arrow_buffer::i256::from_i128(fast)), general);
            }
            // The fast path takes every short plain value that needs no rounding.
            if scale >= 0 && text.trim_start_matches(['-', '+']).len() <= 18 && general.is_some()
                && is_short_plain_decimal(&text)
                && text.split('.').nth(1).is_none_or(|f| f.len() <= scale as usize)
            {
                proptest::prop_assert!(short_plain_at_scale(&text, scale).is_some());
            }
        }

        #[test]
        fn short_plain_decimals_parse(text in "[-+]?[0-9.]{0,40}") {
            if is_short_plain_decimal(&text) {
                proptest::prop_assert!(decimal::parse_text(&text).is_some());
            }
        }
    }

    #[test]
    fn uuid_parse() {
        assert_eq!(
            parse_uuid("b68a35a7-17ad-35b3-af2a-ae46edb4545a").map(|b| format_uuid(&b)),
            Some("b68a35a7-17ad-35b3-af2a-ae46edb4545a".to_owned())
        );
        assert!(parse_uuid("not-a-uuid").is_none());
    }
}
