//! Columnar output: per-column builders that decoded values are appended to directly, and the
//! [`ChangeBatch`] they finish into (an Arrow `RecordBatch` plus per-row op and position).
//!
//! Builders are decant's own rather than arrow's so that a row that fails half-way can be rolled
//! back ([`ColBuilder::truncate`]): a bad record must leave no trace in the batch.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Decimal256Array,
    DurationMicrosecondArray, DurationNanosecondArray, FixedSizeBinaryArray, Float32Array,
    Float64Array, Int8Array, Int16Array, Int32Array, Int64Array, ListArray, RecordBatch,
    StringArray, StructArray, Time64MicrosecondArray, Time64NanosecondArray,
    TimestampMicrosecondArray, TimestampNanosecondArray,
};
use arrow_buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer, i256};
use arrow_schema::{ArrowError, DataType};
use decant_model::{ChangeKind, ColumnType, SourceOp, SourcePosition, TableSchema, TimeUnit};

use crate::temporal;

/// Values of one column, in the narrowest storage that fits every logical type mapped onto it.
#[derive(Debug)]
enum ColData {
    Bool(Vec<bool>),
    /// Every integer-backed type: ints, dates, times, timestamps, durations.
    Int(Vec<i64>),
    Float(Vec<f64>),
    Dec128(Vec<i128>),
    Dec256(Vec<i256>),
    /// UTF-8 or binary bytes with i32 offsets.
    Var {
        offsets: Vec<i32>,
        data: Vec<u8>,
    },
    Fixed16(Vec<[u8; 16]>),
    List {
        offsets: Vec<i32>,
        child: Box<ColBuilder>,
    },
    Struct(Vec<ColBuilder>),
}

/// Appends values of one logical column type.
#[derive(Debug)]
pub struct ColBuilder {
    ty: ColumnType,
    valid: Vec<bool>,
    data: ColData,
    /// Exclusive bound of |decimal value|: 10^precision.
    decimal_bound: i256,
    /// The same bound for values that fit i128 (`u128::MAX` where 10^precision does not fit:
    /// every i128 is below it).
    small_decimal_bound: u128,
    /// Inclusive range of integer-backed values (narrow ints, dates and times of day are
    /// range-checked).
    int_range: (i64, i64),
}

/// A value that does not fit its column; the caller wraps it with the field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overflow(pub &'static str);

impl ColBuilder {
    pub fn new(ty: &ColumnType) -> Self {
        use ColumnType as C;
        let data = match ty {
            C::Boolean => ColData::Bool(Vec::new()),
            C::Int8
            | C::Int16
            | C::Int32
            | C::Int64
            | C::Date
            | C::Time(_)
            | C::ZonedTime
            | C::Timestamp(_)
            | C::TimestampTz(_)
            | C::Duration(_)
            | C::SignedTime(_) => ColData::Int(Vec::new()),
            C::Float32 | C::Float64 => ColData::Float(Vec::new()),
            C::Decimal { precision, .. } if *precision <= 38 => ColData::Dec128(Vec::new()),
            C::Decimal { .. } => ColData::Dec256(Vec::new()),
            C::DecimalText | C::String | C::Json | C::Xml | C::Enum | C::Binary => ColData::Var {
                offsets: vec![0],
                data: Vec::new(),
            },
            C::Uuid => ColData::Fixed16(Vec::new()),
            C::Geometry => ColData::Struct(vec![
                ColBuilder::new(&C::Binary),
                ColBuilder::new(&C::Int32),
            ]),
            C::Point => ColData::Struct(vec![
                ColBuilder::new(&C::Float64),
                ColBuilder::new(&C::Float64),
                ColBuilder::new(&C::Binary),
                ColBuilder::new(&C::Int32),
            ]),
            C::List(elem) => ColData::List {
                offsets: vec![0],
                child: Box::new(ColBuilder::new(elem)),
            },
            C::Struct(cols) => {
                ColData::Struct(cols.iter().map(|c| ColBuilder::new(&c.ty)).collect())
            }
        };
        let decimal_bound = match ty {
            C::Decimal { precision, .. } => i256::from_i128(10).wrapping_pow(*precision as u32),
            _ => i256::ZERO,
        };
        let small_decimal_bound = match ty {
            C::Decimal { precision, .. } => {
                10u128.checked_pow(*precision as u32).unwrap_or(u128::MAX)
            }
            _ => 0,
        };
        let int_range = match ty {
            C::Int8 => (i8::MIN as i64, i8::MAX as i64),
            C::Int16 => (i16::MIN as i64, i16::MAX as i64),
            C::Int32 | C::Date => (i32::MIN as i64, i32::MAX as i64),
            // A time of day, 24:00:00 included (PostgreSQL allows it).
            C::Time(TimeUnit::Micros) | C::ZonedTime => (0, temporal::MICROS_PER_DAY),
            C::Time(TimeUnit::Nanos) => (0, temporal::NANOS_PER_DAY),
            _ => (i64::MIN, i64::MAX),
        };
        ColBuilder {
            ty: ty.clone(),
            valid: Vec::new(),
            data,
            decimal_bound,
            small_decimal_bound,
            int_range,
        }
    }

