//! The `source` block of a JSON change event: the position and the table's name, read the
//! general way or by a plan learned from the blocks before.
//!
//! A connector's `source` blocks repeat each other except in a few values: MySQL's `ts_ms`,
//! `pos` and `thread`, PostgreSQL's `ts_ms`, `lsn`, `txId` and `sequence`. Once a block has been
//! read the general way it becomes a plan: the bytes between those values must repeat exactly
//! (one compare per run), the position's numbers are parsed where they stand, and values the
//! decoder ignores are only validated. Database, schema, table, binlog file and snapshot flag are
//! inside the compared runs, so what was made of them (shared `Arc`s, where the table's name
//! stands) is reused. Any other difference sends the block the general way, whose result then
//! becomes a plan.

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::Arc;

use decant_model::SourcePosition;

use crate::json::{self, KeyOrder, Kind as JsonType, Members, ScanError, Value};

/// A table named by a record's `source` (namespace, name), borrowed from the record where possible.
pub(crate) type TableRef<'p> = (Cow<'p, str>, Cow<'p, str>);

/// What a `source` block says: the position, and the table if it names one.
pub(crate) type SourceRead<'p> = (SourcePosition, Option<TableRef<'p>>);

/// The `source` members the decoder reads; the rest are only validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SourceField {
    TsMs,
    Snapshot,
    Db,
    Schema,
    Table,
    Lsn,
    TxId,
    Pos,
    Row,
    File,
    Scn,
    Other,
}

impl SourceField {
    pub(crate) fn of(name: &str) -> Self {
        match name {
            "ts_ms" => SourceField::TsMs,
            "snapshot" => SourceField::Snapshot,
            "db" => SourceField::Db,
            "schema" => SourceField::Schema,
            "table" | "collection" | "tableName" | "table_name" => SourceField::Table,
            "lsn" => SourceField::Lsn,
            "txId" => SourceField::TxId,
            "pos" => SourceField::Pos,
            "row" => SourceField::Row,
            "file" => SourceField::File,
            "scn" | "change_lsn" => SourceField::Scn,
            _ => SourceField::Other,
        }
    }

    /// Whether this member is one of the position's numbers (learning only: it builds a
    /// scratch position to ask [`SourceField::number`]).
    fn is_number(self) -> bool {
        self.number(&mut SourcePosition::default()).is_some()
    }

    /// The position's number this member sets, if it is one.
    fn number(self, p: &mut SourcePosition) -> Option<&mut Option<i64>> {
        match self {
            SourceField::TsMs => Some(&mut p.ts_ms),
            SourceField::Lsn => Some(&mut p.lsn),
            SourceField::TxId => Some(&mut p.tx_id),
            SourceField::Pos => Some(&mut p.pos),
            SourceField::Row => Some(&mut p.row),
            _ => None,
        }
    }
}

/// At most this many plans are kept: records of a few tables interleaved each find theirs.
const PLANS: usize = 4;

/// After this many blocks in a row that no plan fitted (a plan refined on each is the most a
/// connector's changing ignored members need)...
const LEARN_IN_A_ROW: u32 = 8;

/// ...plans are learned only from every this-many-th block: records of many tables interleaved
/// would otherwise pay for learning each time.
const RELEARN_EVERY: u32 = 32;

/// Reads `source` blocks; see the module documentation.
pub(crate) struct SourceReader {
    order: KeyOrder<SourceField>,
    last_file: Option<Arc<str>>,
    last_db: Option<Arc<str>>,
    /// The most recently fitting plan first.
    plans: Vec<SourcePlan>,
    /// Blocks in a row that no plan fitted.
    misses: u32,
}

impl Default for SourceReader {
    fn default() -> Self {
        SourceReader {
            order: KeyOrder::ignoring(SourceField::Other),
            last_file: None,
            last_db: None,
            plans: Vec::new(),
            misses: 0,
        }
    }
}

