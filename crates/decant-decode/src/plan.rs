//! Row plans: one pass from a JSON row image straight into the column builders.
//!
//! A table's row images repeat the same member names in the same order message after message.
//! Once the general path (`Decoder::fill_image`) has decoded an image, its member sequence
//! becomes the table's plan: each step is `"name":` as bytes, the column, and how to convert the
//! value. The next image is then decoded by matching each step's name with one compare and
//! parsing the value where it stands (integers, plain strings, short decimals, booleans and nulls
//! need no separate scan and no dispatch through the general converter; other values take it).
//!
//! The plan accepts only what the general path accepts and produces the same columns: anything
//! it does not expect (another member order, whitespace, escapes in a name, a value the
//! converter refuses) makes it give up, and the caller rolls the row back and decodes it the
//! general way, which also words any error.

use std::sync::Arc;

use crate::batch::TableBatchBuilder;
use crate::convert::{self, Appended, ConvCtx};
use crate::json::{self, Value};
use crate::wire::{Wire, WireField};

#[derive(Debug, Default)]
pub(crate) struct RowPlan {
    /// The schema version the plan was made for; another version makes it stale.
    fields: Option<Arc<[WireField]>>,
    steps: Vec<Step>,
    /// Columns the image does not carry: they get nulls, as in the general path.
    absent: Vec<usize>,
}

#[derive(Debug)]
struct Step {
    /// `"name":` exactly as it appears in compact JSON, after a comma for every member but the
    /// first (one compare takes both).
    pattern: Box<[u8]>,
    col: usize,
    fast: Fast,
    /// The column's type has a TOAST placeholder form (compared on plain strings here).
    placeholder: bool,
}

/// The values a step parses itself; everything else goes through [`convert::append_json`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fast {
    Int,
    Bool,
    Text,
    Decimal { scale: i8, text: bool },
    General,
}

impl Fast {
    fn of(wire: &Wire) -> Fast {
        match wire {
            Wire::Int8
            | Wire::Int16
            | Wire::Int32
            | Wire::Int64
            | Wire::Year
            | Wire::Date
            // Times of day are range-checked by the builder: one out of range makes the step
            // give up, and the general path words the error.
            | Wire::TimeMicros
            | Wire::TimeNanos
            | Wire::SignedTimeMicros
            | Wire::SignedTimeNanos
            | Wire::TimestampNanos
            | Wire::MicroDuration
            | Wire::NanoDuration
            // PostgreSQL's ±infinity sentinels have 19 digits: the general path (which maps
            // them) gets them, as `int_at` takes at most 18.
            | Wire::TimestampMicros => Fast::Int,
            Wire::Bool => Fast::Bool,
            Wire::String | Wire::Enum | Wire::EnumSet | Wire::Xml | Wire::Interval => Fast::Text,
            Wire::Decimal { scale, text, .. } => Fast::Decimal {
                scale: *scale,
                text: *text,
            },
            _ => Fast::General,
        }
    }
}

impl RowPlan {
    /// Whether the plan was made for this schema version.
    pub(crate) fn fits(&self, fields: &Arc<[WireField]>) -> bool {
        self.fields.as_ref().is_some_and(|f| Arc::ptr_eq(f, fields))
    }

    /// Makes the plan from the member sequence the general path has just decoded: `"name":`
    /// patterns with their columns. No plan when a member had no column.
    pub(crate) fn learn<'n>(
        &mut self,
        fields: &Arc<[WireField]>,
        members: impl Iterator<Item = (&'n [u8], Option<usize>)>,
    ) {
        self.fields = None;
        self.steps.clear();
        let mut present = vec![false; fields.len()];
        for (pattern, col) in members {
            let Some(col) = col.filter(|&c| c < fields.len() && !present[c]) else {
                self.steps.clear();
                return;
            };
            present[col] = true;
            let wire = &fields[col].wire;
            let comma = if self.steps.is_empty() { "" } else { "," };
            self.steps.push(Step {
                pattern: [comma.as_bytes(), pattern].concat().into(),
                col,
                fast: Fast::of(wire),
                placeholder: wire.carries_placeholder(),
            });
        }
        self.absent = (0..fields.len()).filter(|&c| !present[c]).collect();
        self.fields = Some(fields.clone());
    }

