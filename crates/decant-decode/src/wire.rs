//! Wire types: how a column's values are *encoded* on the wire (Connect type + Debezium semantic
//! name + parameters), independent of JSON or Avro framing. Each maps to one logical
//! [`ColumnType`]. Built from a Connect JSON schema, an Avro writer schema, or a declared type.

use decant_model::{Column, ColumnType, TimeUnit};
use serde_json::Value as Json;

/// How a `bytes` column travels when `binary.handling.mode` turned it into a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryText {
    Base64,
    Base64UrlSafe,
    Hex,
}

/// The most digits an exact decimal column holds (Arrow Decimal256).
const MAX_DECIMAL_DIGITS: i8 = 76;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Wire {
    Bool,
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    String,
    Bytes,
    /// Connect Decimal: base64 two's complement in JSON (or a JSON number with
    /// `decimal.format=NUMERIC`), bytes in Avro. `text` = the value is decimal text instead
    /// (`decimal.handling.mode=string` declared as a decimal).
    Decimal {
        precision: Option<u8>,
        scale: i8,
        text: bool,
    },
    VariableScaleDecimal,
    /// Exact decimal text whose scale varies per value (DynamoDB `N`).
    DecimalText,
    Date,
    /// Time of day (`io.debezium.time.Time`, Connect `Time`): ms since midnight.
    TimeMillis,
    /// Time of day (`io.debezium.time.MicroTime`): µs since midnight.
    TimeMicros,
    /// Time of day (`io.debezium.time.NanoTime`): ns since midnight.
    TimeNanos,
    /// The same three encodings from a MySQL or MariaDB connector, whose `TIME` is a signed
    /// span (`-838:59:59` to `838:59:59`): ms, µs or ns, negative for negative spans.
    SignedTimeMillis,
    SignedTimeMicros,
    SignedTimeNanos,
    TimestampMillis,
    TimestampMicros,
    TimestampNanos,
    ZonedTimestamp,
    ZonedTime,
    IsoDate,
    IsoTime,
    IsoTimestamp,
    Year,
    MicroDuration,
    NanoDuration,
    /// `io.debezium.time.Interval`: ISO-8601 duration text, kept as text.
    Interval,
    Json,
    Xml,
    Uuid,
    Enum,
    EnumSet,
    Bits,
    BinaryText(BinaryText),
    Geometry,
    Point,
    Array(Box<Wire>),
    /// Connect map: rendered as a JSON object (string keys) or array of pairs.
    Map,
    Struct(Vec<WireField>),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WireField {
    pub name: String,
    pub wire: Wire,
    pub optional: bool,
}

impl Wire {
    pub fn column_type(&self) -> ColumnType {
        use ColumnType as C;
        match self {
            Wire::Bool => C::Boolean,
            Wire::Int8 => C::Int8,
            Wire::Int16 => C::Int16,
            Wire::Int32 | Wire::Year => C::Int32,
            Wire::Int64 => C::Int64,
            Wire::Float32 => C::Float32,
            Wire::Float64 => C::Float64,
            Wire::String | Wire::Interval => C::String,
            Wire::Bytes | Wire::Bits | Wire::BinaryText(_) => C::Binary,
            Wire::Decimal {
                precision, scale, ..
            } => C::Decimal {
                precision: precision.unwrap_or(38).max((*scale).max(1) as u8),
                scale: *scale,
            },
            Wire::VariableScaleDecimal | Wire::DecimalText => C::DecimalText,
            Wire::Date | Wire::IsoDate => C::Date,
            Wire::TimeMillis | Wire::TimeMicros | Wire::IsoTime => C::Time(TimeUnit::Micros),
            Wire::TimeNanos => C::Time(TimeUnit::Nanos),
            Wire::SignedTimeMillis | Wire::SignedTimeMicros => C::SignedTime(TimeUnit::Micros),
            Wire::SignedTimeNanos => C::SignedTime(TimeUnit::Nanos),
            Wire::TimestampMillis | Wire::TimestampMicros => C::Timestamp(TimeUnit::Micros),
            Wire::TimestampNanos => C::Timestamp(TimeUnit::Nanos),
            Wire::ZonedTimestamp | Wire::IsoTimestamp => C::TimestampTz(TimeUnit::Micros),
            Wire::ZonedTime => C::ZonedTime,
            Wire::MicroDuration => C::Duration(TimeUnit::Micros),
            Wire::NanoDuration => C::Duration(TimeUnit::Nanos),
            Wire::Json | Wire::Map => C::Json,
            Wire::Xml => C::Xml,
            Wire::Uuid => C::Uuid,
            Wire::Enum | Wire::EnumSet => C::Enum,
            Wire::Geometry => C::Geometry,
            Wire::Point => C::Point,
            Wire::Array(elem) => C::List(Box::new(elem.column_type())),
            Wire::Struct(fields) => C::Struct(fields.iter().map(WireField::column).collect()),
        }
    }

    /// Whether the TOAST placeholder can stand in for a value of this type.
    pub fn carries_placeholder(&self) -> bool {
        matches!(
            self,
            Wire::String
                | Wire::Json
                | Wire::Xml
                | Wire::Enum
                | Wire::EnumSet
                | Wire::Interval
                | Wire::Bytes
                | Wire::BinaryText(_)
                | Wire::Array(_)
                | Wire::Map
        )
    }

    /// The Debezium / Connect semantic name → wire type, given the Connect base type and the
    /// schema parameters. Unknown names fall back to the base type.
    pub fn from_connect(
        base: &str,
        name: Option<&str>,
        params: &dyn Fn(&str) -> Option<String>,
        children: ConnectChildren,
    ) -> Result<Wire, String> {
        let by_base = |base: &str| -> Result<Wire, String> {
            Ok(match base {
                "boolean" => Wire::Bool,
                "int8" => Wire::Int8,
                "int16" => Wire::Int16,
                "int32" => Wire::Int32,
                "int64" => Wire::Int64,
                "float" | "float32" => Wire::Float32,
                "double" | "float64" => Wire::Float64,
                "string" => match params("__debezium.source.column.type")
                    .as_deref()
                    .map(str::to_ascii_uppercase)
                    .as_deref()
                {
                    // binary.handling.mode=base64/hex leaves only this parameter to say it was bytes.
                    Some(
                        "BYTEA" | "BLOB" | "BINARY" | "VARBINARY" | "LONGBLOB" | "MEDIUMBLOB"
                        | "TINYBLOB",
                    ) => match params("decant.binary.mode").as_deref() {
                        Some("hex") => Wire::BinaryText(BinaryText::Hex),
                        Some("base64-url-safe") => Wire::BinaryText(BinaryText::Base64UrlSafe),
                        Some("base64") => Wire::BinaryText(BinaryText::Base64),
                        _ => Wire::String,
                    },
                    _ => Wire::String,
                },
                "bytes" => Wire::Bytes,
                "array" => match children {
                    ConnectChildren::Items(w) => Wire::Array(Box::new(w)),
                    _ => return Err("array schema without items".into()),
                },
                "map" => Wire::Map,
                "struct" => match children {
                    ConnectChildren::Fields(f) => Wire::Struct(f),
                    _ => Wire::Struct(Vec::new()),
                },
                other => return Err(format!("unknown Connect type {other:?}")),
            })
        };
        let Some(name) = name else {
            return by_base(base);
        };
        Ok(match name {
            "org.apache.kafka.connect.data.Decimal" => {
                let scale = params("scale")
                    .ok_or("Decimal schema without scale parameter")?
                    .parse::<i8>()
                    .map_err(|e| format!("Decimal scale: {e}"))?;
                if scale > MAX_DECIMAL_DIGITS {
                    return Err(format!(
                        "Decimal scale {scale}: more than {MAX_DECIMAL_DIGITS} fraction digits"
                    ));
                }
                let precision = params("connect.decimal.precision")
                    .and_then(|p| p.parse::<u8>().ok())
                    .filter(|p| *p > 0 && *p <= 76);
                Wire::Decimal {
                    precision,
                    scale,
                    text: false,
                }
            }
            "io.debezium.data.VariableScaleDecimal" => Wire::VariableScaleDecimal,
            "org.apache.kafka.connect.data.Date" | "io.debezium.time.Date" => Wire::Date,
            "org.apache.kafka.connect.data.Time" | "io.debezium.time.Time" => Wire::TimeMillis,
            "io.debezium.time.MicroTime" => Wire::TimeMicros,
            "io.debezium.time.NanoTime" => Wire::TimeNanos,
            "org.apache.kafka.connect.data.Timestamp" | "io.debezium.time.Timestamp" => {
                Wire::TimestampMillis
            }
            "io.debezium.time.MicroTimestamp" => Wire::TimestampMicros,
            "io.debezium.time.NanoTimestamp" => Wire::TimestampNanos,
            "io.debezium.time.ZonedTimestamp" => Wire::ZonedTimestamp,
            "io.debezium.time.ZonedTime" => Wire::ZonedTime,
            "io.debezium.time.IsoDate" => Wire::IsoDate,
            "io.debezium.time.IsoTime" => Wire::IsoTime,
            "io.debezium.time.IsoTimestamp" => Wire::IsoTimestamp,
            "io.debezium.time.Year" => Wire::Year,
            "io.debezium.time.MicroDuration" => Wire::MicroDuration,
            "io.debezium.time.NanoDuration" => Wire::NanoDuration,
            "io.debezium.time.Interval" => Wire::Interval,
            "io.debezium.data.Json" => Wire::Json,
            "io.debezium.data.Xml" => Wire::Xml,
            "io.debezium.data.Uuid" => Wire::Uuid,
            "io.debezium.data.Enum" => Wire::Enum,
            "io.debezium.data.EnumSet" => Wire::EnumSet,
            "io.debezium.data.Bits" => Wire::Bits,
            "io.debezium.data.geometry.Geometry" | "io.debezium.data.geometry.Geography" => {
                Wire::Geometry
            }
            "io.debezium.data.geometry.Point" => Wire::Point,
            _ => by_base(base)?,
        })
    }

    /// A declared column type from configuration: a Connect base type, a Debezium semantic
    /// name, or a short alias (`decimal(10,2)`, `micro_timestamp`, `json` …).
    pub fn from_declared(text: &str) -> Result<Wire, String> {
        let t = text.trim();
        let lower = t.to_ascii_lowercase();
        if let Some(inner) = lower
            .strip_prefix("array<")
            .and_then(|r| r.strip_suffix('>'))
        {
            return Ok(Wire::Array(Box::new(Wire::from_declared(inner)?)));
        }
        for (prefix, text_mode) in [("decimal_string(", true), ("decimal(", false)] {
            if let Some(args) = lower.strip_prefix(prefix).and_then(|r| r.strip_suffix(')')) {
                let (p, s) = args
                    .split_once(',')
                    .ok_or_else(|| format!("{t}: expected decimal(precision,scale)"))?;
                let precision: u8 = p.trim().parse().map_err(|e| format!("{t}: {e}"))?;
                let scale: i8 = s.trim().parse().map_err(|e| format!("{t}: {e}"))?;
                if !(1..=MAX_DECIMAL_DIGITS.unsigned_abs()).contains(&precision)
                    || scale > MAX_DECIMAL_DIGITS
                {
                    return Err(format!(
                        "{t}: precision and scale must be at most {MAX_DECIMAL_DIGITS} (precision at least 1)"
                    ));
                }
                return Ok(Wire::Decimal {
                    precision: Some(precision),
                    scale,
                    text: text_mode,
                });
            }
        }
        let alias = match lower.as_str() {
            "bool" | "boolean" => Some(Wire::Bool),
            "tinyint" | "int8" => Some(Wire::Int8),
            "smallint" | "int16" => Some(Wire::Int16),
            "int" | "integer" | "int32" => Some(Wire::Int32),
            "bigint" | "long" | "int64" => Some(Wire::Int64),
            "float" | "float32" | "real" => Some(Wire::Float32),
            "double" | "float64" => Some(Wire::Float64),
            "string" | "text" | "varchar" => Some(Wire::String),
            "bytes" | "binary" => Some(Wire::Bytes),
            "bytes_base64" => Some(Wire::BinaryText(BinaryText::Base64)),
            "bytes_base64_url_safe" => Some(Wire::BinaryText(BinaryText::Base64UrlSafe)),
            "bytes_hex" => Some(Wire::BinaryText(BinaryText::Hex)),
            "variable_scale_decimal" => Some(Wire::VariableScaleDecimal),
            "decimal_text" => Some(Wire::DecimalText),
            "date" => Some(Wire::Date),
            "time" | "time_millis" => Some(Wire::TimeMillis),
            "micro_time" => Some(Wire::TimeMicros),
            "nano_time" => Some(Wire::TimeNanos),
            // MySQL / MariaDB TIME: MicroTime (the connectors' default) or Connect Time (ms,
            // `time.precision.mode=connect`), signed.
            "mysql_time" => Some(Wire::SignedTimeMicros),
            "mysql_time_millis" => Some(Wire::SignedTimeMillis),
            "timestamp" | "timestamp_millis" => Some(Wire::TimestampMillis),
            "micro_timestamp" => Some(Wire::TimestampMicros),
            "nano_timestamp" => Some(Wire::TimestampNanos),
            "zoned_timestamp" | "timestamptz" => Some(Wire::ZonedTimestamp),
            "zoned_time" | "timetz" => Some(Wire::ZonedTime),
            "year" => Some(Wire::Year),
            "micro_duration" => Some(Wire::MicroDuration),
            "interval" => Some(Wire::Interval),
            "json" | "jsonb" => Some(Wire::Json),
            "xml" => Some(Wire::Xml),
            "uuid" => Some(Wire::Uuid),
            "enum" => Some(Wire::Enum),
            "set" | "enum_set" => Some(Wire::EnumSet),
            "bits" => Some(Wire::Bits),
            "geometry" => Some(Wire::Geometry),
            "point" => Some(Wire::Point),
            _ => None,
        };
        if let Some(w) = alias {
            return Ok(w);
        }
        // A Debezium / Connect semantic name; its base type does not matter for declared columns
        // except through the name itself.
        match Wire::from_connect("string", Some(t), &|_| None, ConnectChildren::None) {
            Ok(Wire::String) => Err(format!("unknown declared column type {t:?}")),
            other => other,
        }
    }
}

impl WireField {
    pub fn column(&self) -> Column {
        Column::new(&self.name, self.wire.column_type(), self.optional)
    }
}

/// The database family a change event's connector reads, where it changes what a wire type
/// means. Told by the name of the envelope's `source` schema; derived once per value schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceKind {
    /// PostgreSQL, SQL Server, Oracle, Db2 …: the wire types mean what their names say.
    #[default]
    Generic,
    /// MySQL and MariaDB: a `Time` / `MicroTime` / `NanoTime` value is a signed `TIME` span
    /// (`-838:59:59` to `838:59:59`), not a time of day.
    MySql,
}