impl SourceReader {
    /// Reads the block the general way: every member, in any order and layout.
    pub(crate) fn read<'p>(
        &mut self,
        iter: &mut Members<'p>,
    ) -> Result<SourceRead<'p>, json::JsonError> {
        let mut p = SourcePosition::default();
        let (mut db, mut schema, mut table) = (None, None, None);
        let last_file = &mut self.last_file;
        let last_db = &mut self.last_db;
        iter.for_each_member_in_order(
            &mut self.order,
            SourceField::of,
            #[inline(always)]
            |field, _, v| -> Result<(), Infallible> {
                match field {
                    SourceField::Snapshot => p.snapshot = snapshot_flag(&v),
                    SourceField::Db => {
                        db = v.as_str();
                        if let Some(d) = &db {
                            p.db = Some(shared(last_db, d));
                        }
                    }
                    SourceField::Schema => schema = v.as_str(),
                    SourceField::Table => table = v.as_str(),
                    SourceField::File => {
                        if let Some(f) = v.as_str() {
                            p.file = Some(shared(last_file, &f));
                        }
                    }
                    SourceField::Scn => p.scn = v.as_str().map(|s| Arc::from(&*s)),
                    SourceField::Other => {}
                    number => {
                        if let Some(slot) = number.number(&mut p) {
                            *slot = v.as_i64();
                        }
                    }
                }
                Ok(())
            },
        )
        .map_err(|e| match e {
            ScanError::Json(e) => e,
            ScanError::Inner(never) => match never {},
        })?;
        Ok((
            p,
            table.map(|t| (schema.or(db).unwrap_or(Cow::Borrowed("")), t)),
        ))
    }

    /// Reads the block that starts at `start` in `text` by a plan, if one fits it: the index
    /// just after the block, and what it says. `None` sends the block the general way.
    #[inline]
    pub(crate) fn read_planned<'p>(
        &mut self,
        text: &'p str,
        start: usize,
    ) -> Option<(usize, SourceRead<'p>)> {
        for i in 0..self.plans.len() {
            if let Some(read) = self.plans[i].read(text, start) {
                self.misses = 0;
                if i > 0 {
                    self.plans.swap(0, i);
                }
                return Some(read);
            }
        }
        self.misses = self.misses.saturating_add(1);
        None
    }

    /// Makes a plan of `block`, which the general way has just read as `read`, unless plans
    /// keep missing (then only now and then).
    pub(crate) fn learn(&mut self, block: &str, read: &SourceRead<'_>) {
        if self.misses > LEARN_IN_A_ROW && !self.misses.is_multiple_of(RELEARN_EVERY) {
            return;
        }
        let Some((plan, refines)) = SourcePlan::of(block, &read.0, self.plans.first()) else {
            return;
        };
        if refines {
            // Values the decoder ignores turned out to change: the plan now skips them.
            self.plans[0] = plan;
        } else if self.misses <= 1 || self.misses.is_multiple_of(RELEARN_EVERY) {
            self.plans.insert(0, plan);
            self.plans.truncate(PLANS);
        }
    }
}

fn snapshot_flag(v: &Value) -> bool {
    match v.kind() {
        JsonType::Bool => v.as_bool() == Some(true),
        JsonType::String => v.as_str().as_deref() != Some("false"),
        _ => false,
    }
}

/// The last `Arc` made of a repeating name, or a new one.
fn shared(last: &mut Option<Arc<str>>, name: &str) -> Arc<str> {
    match last {
        Some(a) if **a == *name => a.clone(),
        _ => {
            let a: Arc<str> = Arc::from(name);
            *last = Some(a.clone());
            a
        }
    }
}

/// A learned block: runs of bytes that must repeat, and the values between them.
struct SourcePlan {
    text: Box<str>,
    /// Each member's name, and its value as a range of `text`.
    members: Vec<MemberSpan>,
    parts: Vec<Part>,
    /// The position the learned block gave: its shared names and snapshot flag hold for every
    /// block the plan fits; its numbers and SCN are replaced by each block's own.
    base: SourcePosition,
    /// Where the table's namespace (schema, else database) and name stand, inside runs.
    namespace: Option<Mark>,
    table: Option<Mark>,
}

#[derive(Debug, Clone)]
struct MemberSpan {
    name: Box<str>,
    value: (usize, usize),
    field: SourceField,
    /// Whether the plan reads this value (else it is part of a run).
    hole: bool,
}

#[derive(Debug, Clone, Copy)]
enum Part {
    /// `text[from..to]` repeats byte for byte.
    Same { from: u32, to: u32 },
    /// A number of the position: any JSON number, read as the general way reads it.
    Number(SourceField),
    /// The SCN (or change LSN): any JSON value, read as text.
    Scn,
    /// A member the decoder ignores whose value was seen to change: any valid JSON value.
    Skip,
}

/// A string's contents (without quotes) at `offset` within the run `part`.
#[derive(Debug, Clone, Copy)]
struct Mark {
    part: usize,
    offset: usize,
    len: usize,
}