    pub fn ty(&self) -> &ColumnType {
        &self.ty
    }

    pub fn len(&self) -> usize {
        self.valid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.valid.is_empty()
    }

    #[inline]
    pub fn push_null(&mut self) {
        self.valid.push(false);
        // The common kinds inline; the rest out of the hot loop.
        match &mut self.data {
            ColData::Int(v) => v.push(0),
            ColData::Var { offsets, data } => offsets.push(data.len() as i32),
            _ => self.push_null_data(),
        }
    }

    #[inline(never)]
    fn push_null_data(&mut self) {
        match &mut self.data {
            ColData::Bool(v) => v.push(false),
            ColData::Int(v) => v.push(0),
            ColData::Float(v) => v.push(0.0),
            ColData::Dec128(v) => v.push(0),
            ColData::Dec256(v) => v.push(i256::ZERO),
            ColData::Var { offsets, data } => offsets.push(data.len() as i32),
            ColData::Fixed16(v) => v.push([0; 16]),
            ColData::List { offsets, child } => offsets.push(child.len() as i32),
            ColData::Struct(children) => children.iter_mut().for_each(ColBuilder::push_null),
        }
    }

    #[inline]
    pub fn push_bool(&mut self, b: bool) {
        if let ColData::Bool(v) = &mut self.data {
            v.push(b);
            self.valid.push(true);
        } else {
            self.mismatch();
        }
    }

    /// Integer-backed values, already in the column's unit. Range-checked for narrow ints.
    #[inline]
    pub fn push_int(&mut self, i: i64) -> Result<(), Overflow> {
        let (lo, hi) = self.int_range;
        if i < lo || i > hi {
            return Err(Overflow("an integer within the column's range"));
        }
        if let ColData::Int(v) = &mut self.data {
            v.push(i);
            self.valid.push(true);
        } else {
            self.mismatch();
        }
        Ok(())
    }

    pub fn push_float(&mut self, f: f64) {
        if let ColData::Float(v) = &mut self.data {
            v.push(f);
            self.valid.push(true);
        } else {
            self.mismatch();
        }
    }

    /// An unscaled decimal already at the column's scale.
    pub fn push_decimal(&mut self, unscaled: i256) -> Result<(), Overflow> {
        if unscaled
            .checked_abs()
            .is_none_or(|a| a >= self.decimal_bound)
        {
            return Err(Overflow("a decimal within the column's precision"));
        }
        match &mut self.data {
            ColData::Dec128(v) => {
                v.push(
                    unscaled
                        .to_i128()
                        .ok_or(Overflow("a decimal within 38 digits"))?,
                );
            }
            ColData::Dec256(v) => v.push(unscaled),
            _ => {
                self.mismatch();
                return Ok(());
            }
        }
        self.valid.push(true);
        Ok(())
    }

    /// [`ColBuilder::push_decimal`] for a value that fits i128 (every short decimal), without
    /// 256-bit arithmetic.
    #[inline(always)]
    pub fn push_small_decimal(&mut self, unscaled: i128) -> Result<(), Overflow> {
        if unscaled.unsigned_abs() >= self.small_decimal_bound {
            return Err(Overflow("a decimal within the column's precision"));
        }
        match &mut self.data {
            ColData::Dec128(v) => v.push(unscaled),
            ColData::Dec256(v) => v.push(i256::from_i128(unscaled)),
            _ => {
                self.mismatch();
                return Ok(());
            }
        }
        self.valid.push(true);
        Ok(())
    }