impl SourceKind {
    /// From the full name of the envelope's `source` schema (Connect `name`, Avro
    /// `connect.name` or namespace + name).
    pub fn of_source_schema(name: Option<&str>) -> SourceKind {
        match name {
            Some("io.debezium.connector.mysql.Source" | "io.debezium.connector.mariadb.Source") => {
                SourceKind::MySql
            }
            _ => SourceKind::Generic,
        }
    }

    /// A row image's fields as this kind of source means them.
    pub fn row_fields(self, fields: Vec<WireField>) -> Vec<WireField> {
        match self {
            SourceKind::Generic => fields,
            SourceKind::MySql => fields
                .into_iter()
                .map(|f| WireField {
                    wire: f.wire.signed_times(),
                    ..f
                })
                .collect(),
        }
    }
}

impl Wire {
    /// This wire type with every time of day read as a signed `TIME` span (MySQL, MariaDB).
    fn signed_times(self) -> Wire {
        match self {
            Wire::TimeMillis => Wire::SignedTimeMillis,
            Wire::TimeMicros => Wire::SignedTimeMicros,
            Wire::TimeNanos => Wire::SignedTimeNanos,
            Wire::Array(elem) => Wire::Array(Box::new(elem.signed_times())),
            Wire::Struct(fields) => Wire::Struct(SourceKind::MySql.row_fields(fields)),
            other => other,
        }
    }
}

