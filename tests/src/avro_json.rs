//! Avro's JSON encoding (unions tagged by branch name, as RisingWave's fixtures write them) →
//! Avro binary, so Avro-JSON fixtures can be fed to the decoder as Confluent-framed records.

use std::collections::HashMap;

use apache_avro::schema::{Name, ResolvedSchema, Schema};
use apache_avro::types::Value as Avro;
use serde_json::Value as Json;

fn branch_name(s: &Schema) -> String {
    match s {
        Schema::Null => "null".into(),
        Schema::Boolean => "boolean".into(),
        Schema::Int => "int".into(),
        Schema::Long => "long".into(),
        Schema::Float => "float".into(),
        Schema::Double => "double".into(),
        Schema::Bytes => "bytes".into(),
        Schema::String => "string".into(),
        Schema::Record(r) => r.name.fullname(None),
        Schema::Enum(e) => e.name.fullname(None),
        Schema::Fixed(f) => f.name.fullname(None),
        Schema::Ref { name } => name.fullname(None),
        Schema::Array(_) => "array".into(),
        Schema::Map(_) => "map".into(),
        other => format!("{other:?}"),
    }
}

fn convert(s: &Schema, v: &Json, names: &HashMap<Name, Schema>) -> Result<Avro, String> {
    Ok(match s {
        Schema::Ref { name } => {
            let target = names
                .get(name)
                .ok_or_else(|| format!("unknown type {name:?}"))?;
            return convert(target, v, names);
        }
        Schema::Union(u) => {
            if v.is_null() {
                let i = u
                    .variants()
                    .iter()
                    .position(|b| *b == Schema::Null)
                    .ok_or("null for a union without null")?;
                return Ok(Avro::Union(i as u32, Box::new(Avro::Null)));
            }
            let (tag, inner) = v
                .as_object()
                .and_then(|o| o.iter().next())
                .ok_or_else(|| format!("union value must be tagged: {v}"))?;
            let i = u
                .variants()
                .iter()
                .position(|b| {
                    branch_name(b) == *tag || branch_name(b).ends_with(&format!(".{tag}"))
                })
                .ok_or_else(|| format!("no union branch {tag}"))?;
            Avro::Union(i as u32, Box::new(convert(&u.variants()[i], inner, names)?))
        }
        Schema::Record(r) => {
            let mut fields = Vec::new();
            for f in &r.fields {
                let fv = v
                    .get(&f.name)
                    .cloned()
                    .or_else(|| f.default.clone())
                    .unwrap_or(Json::Null);
                fields.push((f.name.clone(), convert(&f.schema, &fv, names)?));
            }
            Avro::Record(fields)
        }
        Schema::Null => Avro::Null,
        Schema::Boolean => Avro::Boolean(v.as_bool().ok_or("boolean")?),
        Schema::Int => Avro::Int(v.as_i64().ok_or("int")? as i32),
        Schema::Long => Avro::Long(v.as_i64().ok_or("long")?),
        Schema::Float => Avro::Float(v.as_f64().ok_or("float")? as f32),
        Schema::Double => Avro::Double(v.as_f64().ok_or("double")?),
        // Avro JSON writes bytes as a string of code points 0-255.
        Schema::Bytes => Avro::Bytes(
            v.as_str()
                .ok_or("bytes")?
                .chars()
                .map(|c| c as u8)
                .collect(),
        ),
        Schema::String => Avro::String(v.as_str().ok_or("string")?.to_owned()),
        Schema::Array(a) => Avro::Array(
            v.as_array()
                .ok_or("array")?
                .iter()
                .map(|x| convert(&a.items, x, names))
                .collect::<Result<_, _>>()?,
        ),
        other => return Err(format!("unsupported schema {other:?}")),
    })
}

/// Encodes an Avro-JSON document with `schema` (Avro schema JSON) into Avro binary.
pub fn encode(schema: &str, json: &str) -> Result<Vec<u8>, String> {
    let schema = Schema::parse_str(schema).map_err(|e| e.to_string())?;
    let resolved = ResolvedSchema::try_from(&schema).map_err(|e| e.to_string())?;
    let names: HashMap<Name, Schema> = resolved
        .get_names()
        .iter()
        .map(|(k, v)| (k.clone(), (*v).clone()))
        .collect();
    let v: Json = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let value = convert(&schema, &v, &names)?;
    apache_avro::to_avro_datum(&schema, value).map_err(|e| e.to_string())
}

/// Confluent framing: magic byte 0, schema id (big-endian), payload.
pub fn framed(id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}