    /// Text or bytes, for every variable-width column.
    #[inline]
    pub fn push_bytes(&mut self, b: &[u8]) {
        if let ColData::Var { offsets, data } = &mut self.data {
            data.extend_from_slice(b);
            offsets.push(data.len() as i32);
            self.valid.push(true);
        } else {
            self.mismatch();
        }
    }

    pub fn push_fixed16(&mut self, b: [u8; 16]) {
        if let ColData::Fixed16(v) = &mut self.data {
            v.push(b);
            self.valid.push(true);
        } else {
            self.mismatch();
        }
    }

    /// The element builder of a list column; call [`ColBuilder::end_list`] after appending.
    pub fn list_child(&mut self) -> &mut ColBuilder {
        match &mut self.data {
            ColData::List { child, .. } => child,
            _ => unreachable!("list_child on a non-list column is a decoder bug"),
        }
    }

    pub fn end_list(&mut self) {
        if let ColData::List { offsets, child } = &mut self.data {
            offsets.push(child.len() as i32);
            self.valid.push(true);
        }
    }

    /// The field builders of a struct-backed column; call [`ColBuilder::end_struct`] after.
    pub fn struct_children(&mut self) -> &mut [ColBuilder] {
        match &mut self.data {
            ColData::Struct(children) => children,
            _ => unreachable!("struct_children on a non-struct column is a decoder bug"),
        }
    }

    pub fn end_struct(&mut self) {
        self.valid.push(true);
    }

    /// A value type the column cannot hold: a decoder bug, never input-dependent, because the
    /// builder type is derived from the same wire type that chose the push call.
    fn mismatch(&self) {
        unreachable!("column of type {:?} got a value of another kind", self.ty)
    }

    /// Drops rows past `len` (rolls back a row that failed half-way).
    pub fn truncate(&mut self, len: usize) {
        // No early return when this column has no extra row: a list or struct that failed
        // half-way has already appended to its children.
        if len > self.valid.len() {
            return;
        }
        self.valid.truncate(len);
        match &mut self.data {
            ColData::Bool(v) => v.truncate(len),
            ColData::Int(v) => v.truncate(len),
            ColData::Float(v) => v.truncate(len),
            ColData::Dec128(v) => v.truncate(len),
            ColData::Dec256(v) => v.truncate(len),
            ColData::Var { offsets, data } => {
                offsets.truncate(len + 1);
                data.truncate(offsets[len] as usize);
            }
            ColData::Fixed16(v) => v.truncate(len),
            ColData::List { offsets, child } => {
                offsets.truncate(len + 1);
                child.truncate(offsets[len] as usize);
            }
            ColData::Struct(children) => children.iter_mut().for_each(|c| c.truncate(len)),
        }
    }