pub enum ConnectChildren {
    None,
    Items(Wire),
    Fields(Vec<WireField>),
}

/// Parses one Connect JSON schema node (`{"type":…, "name":…, "parameters":…, "fields":…}`).
pub fn connect_wire(node: &Json) -> Result<Wire, String> {
    let base = node
        .get("type")
        .and_then(Json::as_str)
        .ok_or("schema node without \"type\"")?;
    let name = node.get("name").and_then(Json::as_str);
    let params = node.get("parameters");
    let param = |k: &str| -> Option<String> {
        params
            .and_then(|p| p.get(k))
            .and_then(|v| v.as_str().map(str::to_owned))
    };
    let children = match base {
        "array" => ConnectChildren::Items(connect_wire(
            node.get("items").ok_or("array schema without items")?,
        )?),
        "struct" => ConnectChildren::Fields(connect_fields(node)?),
        _ => ConnectChildren::None,
    };
    Wire::from_connect(base, name, &param, children)
}

/// The fields of a Connect `struct` schema node.
pub fn connect_fields(node: &Json) -> Result<Vec<WireField>, String> {
    let Some(fields) = node.get("fields").and_then(Json::as_array) else {
        return Ok(Vec::new());
    };
    fields
        .iter()
        .map(|f| {
            let name = f
                .get("field")
                .and_then(Json::as_str)
                .ok_or("struct field without \"field\" name")?;
            Ok(WireField {
                name: name.to_owned(),
                wire: connect_wire(f).map_err(|e| format!("{name}: {e}"))?,
                optional: f.get("optional").and_then(Json::as_bool).unwrap_or(false),
            })
        })
        .collect()
}