impl SourcePlan {
    /// The plan of `block`, read the general way as `base`. Members the decoder ignores are
    /// compared as part of the runs, unless `previous` (a plan with the same member names) had
    /// them as holes or a different value: then they are holes. The flag says whether the new
    /// plan only refines `previous` (more holes, every compared value of the decoder's the
    /// same). `None` when a name the plan would lend from the text has escapes (it would have
    /// to be unescaped each time).
    fn of(
        block: &str,
        base: &SourcePosition,
        previous: Option<&SourcePlan>,
    ) -> Option<(SourcePlan, bool)> {
        let mut iter = json::members(block).ok()?;
        let mut members = Vec::new();
        while let Some(entry) = iter.next_key() {
            let (name, start) = entry.ok()?;
            let value = iter.skip_value_at(start).ok()?;
            let field = SourceField::of(&name);
            let hole = match field {
                SourceField::Scn => true,
                f if f.is_number() => value.kind() == JsonType::Number,
                _ => false,
            };
            members.push(MemberSpan {
                name: name.into(),
                value: (start, start + value.raw().len()),
                field,
                hole,
            });
        }
        if !iter.ends_document() {
            return None;
        }
        let similar = previous.filter(|prev| {
            prev.members.len() == members.len()
                && prev
                    .members
                    .iter()
                    .zip(&members)
                    .all(|(a, b)| a.name == b.name)
        });
        let mut refines = similar.is_some();
        let mut added = false;
        if let Some(prev) = similar {
            for (now, was) in members.iter_mut().zip(&prev.members) {
                let changed =
                    prev.text[was.value.0..was.value.1] != block[now.value.0..now.value.1];
                if now.field == SourceField::Other {
                    if (was.hole || changed) && !now.hole {
                        now.hole = true;
                        added |= !was.hole;
                    }
                } else if changed && !now.hole {
                    // A value the decoder reads from a run (the table, say): another plan.
                    refines = false;
                }
            }
        }
        let (mut db, mut schema, mut table) = (None, None, None);
        for m in &members {
            let place = match m.field {
                SourceField::Db => &mut db,
                SourceField::Schema => &mut schema,
                SourceField::Table => &mut table,
                _ => continue,
            };
            // A name lent from the text: its contents' place within the block.
            let (start, end) = m.value;
            let raw = &block[start..end];
            *place = if !raw.starts_with('"') {
                None
            } else if raw.contains('\\') {
                return None;
            } else {
                Some((start + 1, end - 1))
            };
        }
        let mut parts = Vec::new();
        let mut runs = Vec::new();
        let mut from = 0;
        for m in members.iter().filter(|m| m.hole) {
            let (start, end) = m.value;
            runs.push((parts.len(), from, start));
            parts.push(Part::Same {
                from: u32::try_from(from).ok()?,
                to: u32::try_from(start).ok()?,
            });
            parts.push(match m.field {
                SourceField::Scn => Part::Scn,
                SourceField::Other => Part::Skip,
                number => Part::Number(number),
            });
            from = end;
        }
        runs.push((parts.len(), from, block.len()));
        parts.push(Part::Same {
            from: u32::try_from(from).ok()?,
            to: u32::try_from(block.len()).ok()?,
        });
        let mark = |place: Option<(usize, usize)>| {
            let (start, end) = place?;
            let &(part, from, _) = runs.iter().find(|&&(_, f, t)| f <= start && end <= t)?;
            Some(Mark {
                part,
                offset: start - from,
                len: end - start,
            })
        };
        let plan = SourcePlan {
            text: block.into(),
            members,
            parts,
            base: base.clone(),
            namespace: mark(schema.or(db)),
            table: mark(table),
        };
        Some((plan, refines && added))
    }

    /// The block at `start` in `text` read by this plan, or `None` if it does not fit.
    #[inline]
    fn read<'p>(&self, text: &'p str, start: usize) -> Option<(usize, SourceRead<'p>)> {
        let b = text.as_bytes();
        let learned = self.text.as_bytes();
        let mut p = self.base.clone();
        let (mut namespace, mut table) = (None, None);
        let mut at = start;
        for (i, part) in self.parts.iter().enumerate() {
            match *part {
                Part::Same { from, to } => {
                    let run = &learned[from as usize..to as usize];
                    if !json::has_prefix(b.get(at..)?, run) {
                        return None;
                    }
                    for (mark, place) in
                        [(&self.namespace, &mut namespace), (&self.table, &mut table)]
                    {
                        if let Some(m) = mark
                            && m.part == i
                        {
                            *place = Some(&text[at + m.offset..at + m.offset + m.len]);
                        }
                    }
                    at += run.len();
                }
                Part::Number(field) => {
                    let (end, value) = number_at(text, at)?;
                    if let Some(slot) = field.number(&mut p) {
                        *slot = value;
                    }
                    at = end;
                }
                Part::Scn => {
                    let (end, plain) = json::scan_value(b, at).ok()?;
                    p.scn = Value::scanned(&text[at..end], plain)
                        .as_str()
                        .map(|s| Arc::from(&*s));
                    at = end;
                }
                Part::Skip => at = json::scan_value(b, at).ok()?.0,
            }
        }
        let table = table.map(|t| (Cow::Borrowed(namespace.unwrap_or("")), Cow::Borrowed(t)));
        Some((at, (p, table)))
    }
}

/// The JSON number at `at`: where it ends, and its value as [`Value::as_i64`] gives it.
/// Positive integers of up to 16 digits (nearly every position) are read a word at a time.
#[inline(always)]
fn number_at(text: &str, at: usize) -> Option<(usize, Option<i64>)> {
    let b = text.as_bytes();
    let end = json::skip_digits(b, at);
    let integer = matches!(end - at, 1..=16)
        && (b[at] != b'0' || end == at + 1)
        && !matches!(b.get(end), Some(b'.' | b'e' | b'E'));
    if integer && let Some(v) = json::digits_value(b, at, end) {
        // At most 16 digits: below 10^16, so it fits in i64.
        return Some((end, Some(v as i64)));
    }
    let end = json::skip_number(b, at).ok()?;
    Some((end, json::parse_i64(&text[at..end])))
}