    /// Builds the Arrow array and resets the builder.
    pub fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let valid = take_sized(&mut self.valid);
        let nulls = if valid.iter().all(|v| *v) {
            None
        } else {
            Some(NullBuffer::from(valid))
        };
        let ty = self.ty.clone();
        let data_type = ty.arrow_type();
        use ColumnType as C;
        Ok(match &mut self.data {
            ColData::Bool(v) => Arc::new(BooleanArray::new(take_sized(v).into(), nulls)),
            ColData::Int(v) => {
                let v = take_sized(v);
                macro_rules! narrow {
                    ($arr:ty, $t:ty) => {
                        Arc::new(<$arr>::new(v.into_iter().map(|x| x as $t).collect(), nulls))
                            as ArrayRef
                    };
                }
                match ty {
                    C::Int8 => narrow!(Int8Array, i8),
                    C::Int16 => narrow!(Int16Array, i16),
                    C::Int32 => narrow!(Int32Array, i32),
                    C::Date => narrow!(Date32Array, i32),
                    C::Int64 => Arc::new(Int64Array::new(v.into(), nulls)),
                    C::Time(TimeUnit::Micros) | C::ZonedTime => {
                        Arc::new(Time64MicrosecondArray::new(v.into(), nulls))
                    }
                    C::Time(TimeUnit::Nanos) => {
                        Arc::new(Time64NanosecondArray::new(v.into(), nulls))
                    }
                    C::Timestamp(TimeUnit::Micros) => {
                        Arc::new(TimestampMicrosecondArray::new(v.into(), nulls))
                    }
                    C::Timestamp(TimeUnit::Nanos) => {
                        Arc::new(TimestampNanosecondArray::new(v.into(), nulls))
                    }
                    C::TimestampTz(TimeUnit::Micros) => Arc::new(
                        TimestampMicrosecondArray::new(v.into(), nulls).with_timezone("UTC"),
                    ),
                    C::TimestampTz(TimeUnit::Nanos) => Arc::new(
                        TimestampNanosecondArray::new(v.into(), nulls).with_timezone("UTC"),
                    ),
                    C::Duration(TimeUnit::Micros) | C::SignedTime(TimeUnit::Micros) => {
                        Arc::new(DurationMicrosecondArray::new(v.into(), nulls))
                    }
                    C::Duration(TimeUnit::Nanos) | C::SignedTime(TimeUnit::Nanos) => {
                        Arc::new(DurationNanosecondArray::new(v.into(), nulls))
                    }
                    other => unreachable!("{other:?} is not integer-backed"),
                }
            }
            ColData::Float(v) => {
                let v = take_sized(v);
                match ty {
                    C::Float32 => Arc::new(Float32Array::new(
                        v.into_iter().map(|x| x as f32).collect(),
                        nulls,
                    )),
                    _ => Arc::new(Float64Array::new(v.into(), nulls)),
                }
            }
            ColData::Dec128(v) => {
                let DataType::Decimal128(p, s) = data_type else {
                    unreachable!()
                };
                Arc::new(
                    Decimal128Array::new(ScalarBuffer::from(take_sized(v)), nulls)
                        .with_precision_and_scale(p, s)?,
                )
            }
            ColData::Dec256(v) => {
                let DataType::Decimal256(p, s) = data_type else {
                    unreachable!()
                };
                Arc::new(
                    Decimal256Array::new(ScalarBuffer::from(std::mem::take(v)), nulls)
                        .with_precision_and_scale(p, s)?,
                )
            }
            ColData::Var { offsets, data } => {
                let offsets = OffsetBuffer::new(ScalarBuffer::from(take_offsets(offsets)));
                let values = Buffer::from(take_sized(data));
                match ty {
                    C::Binary => Arc::new(BinaryArray::try_new(offsets, values, nulls)?),
                    _ => Arc::new(StringArray::try_new(offsets, values, nulls)?),
                }
            }
            ColData::Fixed16(v) => {
                let flat: Vec<u8> = std::mem::take(v).into_iter().flatten().collect();
                Arc::new(FixedSizeBinaryArray::try_new(16, flat.into(), nulls)?)
            }
            ColData::List { offsets, child } => {
                let DataType::List(field) = data_type else {
                    unreachable!()
                };
                let offsets =
                    OffsetBuffer::new(ScalarBuffer::from(std::mem::replace(offsets, vec![0])));
                Arc::new(ListArray::try_new(field, offsets, child.finish()?, nulls)?)
            }
            ColData::Struct(children) => {
                let DataType::Struct(fields) = data_type else {
                    unreachable!()
                };
                let arrays = children
                    .iter_mut()
                    .map(ColBuilder::finish)
                    .collect::<Result<Vec<_>, _>>()?;
                Arc::new(StructArray::try_new(fields, arrays, nulls)?)
            }
        })
    }
}

/// Takes the values for a finished batch, leaving room for as many in the next one: batches
/// are usually alike, so the builders do not grow from empty (and copy) batch after batch.
fn take_sized<T>(v: &mut Vec<T>) -> Vec<T> {
    let room = Vec::with_capacity(v.len());
    std::mem::replace(v, room)
}

/// [`take_sized`] for an offsets vector, which always starts with 0.
fn take_offsets<T: Default>(offsets: &mut Vec<T>) -> Vec<T> {
    let mut room = Vec::with_capacity(offsets.len());
    room.push(T::default());
    std::mem::replace(offsets, room)
}

/// Per-row facts that are not columns.
#[derive(Debug, Clone)]
pub struct RowMeta {
    /// Decoder-wide sequence number: restores input order across tables.
    pub seq: u64,
    pub kind: ChangeKind,
    /// The connector's own op code (c / r / u / d), for metadata.
    pub source_op: SourceOp,
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub position: SourcePosition,
    /// The other key of a primary-key change, when the connector marked one: the new key on the
    /// old key's delete (Debezium's `__debezium.newkey` header), the old key on the new key's
    /// create (`__debezium.oldkey`). A one-row batch of the same schema with only the key
    /// columns set. Lets the pipeline carry per-key state (TOAST values) over to the new key.
    pub key_change: Option<Arc<ChangeBatch>>,
}