/// Parses an Avro writer-schema node (as JSON) into a wire type, reading the `connect.*`
/// properties Confluent's AvroConverter leaves on it. Returns (wire, optional).
pub fn avro_wire(node: &Json) -> Result<(Wire, bool), String> {
    match node {
        Json::String(prim) => Ok((avro_primitive(prim, None, node)?, false)),
        Json::Array(branches) => {
            let non_null: Vec<&Json> = branches.iter().filter(|b| *b != "null").collect();
            let optional = non_null.len() < branches.len();
            match non_null.as_slice() {
                [one] => Ok((avro_wire(one)?.0, optional)),
                _ => Err("Avro unions with more than one non-null branch are not supported".into()),
            }
        }
        Json::Object(obj) => {
            let ty = obj.get("type").ok_or("Avro schema node without type")?;
            let connect_name = obj.get("connect.name").and_then(Json::as_str);
            let params = obj.get("connect.parameters");
            let param = |k: &str| -> Option<String> {
                params
                    .and_then(|p| p.get(k))
                    .and_then(|v| v.as_str().map(str::to_owned))
            };
            match ty {
                Json::String(t) if t == "record" => {
                    let fields = avro_record_fields(node)?;
                    let full_name = avro_full_name(node);
                    match full_name.as_deref() {
                        Some(
                            n @ ("io.debezium.data.VariableScaleDecimal"
                            | "io.debezium.data.geometry.Geometry"
                            | "io.debezium.data.geometry.Geography"
                            | "io.debezium.data.geometry.Point"),
                        ) => Ok((
                            Wire::from_connect("struct", Some(n), &param, ConnectChildren::None)?,
                            false,
                        )),
                        _ => Ok((Wire::Struct(fields), false)),
                    }
                }
                Json::String(t) if t == "array" => {
                    let items = obj.get("items").ok_or("Avro array without items")?;
                    Ok((Wire::Array(Box::new(avro_wire(items)?.0)), false))
                }
                Json::String(t) if t == "map" => Ok((Wire::Map, false)),
                Json::String(t) if t == "enum" => Ok((Wire::Enum, false)),
                Json::String(t) if t == "fixed" => Ok((Wire::Bytes, false)),
                Json::String(prim) => Ok((avro_primitive(prim, connect_name, node)?, false)),
                nested => avro_wire(nested),
            }
        }
        other => Err(format!("unexpected Avro schema node {other}")),
    }
}