    /// Decodes the object whose members start at `from` (just after its `{`) into one new row
    /// of `builder`; with `key`, only those columns (the others are null, their values only
    /// validated), as the general path's key-only mode does. Returns the index just after the
    /// closing brace, or `None` if the image differs from the plan in any way; the row may then
    /// be partly appended and must be rolled back.
    pub(crate) fn fill(
        &self,
        text: &str,
        from: usize,
        fields: &[WireField],
        key: Option<&[usize]>,
        builder: &mut TableBatchBuilder,
        ctx: &mut ConvCtx,
    ) -> Option<usize> {
        let b = text.as_bytes();
        let mut p = from;
        for step in &self.steps {
            if !json::has_prefix(b.get(p..)?, &step.pattern) {
                return None;
            }
            p += step.pattern.len();
            if key.is_some_and(|key| !key.contains(&step.col)) {
                p = json::scan_value(b, p).ok()?.0;
                continue;
            }
            let col = builder.columns.get_mut(step.col)?;
            // A TOAST placeholder: null here, and the column is reported unchanged.
            let mut unchanged = false;
            let first = *b.get(p)?;
            if first == b'n' {
                if !json::has_prefix(&b[p..], b"null") {
                    return None;
                }
                col.push_null();
                p += 4;
                continue;
            }
            let parsed = match step.fast {
                Fast::Int => match int_at(text, p) {
                    Some((v, end)) => {
                        col.push_int(v).ok()?;
                        Some(end)
                    }
                    None => None,
                },
                Fast::Bool if json::has_prefix(&b[p..], b"true") => {
                    col.push_bool(true);
                    Some(p + 4)
                }
                Fast::Bool if json::has_prefix(&b[p..], b"false") => {
                    col.push_bool(false);
                    Some(p + 5)
                }
                Fast::Text if first == b'"' => {
                    let end = json::find_stop(b, p + 1);
                    if b.get(end) == Some(&b'"') {
                        let raw = &text[p..end + 1];
                        // Text steps' wire types all take the text placeholder.
                        if step.placeholder && ctx.placeholder.is_text(raw) {
                            col.push_null();
                            unchanged = true;
                        } else {
                            col.push_bytes(&b[p + 1..end]);
                        }
                        Some(end + 1)
                    } else {
                        None
                    }
                }
                Fast::Decimal { scale, text: true } if first == b'"' => {
                    let end = json::find_stop(b, p + 1);
                    match (b.get(end) == Some(&b'"'))
                        .then(|| convert::short_plain_at_scale(&text[p + 1..end], scale))
                        .flatten()
                    {
                        Some(unscaled) => {
                            col.push_small_decimal(unscaled).ok()?;
                            Some(end + 1)
                        }
                        None => None,
                    }
                }
                Fast::Decimal { scale, .. } if first == b'-' || first.is_ascii_digit() => {
                    let end = json::skip_number(b, p).ok()?;
                    match convert::short_plain_at_scale(&text[p..end], scale) {
                        Some(unscaled) => {
                            col.push_small_decimal(unscaled).ok()?;
                            Some(end)
                        }
                        None => None,
                    }
                }
                _ => None,
            };
            p = match parsed {
                Some(end) => end,
                // Not a case the step parses itself: the general converter takes the value.
                None => {
                    let (end, plain) = json::scan_value(b, p).ok()?;
                    let value = Value::scanned(&text[p..end], plain);
                    let wire = &fields.get(step.col)?.wire;
                    unchanged =
                        convert::append_json(col, wire, &value, ctx).ok()? == Appended::Unchanged;
                    end
                }
            };
            if unchanged {
                builder.mark_unchanged(step.col);
            }
        }
        if b.get(p) != Some(&b'}') {
            return None;
        }
        match key {
            None => {
                for &col in &self.absent {
                    builder.columns.get_mut(col)?.push_null();
                }
            }
            Some(key) => {
                let filled = |col: usize| key.contains(&col) && !self.absent.contains(&col);
                for (col, builder) in builder.columns.iter_mut().enumerate() {
                    if !filled(col) {
                        builder.push_null();
                    }
                }
            }
        }
        Some(p + 1)
    }
}

/// A JSON integer at `p` (no fraction or exponent, at most 18 digits, no leading zero) that ends
/// where a member value ends, with the index after it.
#[inline(always)]
fn int_at(text: &str, p: usize) -> Option<(i64, usize)> {
    let b = text.as_bytes();
    let digits = if b.get(p) == Some(&b'-') { p + 1 } else { p };
    let end = json::skip_digits(b, digits);
    let n = end - digits;
    if n == 0 || n > 18 || (n > 1 && b[digits] == b'0') {
        return None;
    }
    if !matches!(b.get(end), Some(b',' | b'}')) {
        return None;
    }
    let magnitude = match json::digits_value(b, digits, end) {
        Some(v) => v as i64,
        None => json::parse_i64(&text[digits..end])?,
    };
    Some((if digits > p { -magnitude } else { magnitude }, end))
}