/// Decoded changes of one table, columnar. For deletes only the key columns are set.
#[derive(Debug, Clone)]
pub struct ChangeBatch {
    pub schema: Arc<TableSchema>,
    pub rows: RecordBatch,
    pub meta: Vec<RowMeta>,
    unchanged_offsets: Vec<u32>,
    unchanged_columns: Vec<u16>,
}

impl ChangeBatch {
    pub fn len(&self) -> usize {
        self.meta.len()
    }

    pub fn is_empty(&self) -> bool {
        self.meta.is_empty()
    }

    /// Indexes of the columns whose value was not sent (TOAST) in this row; they are null in
    /// `rows` and must not overwrite the last known value.
    pub fn unchanged(&self, row: usize) -> &[u16] {
        let (a, b) = (
            self.unchanged_offsets[row] as usize,
            self.unchanged_offsets[row + 1] as usize,
        );
        &self.unchanged_columns[a..b]
    }
}

/// Accumulates rows of one table under one schema version.
#[derive(Debug)]
pub struct TableBatchBuilder {
    pub(crate) schema: Arc<TableSchema>,
    pub(crate) columns: Vec<ColBuilder>,
    meta: Vec<RowMeta>,
    unchanged_offsets: Vec<u32>,
    unchanged_columns: Vec<u16>,
}

impl TableBatchBuilder {
    pub fn new(schema: Arc<TableSchema>) -> Self {
        let columns = schema
            .columns
            .iter()
            .map(|c| ColBuilder::new(&c.ty))
            .collect();
        TableBatchBuilder {
            schema,
            columns,
            meta: Vec::new(),
            unchanged_offsets: vec![0],
            unchanged_columns: Vec::new(),
        }
    }

    pub fn rows(&self) -> usize {
        self.meta.len()
    }

    pub(crate) fn mark_unchanged(&mut self, column: usize) {
        self.unchanged_columns.push(column as u16);
    }

    /// Seals the row whose column values were just appended.
    pub(crate) fn commit_row(&mut self, meta: RowMeta) {
        self.meta.push(meta);
        self.unchanged_offsets
            .push(self.unchanged_columns.len() as u32);
    }

    /// Undoes a partially appended row.
    pub(crate) fn rollback_row(&mut self) {
        let rows = self.meta.len();
        self.columns.iter_mut().for_each(|c| c.truncate(rows));
        let keep = *self.unchanged_offsets.last().unwrap_or(&0) as usize;
        self.unchanged_columns.truncate(keep);
    }

    pub fn finish(&mut self) -> Result<ChangeBatch, ArrowError> {
        let arrays = self
            .columns
            .iter_mut()
            .map(ColBuilder::finish)
            .collect::<Result<Vec<_>, _>>()?;
        let rows = RecordBatch::try_new_with_options(
            self.schema.arrow.clone(),
            arrays,
            &arrow_array::RecordBatchOptions::new().with_row_count(Some(self.meta.len())),
        )?;
        Ok(ChangeBatch {
            schema: self.schema.clone(),
            rows,
            meta: take_sized(&mut self.meta),
            unchanged_offsets: take_offsets(&mut self.unchanged_offsets),
            unchanged_columns: std::mem::take(&mut self.unchanged_columns),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;

    #[test]
    fn rollback_leaves_no_trace() {
        let mut b = ColBuilder::new(&ColumnType::List(Box::new(ColumnType::String)));
        b.list_child().push_bytes(b"a");
        b.end_list();
        b.list_child().push_bytes(b"b");
        b.list_child().push_bytes(b"c");
        b.truncate(1);
        b.list_child().push_bytes(b"d");
        b.end_list();
        let arr = b.finish().expect("valid");
        let list = arr
            .as_any()
            .downcast_ref::<ListArray>()
            .expect("list array");
        assert_eq!(list.len(), 2);
        assert_eq!(list.value(1).len(), 1);
    }

    #[test]
    fn narrow_ints_are_range_checked() {
        let mut b = ColBuilder::new(&ColumnType::Int8);
        assert!(b.push_int(127).is_ok());
        assert!(b.push_int(128).is_err());
        let mut d = ColBuilder::new(&ColumnType::Decimal {
            precision: 4,
            scale: 2,
        });
        assert!(d.push_decimal(i256::from_i128(9999)).is_ok());
        assert!(d.push_decimal(i256::from_i128(10000)).is_err());
    }
}