/// A named Avro node's full name: its `connect.name`, or its namespace and name.
pub(crate) fn avro_full_name(node: &Json) -> Option<String> {
    if let Some(n) = node.get("connect.name").and_then(Json::as_str) {
        return Some(n.to_owned());
    }
    let name = node.get("name").and_then(Json::as_str)?;
    Some(match node.get("namespace").and_then(Json::as_str) {
        Some(ns) if !name.contains('.') => format!("{ns}.{name}"),
        _ => name.to_owned(),
    })
}

fn avro_primitive(prim: &str, connect_name: Option<&str>, node: &Json) -> Result<Wire, String> {
    let logical = node.get("logicalType").and_then(Json::as_str);
    let connect_type = node.get("connect.type").and_then(Json::as_str);
    let params = node.get("connect.parameters");
    let param = |k: &str| -> Option<String> {
        params
            .and_then(|p| p.get(k))
            .and_then(|v| v.as_str().map(str::to_owned))
            .or_else(|| match k {
                "scale" => node.get("scale").map(|v| v.to_string()),
                _ => None,
            })
    };
    let base = match (prim, connect_type) {
        ("int", Some("int8")) => "int8",
        ("int", Some("int16")) => "int16",
        ("int", _) => "int32",
        ("long", _) => "int64",
        ("float", _) => "float",
        ("double", _) => "double",
        ("boolean", _) => "boolean",
        ("string", _) => "string",
        ("bytes", _) => "bytes",
        (other, _) => return Err(format!("unsupported Avro type {other:?}")),
    };
    let name = connect_name.or(match logical {
        Some("decimal") => Some("org.apache.kafka.connect.data.Decimal"),
        Some("date") => Some("org.apache.kafka.connect.data.Date"),
        Some("time-millis") => Some("org.apache.kafka.connect.data.Time"),
        Some("timestamp-millis") => Some("org.apache.kafka.connect.data.Timestamp"),
        Some("time-micros") => Some("io.debezium.time.MicroTime"),
        Some("timestamp-micros") => Some("io.debezium.time.MicroTimestamp"),
        Some("uuid") => Some("io.debezium.data.Uuid"),
        _ => None,
    });
    let mut wire = Wire::from_connect(base, name, &param, ConnectChildren::None)?;
    if let (Wire::Decimal { precision, .. }, Some(p)) =
        (&mut wire, node.get("precision").and_then(Json::as_u64))
    {
        // Confluent writes precision 64 when Connect had none; keep what was declared.
        if precision.is_none() && p <= 76 {
            *precision = Some(p as u8);
        }
    }
    Ok(wire)
}

/// The fields of an Avro record schema node.
pub fn avro_record_fields(node: &Json) -> Result<Vec<WireField>, String> {
    let fields = node
        .get("fields")
        .and_then(Json::as_array)
        .ok_or("Avro record without fields")?;
    fields
        .iter()
        .map(|f| {
            let name = f
                .get("name")
                .and_then(Json::as_str)
                .ok_or("Avro field without name")?;
            let (wire, optional) = avro_wire(f.get("type").ok_or("Avro field without type")?)
                .map_err(|e| format!("{name}: {e}"))?;
            Ok(WireField {
                name: name.to_owned(),
                wire,
                optional,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_decimal_and_semantic_names() {
        let node: Json = serde_json::from_str(
            r#"{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"4","connect.decimal.precision":"8"},"field":"d"}"#,
        )
        .expect("json");
        assert_eq!(
            connect_wire(&node),
            Ok(Wire::Decimal {
                precision: Some(8),
                scale: 4,
                text: false
            })
        );
        assert_eq!(
            Wire::from_declared("decimal(10,2)").map(|w| w.column_type()),
            Ok(ColumnType::Decimal {
                precision: 10,
                scale: 2
            })
        );
        assert_eq!(
            Wire::from_declared("io.debezium.time.MicroTimestamp"),
            Ok(Wire::TimestampMicros)
        );
        assert!(Wire::from_declared("no_such_type").is_err());
        // Beyond Decimal256: refused when the schema is read, not wrapped in the builder.
        assert!(Wire::from_declared("decimal(77,2)").is_err());
        assert!(Wire::from_declared("decimal(0,0)").is_err());
        assert!(Wire::from_declared("decimal_string(76,77)").is_err());
        assert!(Wire::from_declared("decimal(76,76)").is_ok());
        let wide: Json = serde_json::from_str(
            r#"{"type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"100"}}"#,
        )
        .expect("json");
        assert!(connect_wire(&wide).is_err());
        assert_eq!(
            Wire::from_declared("mysql_time"),
            Ok(Wire::SignedTimeMicros)
        );
        assert_eq!(
            Wire::from_declared("mysql_time_millis").map(|w| w.column_type()),
            Ok(ColumnType::SignedTime(TimeUnit::Micros))
        );
    }

    #[test]
    fn mysql_sources_read_times_as_signed_spans() {
        let fields = vec![
            WireField {
                name: "t".into(),
                wire: Wire::TimeMicros,
                optional: true,
            },
            WireField {
                name: "ts".into(),
                wire: Wire::TimestampMicros,
                optional: true,
            },
            WireField {
                name: "times".into(),
                wire: Wire::Array(Box::new(Wire::TimeMillis)),
                optional: true,
            },
        ];
        let mysql = SourceKind::of_source_schema(Some("io.debezium.connector.mysql.Source"));
        let mariadb = SourceKind::of_source_schema(Some("io.debezium.connector.mariadb.Source"));
        let pg = SourceKind::of_source_schema(Some("io.debezium.connector.postgresql.Source"));
        assert_eq!(
            (mysql, mariadb, pg),
            (SourceKind::MySql, SourceKind::MySql, SourceKind::Generic)
        );
        assert_eq!(SourceKind::of_source_schema(None), SourceKind::Generic);
        let wires: Vec<Wire> = mysql
            .row_fields(fields.clone())
            .into_iter()
            .map(|f| f.wire)
            .collect();
        assert_eq!(
            wires,
            [
                Wire::SignedTimeMicros,
                Wire::TimestampMicros,
                Wire::Array(Box::new(Wire::SignedTimeMillis))
            ]
        );
        assert_eq!(pg.row_fields(fields.clone()), fields);
    }

    #[test]
    fn avro_unions_in_either_order() {
        let a: Json = serde_json::from_str(
            r#"[{"type":"string","connect.version":1,"connect.parameters":{"allowed":"true,last,false"},"connect.default":"false","connect.name":"io.debezium.data.Enum"},"null"]"#,
        )
        .expect("json");
        assert_eq!(avro_wire(&a), Ok((Wire::Enum, true)));
        let b: Json = serde_json::from_str(
            r#"["null",{"type":"long","connect.name":"io.debezium.time.MicroTimestamp"}]"#,
        )
        .expect("json");
        assert_eq!(avro_wire(&b), Ok((Wire::TimestampMicros, true)));
    }
}
