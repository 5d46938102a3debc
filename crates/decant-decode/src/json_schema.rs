//! Confluent JSON_SR schemas, read the way Kafka Connect's JSON Schema converter writes them
//! (Confluent's `JsonSchemaData`). A registered JSON Schema is translated once, when its id is
//! first resolved, into the Connect schema node it stands for: the
//! `{"type":"struct","name":…,"fields":[…],"optional":…,"parameters":…}` form that JsonConverter
//! embeds in `{"schema","payload"}` records. The decoder then reads a JSON_SR document exactly
//! like the payload of such a record, so envelopes, semantic types, TOAST placeholders and schema
//! evolution have one implementation ([`crate::wire::connect_wire`] and the decoder's value
//! shapes), not one per encoding.
//!
//! The conventions read:
//! - `type` `boolean` / `integer` / `number` / `string` / `array` / `object`, refined by
//!   `connect.type` (`int8` … `int64`, `float32`, `float64`, `bytes`, `map`); an `integer`
//!   without it is `int64` and a `number` `float64`, as in `JsonSchemaData`.
//! - `title` → the Connect schema name, which names logical and semantic types
//!   (`org.apache.kafka.connect.data.Decimal`, `io.debezium.time.MicroTimestamp` …);
//!   `connect.parameters` → `parameters`, `connect.version` → `version`, `description` → `doc`.
//! - `oneOf` / `anyOf` of `{"type":"null"}` and one schema (or `"type": [X, "null"]`): optional.
//! - `object` with `properties`: a struct whose fields are ordered by `connect.index`.
//! - Maps: an `object` with `connect.type` `map` (or only an `additionalProperties` schema) has
//!   string keys; an `array` with `connect.type` `map` holds `{"key","value"}` entries.
//! - `$ref` to the same document (`#/definitions/…`, `#/$defs/…`).
//!
//! Values need no translation: bytes are base64 text (as JsonConverter writes them) and a
//! Decimal is either base64 two's complement or a JSON number; the converters accept both.
//!
//! A construct with no Connect equivalent (a union of several types, `allOf` of several schemas,
//! `not`, a schema from another subject …) is refused with the path of the field it types.

use std::cell::Cell;

use serde_json::{Map, Value as Json};

/// Deeper nesting than this (or a `$ref` cycle) is refused instead of recursing further: the
/// schema text comes from outside, and the stack is finite.
const MAX_DEPTH: usize = 64;

/// The most schema nodes one translation visits: `$ref`s can expand a short text exponentially
/// (each definition referring twice to the next), and no real row schema comes near this.
const MAX_NODES: usize = 100_000;

/// What a registered JSON Schema says about the documents framed with its id.
#[derive(Debug, Clone, PartialEq)]
pub enum Translated {
    /// The Connect schema node the JSON Schema stands for.
    Connect(Json),
    /// The root schema constrains nothing Connect could type (`{}`, `true`, `{"type":"object"}`
    /// without properties): a permissive schema is a producer's choice, not an error, so the
    /// documents are read as schemaless JSON (declared or inferred tables).
    Open,
}

/// A JSON Schema construct that cannot be read as a Connect schema, and where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {problem}", location(.path))]
pub struct JsonSchemaError {
    /// Dotted path of the field whose schema it is (`after.c_num`, `after.tags.items`); empty
    /// for the root schema.
    pub path: String,
    pub problem: String,
}

fn location(path: &str) -> String {
    if path.is_empty() {
        "the root schema".into()
    } else {
        format!("field {path}")
    }
}

/// Translates the text of a registered JSON Schema.
pub fn translate(text: &str) -> Result<Translated, JsonSchemaError> {
    let root: Json = serde_json::from_str(text).map_err(|e| JsonSchemaError {
        path: String::new(),
        problem: format!("not JSON: {e}"),
    })?;
    if is_open(&root) {
        return Ok(Translated::Open);
    }
    let translator = Translator {
        root: &root,
        visited: Cell::new(0),
    };
    let typed = translator.node(&root, "", 0)?;
    Ok(Translated::Connect(Json::Object(typed.node)))
}

/// The field names of a translated struct schema, in Connect order; `None` for other schemas.
pub fn struct_field_names(connect: &Json) -> Option<Vec<String>> {
    if connect.get("type").and_then(Json::as_str) != Some("struct") {
        return None;
    }
    let fields = connect.get("fields")?.as_array()?;
    Some(
        fields
            .iter()
            .filter_map(|f| f.get("field").and_then(Json::as_str).map(str::to_owned))
            .collect(),
    )
}

/// Whether the root schema leaves the document untyped: no type other than `object`, and nothing
/// that names fields, items, alternatives or map values.
fn is_open(root: &Json) -> bool {
    const TYPING: [&str; 9] = [
        "properties",
        "items",
        "oneOf",
        "anyOf",
        "allOf",
        "$ref",
        "enum",
        "const",
        "connect.type",
    ];
    match root {
        Json::Bool(true) => true,
        Json::Object(o) => {
            let untyped_or_object = match o.get("type") {
                None => true,
                Some(t) => t == "object",
            };
            untyped_or_object
                && !TYPING.iter().any(|k| o.contains_key(*k))
                && !o.get("additionalProperties").is_some_and(Json::is_object)
        }
        _ => false,
    }
}

/// One translated schema node, and whether `null` is one of its values.
struct Typed {
    node: Map<String, Json>,
    optional: bool,
}

struct Translator<'s> {
    /// The whole document, for local `$ref`s.
    root: &'s Json,
    /// Schema nodes visited so far (see [`MAX_NODES`]).
    visited: Cell<usize>,
}

fn fail(path: &str, problem: impl Into<String>) -> JsonSchemaError {
    JsonSchemaError {
        path: path.to_owned(),
        problem: problem.into(),
    }
}

fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// `{"type":"null"}`, possibly with annotations: the null branch of an optional schema.
fn is_null_schema(schema: &Json) -> bool {
    schema.get("type").and_then(Json::as_str) == Some("null")
}

impl<'s> Translator<'s> {
    fn node(&self, schema: &'s Json, path: &str, depth: usize) -> Result<Typed, JsonSchemaError> {
        if depth > MAX_DEPTH {
            return Err(fail(
                path,
                format!("nested more than {MAX_DEPTH} levels deep (or a $ref cycle)"),
            ));
        }
        self.visited.set(self.visited.get() + 1);
        if self.visited.get() > MAX_NODES {
            return Err(fail(
                path,
                format!("more than {MAX_NODES} schema nodes once $refs are expanded"),
            ));
        }
        let obj = match schema {
            Json::Object(o) => o,
            Json::Bool(true) => {
                return Err(fail(
                    path,
                    "an unconstrained schema (true) names no Connect type",
                ));
            }
            other => {
                return Err(fail(
                    path,
                    format!("expected a schema object, found {other}"),
                ));
            }
        };
        for keyword in ["not", "if"] {
            if obj.contains_key(keyword) {
                return Err(fail(
                    path,
                    format!("\"{keyword}\" has no Connect equivalent and is not supported"),
                ));
            }
        }
        // Draft-07 semantics: a `$ref` replaces the schema it stands in (siblings are ignored).
        if let Some(reference) = obj.get("$ref") {
            let target = self.resolve(reference, path)?;
            return self.node(target, path, depth + 1);
        }
        if let Some(branches) = obj.get("oneOf").or_else(|| obj.get("anyOf")) {
            return self.union(branches, path, depth);
        }
        if let Some(all) = obj.get("allOf") {
            return match all.as_array().map(Vec::as_slice) {
                Some([only]) => self.node(only, path, depth + 1),
                _ => Err(fail(
                    path,
                    "\"allOf\" of several schemas (an intersection) is not supported",
                )),
            };
        }
        let (json_type, optional) = json_type(obj, path)?;
        let connect_type = match obj.get("connect.type") {
            None => None,
            Some(Json::String(t)) => Some(t.as_str()),
            Some(other) => {
                return Err(fail(
                    path,
                    format!("\"connect.type\" must be a string, found {other}"),
                ));
            }
        };
        let mut node = match (json_type, connect_type) {
            ("boolean", None | Some("boolean")) => primitive("boolean"),
            ("integer", None) => primitive("int64"),
            ("integer", Some(t @ ("int8" | "int16" | "int32" | "int64"))) => primitive(t),
            ("number", None) => primitive("float64"),
            // `bytes`: a Connect Decimal, written as a JSON number by JsonSchemaData.
            (
                "number",
                Some(t @ ("float32" | "float64" | "int8" | "int16" | "int32" | "int64" | "bytes")),
            ) => primitive(t),
            ("string", None) => primitive("string"),
            ("string", Some(t @ ("string" | "bytes"))) => primitive(t),
            ("array", Some("map")) => self.entry_map(obj, path, depth)?,
            ("array", None | Some("array")) => self.array(obj, path, depth)?,
            ("object", Some("map")) => self.string_key_map(obj, path, depth)?,
            ("object", None | Some("struct")) => self.object(obj, path, depth)?,
            ("null", _) => {
                return Err(fail(
                    path,
                    "a schema whose only value is null has no Connect type",
                ));
            }
            (t, Some(c)) => {
                return Err(fail(
                    path,
                    format!("\"connect.type\" {c:?} does not fit JSON type {t:?}"),
                ));
            }
            (t, None) => return Err(fail(path, format!("unknown JSON type {t:?}"))),
        };
        annotate(&mut node, obj, path)?;
        Ok(Typed { node, optional })
    }

    /// A local `$ref` (`#`, `#/definitions/x`, `#/$defs/x`); other documents are not fetched.
    fn resolve(&self, reference: &Json, path: &str) -> Result<&'s Json, JsonSchemaError> {
        let text = reference.as_str().ok_or_else(|| {
            fail(
                path,
                format!("\"$ref\" must be a string, found {reference}"),
            )
        })?;
        let Some(pointer) = text.strip_prefix('#') else {
            return Err(fail(
                path,
                format!(
                    "\"$ref\" {text:?} names another schema; only references within the schema (\"#/…\") are supported"
                ),
            ));
        };
        self.root
            .pointer(pointer)
            .ok_or_else(|| fail(path, format!("\"$ref\" {text:?} points to nothing")))
    }

    /// `oneOf` / `anyOf`: a null branch and one other make an optional schema.
    fn union(
        &self,
        branches: &'s Json,
        path: &str,
        depth: usize,
    ) -> Result<Typed, JsonSchemaError> {
        let branches = branches
            .as_array()
            .ok_or_else(|| fail(path, "\"oneOf\" / \"anyOf\" must be an array of schemas"))?;
        let with_null = branches.iter().any(is_null_schema);
        let others: Vec<&Json> = branches.iter().filter(|b| !is_null_schema(b)).collect();
        match others.as_slice() {
            [one] => {
                let mut typed = self.node(one, path, depth + 1)?;
                typed.optional |= with_null;
                Ok(typed)
            }
            [] => Err(fail(
                path,
                "a schema whose only value is null has no Connect type",
            )),
            many => Err(fail(
                path,
                format!(
                    "\"oneOf\" / \"anyOf\" of {} non-null schemas (a Connect union) is not supported",
                    many.len()
                ),
            )),
        }
    }

    /// A struct: `properties` ordered by `connect.index` (document order where it is missing).
    /// An object without properties is a map (see [`Self::open_object`]).
    fn object(
        &self,
        obj: &'s Map<String, Json>,
        path: &str,
        depth: usize,
    ) -> Result<Map<String, Json>, JsonSchemaError> {
        let Some(properties) = obj.get("properties") else {
            return self.open_object(obj, path, depth);
        };
        let properties = properties
            .as_object()
            .ok_or_else(|| fail(path, "\"properties\" must be an object"))?;
        let mut fields = Vec::with_capacity(properties.len());
        for (position, (name, schema)) in properties.iter().enumerate() {
            let field_path = child(path, name);
            let index = match schema.get("connect.index") {
                None => position as u64,
                Some(i) => i.as_u64().ok_or_else(|| {
                    fail(
                        &field_path,
                        format!("\"connect.index\" must be a non-negative integer, found {i}"),
                    )
                })?,
            };
            let typed = self.node(schema, &field_path, depth + 1)?;
            let mut field = typed.node;
            field.insert("field".into(), Json::String(name.clone()));
            field.insert("optional".into(), Json::Bool(typed.optional));
            fields.push((index, position, Json::Object(field)));
        }
        fields.sort_by_key(|(index, position, _)| (*index, *position));
        let mut node = primitive("struct");
        node.insert(
            "fields".into(),
            Json::Array(fields.into_iter().map(|(_, _, f)| f).collect()),
        );
        Ok(node)
    }

    /// An object with no `properties`: a map with string keys. Its values are typed by an
    /// `additionalProperties` schema; without one they are any JSON, which a Connect map column
    /// keeps as the JSON text it is (a free-form object loses nothing).
    fn open_object(
        &self,
        obj: &'s Map<String, Json>,
        path: &str,
        depth: usize,
    ) -> Result<Map<String, Json>, JsonSchemaError> {
        match obj.get("additionalProperties") {
            Some(values) if values.is_object() => self.string_key_map(obj, path, depth),
            _ => {
                let mut node = primitive("map");
                node.insert("keys".into(), Json::Object(primitive("string")));
                Ok(node)
            }
        }
    }

    /// A Connect map with string keys: `{"type":"object","connect.type":"map",
    /// "additionalProperties":<values>}`.
    fn string_key_map(
        &self,
        obj: &'s Map<String, Json>,
        path: &str,
        depth: usize,
    ) -> Result<Map<String, Json>, JsonSchemaError> {
        let values = obj
            .get("additionalProperties")
            .filter(|v| v.is_object())
            .ok_or_else(|| {
                fail(
                    path,
                    "a map (\"connect.type\": \"map\" on an object) needs an \"additionalProperties\" schema for its values",
                )
            })?;
        let values = self.node(values, &child(path, "values"), depth + 1)?;
        let mut node = primitive("map");
        node.insert("keys".into(), Json::Object(primitive("string")));
        node.insert("values".into(), with_optional(values));
        Ok(node)
    }

    /// A Connect map with keys of any type: `{"type":"array","connect.type":"map","items":
    /// {"type":"object","properties":{"key":…,"value":…}}}`.
    fn entry_map(
        &self,
        obj: &'s Map<String, Json>,
        path: &str,
        depth: usize,
    ) -> Result<Map<String, Json>, JsonSchemaError> {
        let entry = obj.get("items").and_then(|i| i.get("properties"));
        let (Some(key), Some(value)) = (
            entry.and_then(|e| e.get("key")),
            entry.and_then(|e| e.get("value")),
        ) else {
            return Err(fail(
                path,
                "a map (\"connect.type\": \"map\" on an array) needs \"items\" with \"key\" and \"value\" properties",
            ));
        };
        let keys = self.node(key, &child(path, "key"), depth + 1)?;
        let values = self.node(value, &child(path, "value"), depth + 1)?;
        let mut node = primitive("map");
        node.insert("keys".into(), with_optional(keys));
        node.insert("values".into(), with_optional(values));
        Ok(node)
    }

    fn array(
        &self,
        obj: &'s Map<String, Json>,
        path: &str,
        depth: usize,
    ) -> Result<Map<String, Json>, JsonSchemaError> {
        let items = match obj.get("items") {
            Some(items @ Json::Object(_)) => items,
            Some(Json::Array(_)) => {
                return Err(fail(
                    path,
                    "tuple \"items\" (one schema per position) are not supported",
                ));
            }
            _ => {
                return Err(fail(
                    path,
                    "an array needs an \"items\" schema for its elements",
                ));
            }
        };
        let items = self.node(items, &child(path, "items"), depth + 1)?;
        let mut node = primitive("array");
        node.insert("items".into(), with_optional(items));
        Ok(node)
    }
}

/// The JSON type of a schema object, and whether `null` is also allowed (`"type": [X, "null"]`).
/// Without `type`, what the schema holds tells it, as a validator would accept.
fn json_type<'o>(
    obj: &'o Map<String, Json>,
    path: &str,
) -> Result<(&'o str, bool), JsonSchemaError> {
    match obj.get("type") {
        Some(Json::String(t)) => Ok((t.as_str(), false)),
        Some(Json::Array(types)) => {
            let names: Vec<&str> = types.iter().filter_map(Json::as_str).collect();
            if names.len() != types.len() {
                return Err(fail(
                    path,
                    "\"type\" must be a string or an array of strings",
                ));
            }
            let non_null: Vec<&str> = names.iter().copied().filter(|t| *t != "null").collect();
            match non_null.as_slice() {
                [one] => Ok((*one, non_null.len() < names.len())),
                [] => Err(fail(
                    path,
                    "a schema whose only value is null has no Connect type",
                )),
                many => Err(fail(
                    path,
                    format!("\"type\" {many:?}: a union of several types is not supported"),
                )),
            }
        }
        Some(other) => Err(fail(
            path,
            format!("\"type\" must be a string or an array of strings, found {other}"),
        )),
        None if obj.contains_key("properties") || obj.contains_key("additionalProperties") => {
            Ok(("object", false))
        }
        None if obj.contains_key("items") => Ok(("array", false)),
        None => {
            let values: Option<Vec<&Json>> = match (obj.get("enum"), obj.get("const")) {
                (Some(Json::Array(values)), _) => Some(values.iter().collect()),
                (_, Some(value)) => Some(vec![value]),
                _ => None,
            };
            match values {
                Some(values) if !values.is_empty() && values.iter().all(|v| v.is_string()) => {
                    Ok(("string", false))
                }
                Some(_) => Err(fail(
                    path,
                    "\"enum\" / \"const\" without \"type\" is only supported for strings",
                )),
                None => Err(fail(path, "no \"type\" (and nothing that implies one)")),
            }
        }
    }
}

fn primitive(connect_type: &str) -> Map<String, Json> {
    let mut node = Map::new();
    node.insert("type".into(), Json::String(connect_type.to_owned()));
    node
}

/// A translated child schema (array items, map keys and values) with its `optional` flag.
fn with_optional(typed: Typed) -> Json {
    let mut node = typed.node;
    node.insert("optional".into(), Json::Bool(typed.optional));
    Json::Object(node)
}

/// Copies what Connect keeps beside the type: the schema name (`title`), its parameters,
/// version, doc and default.
fn annotate(
    node: &mut Map<String, Json>,
    obj: &Map<String, Json>,
    path: &str,
) -> Result<(), JsonSchemaError> {
    if let Some(title) = obj.get("title").and_then(Json::as_str) {
        node.insert("name".into(), Json::String(title.to_owned()));
    }
    if let Some(params) = obj.get("connect.parameters") {
        let params = params
            .as_object()
            .ok_or_else(|| fail(path, "\"connect.parameters\" must be an object"))?;
        // Connect parameters are strings; a number or boolean written bare means its text.
        let mut strings = Map::new();
        for (k, v) in params {
            let text = match v {
                Json::String(s) => s.clone(),
                Json::Number(_) | Json::Bool(_) => v.to_string(),
                other => {
                    return Err(fail(
                        path,
                        format!("\"connect.parameters\".{k} must be a string, found {other}"),
                    ));
                }
            };
            strings.insert(k.clone(), Json::String(text));
        }
        node.insert("parameters".into(), Json::Object(strings));
    }
    if let Some(version) = obj.get("connect.version") {
        node.insert("version".into(), version.clone());
    }
    if let Some(doc) = obj.get("description") {
        node.insert("doc".into(), doc.clone());
    }
    if let Some(default) = obj.get("default") {
        node.insert("default".into(), default.clone());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Wire, WireField, connect_fields, connect_wire};
    use proptest::prelude::*;

    fn connect(text: &str) -> Json {
        match translate(text) {
            Ok(Translated::Connect(node)) => node,
            other => panic!("{text}: {other:?}"),
        }
    }

    fn refused(text: &str) -> JsonSchemaError {
        match translate(text) {
            Err(e) => e,
            Ok(other) => panic!("{text}: translated to {other:?}"),
        }
    }

    fn fields(text: &str) -> Vec<WireField> {
        connect_fields(&connect(text)).expect("a Connect struct the wire parser reads")
    }

    #[test]
    fn optional_fields_are_a_union_with_null() {
        let fields = fields(
            r#"{"type":"object","properties":{
                "id":{"type":"integer","connect.type":"int32","connect.index":0},
                "name":{"oneOf":[{"type":"null"},{"type":"string"}],"connect.index":1},
                "note":{"anyOf":[{"type":"string"},{"type":"null"}],"connect.index":2},
                "flag":{"type":["boolean","null"],"connect.index":3}}}"#,
        );
        let read: Vec<(&str, &Wire, bool)> = fields
            .iter()
            .map(|f| (f.name.as_str(), &f.wire, f.optional))
            .collect();
        assert_eq!(
            read,
            [
                ("id", &Wire::Int32, false),
                ("name", &Wire::String, true),
                ("note", &Wire::String, true),
                ("flag", &Wire::Bool, true),
            ]
        );
    }

    #[test]
    fn connect_types_refine_json_types() {
        let fields = fields(
            r#"{"type":"object","properties":{
                "i8":{"type":"integer","connect.type":"int8"},
                "i16":{"type":"integer","connect.type":"int16"},
                "i64":{"type":"integer"},
                "f32":{"type":"number","connect.type":"float32"},
                "f64":{"type":"number"},
                "raw":{"type":"string","connect.type":"bytes"},
                "text":{"type":"string"}}}"#,
        );
        let wires: Vec<&Wire> = fields.iter().map(|f| &f.wire).collect();
        assert_eq!(
            wires,
            [
                &Wire::Int8,
                &Wire::Int16,
                &Wire::Int64,
                &Wire::Float32,
                &Wire::Float64,
                &Wire::Bytes,
                &Wire::String
            ]
        );
    }

    #[test]
    fn decimal_keeps_its_parameters() {
        let node = connect(
            r#"{"type":"number","title":"org.apache.kafka.connect.data.Decimal","connect.type":"bytes","connect.version":1,"connect.parameters":{"scale":"3","connect.decimal.precision":"10"}}"#,
        );
        assert_eq!(node["name"], "org.apache.kafka.connect.data.Decimal");
        assert_eq!(node["version"], 1);
        assert_eq!(
            connect_wire(&node),
            Ok(Wire::Decimal {
                precision: Some(10),
                scale: 3,
                text: false
            })
        );
        // Parameters written as bare numbers mean their text.
        let bare = connect(
            r#"{"type":"number","title":"org.apache.kafka.connect.data.Decimal","connect.type":"bytes","connect.parameters":{"scale":2}}"#,
        );
        assert_eq!(
            connect_wire(&bare),
            Ok(Wire::Decimal {
                precision: None,
                scale: 2,
                text: false
            })
        );
        let unscaled = connect(
            r#"{"type":"number","title":"org.apache.kafka.connect.data.Decimal","connect.type":"bytes"}"#,
        );
        assert!(connect_wire(&unscaled).is_err(), "a Decimal needs a scale");
    }

    #[test]
    fn titles_name_semantic_types() {
        let fields = fields(
            r#"{"type":"object","properties":{
                "d":{"type":"integer","title":"io.debezium.time.Date","connect.type":"int32"},
                "ts":{"type":"integer","title":"io.debezium.time.MicroTimestamp","connect.type":"int64"},
                "tz":{"type":"string","title":"io.debezium.time.ZonedTimestamp"},
                "j":{"type":"string","title":"io.debezium.data.Json"},
                "e":{"type":"string","title":"io.debezium.data.Enum","connect.parameters":{"allowed":"a,b"}},
                "n":{"type":"object","title":"io.debezium.data.VariableScaleDecimal","properties":{
                    "scale":{"type":"integer","connect.type":"int32","connect.index":0},
                    "value":{"type":"string","connect.type":"bytes","connect.index":1}}},
                "p":{"type":"object","title":"io.debezium.data.geometry.Point","properties":{
                    "x":{"type":"number","connect.type":"float64"},"y":{"type":"number","connect.type":"float64"}}},
                "free":{"type":"string","title":"A human title"}}}"#,
        );
        let wires: Vec<&Wire> = fields.iter().map(|f| &f.wire).collect();
        assert_eq!(
            wires,
            [
                &Wire::Date,
                &Wire::TimestampMicros,
                &Wire::ZonedTimestamp,
                &Wire::Json,
                &Wire::Enum,
                &Wire::VariableScaleDecimal,
                &Wire::Point,
                &Wire::String
            ]
        );
    }

    #[test]
    fn nested_structs_follow_connect_index() {
        let fields = fields(
            r#"{"type":"object","properties":{
                "b":{"type":"string","connect.index":1},
                "a":{"oneOf":[{"type":"null"},{"type":"object","properties":{
                    "y":{"type":"integer","connect.type":"int16","connect.index":1},
                    "x":{"type":"boolean","connect.index":0}},"title":"inner"}],"connect.index":0}}}"#,
        );
        assert_eq!(
            fields,
            [
                WireField {
                    name: "a".into(),
                    wire: Wire::Struct(vec![
                        WireField {
                            name: "x".into(),
                            wire: Wire::Bool,
                            optional: false
                        },
                        WireField {
                            name: "y".into(),
                            wire: Wire::Int16,
                            optional: false
                        },
                    ]),
                    optional: true
                },
                WireField {
                    name: "b".into(),
                    wire: Wire::String,
                    optional: false
                },
            ]
        );
        assert_eq!(
            struct_field_names(&connect(
                r#"{"type":"object","properties":{"k2":{"type":"string","connect.index":1},"k1":{"type":"integer","connect.index":0}}}"#
            )),
            Some(vec!["k1".to_owned(), "k2".to_owned()])
        );
        assert_eq!(struct_field_names(&connect(r#"{"type":"string"}"#)), None);
    }

    #[test]
    fn arrays_and_their_items() {
        let node = connect(
            r#"{"type":"array","items":{"oneOf":[{"type":"null"},{"type":"integer","connect.type":"int32"}]}}"#,
        );
        assert_eq!(node["items"]["optional"], true);
        assert_eq!(connect_wire(&node), Ok(Wire::Array(Box::new(Wire::Int32))));
        let nested = connect(
            r#"{"type":"array","items":{"type":"array","items":{"type":"string","title":"io.debezium.data.Uuid"}}}"#,
        );
        assert_eq!(
            connect_wire(&nested),
            Ok(Wire::Array(Box::new(Wire::Array(Box::new(Wire::Uuid)))))
        );
    }

    #[test]
    fn maps_in_connect_and_json_schema_spellings() {
        let string_keys = connect(
            r#"{"type":"object","connect.type":"map","additionalProperties":{"type":"integer","connect.type":"int32"}}"#,
        );
        assert_eq!(string_keys["keys"]["type"], "string");
        assert_eq!(string_keys["values"]["type"], "int32");
        assert_eq!(connect_wire(&string_keys), Ok(Wire::Map));
        let entries = connect(
            r#"{"type":"array","connect.type":"map","items":{"type":"object","properties":{"key":{"type":"integer","connect.type":"int32"},"value":{"oneOf":[{"type":"null"},{"type":"string"}]}}}}"#,
        );
        assert_eq!(entries["keys"]["type"], "int32");
        assert_eq!(entries["values"]["optional"], true);
        assert_eq!(connect_wire(&entries), Ok(Wire::Map));
        // Plain JSON Schema: only `additionalProperties`, or a free-form object.
        let plain = fields(
            r#"{"type":"object","properties":{
                "counts":{"type":"object","additionalProperties":{"type":"integer"}},
                "attrs":{"type":"object"}}}"#,
        );
        assert!(plain.iter().all(|f| f.wire == Wire::Map), "{plain:?}");
    }

    #[test]
    fn local_references_are_followed() {
        let fields = fields(
            r##"{"type":"object","definitions":{"money":{"type":"number","title":"org.apache.kafka.connect.data.Decimal","connect.type":"bytes","connect.parameters":{"scale":"2"}}},
                "properties":{"price":{"$ref":"#/definitions/money"},"tax":{"oneOf":[{"type":"null"},{"$ref":"#/definitions/money"}]}}}"##,
        );
        let money = Wire::Decimal {
            precision: None,
            scale: 2,
            text: false,
        };
        assert_eq!(
            fields,
            [
                WireField {
                    name: "price".into(),
                    wire: money.clone(),
                    optional: false
                },
                WireField {
                    name: "tax".into(),
                    wire: money,
                    optional: true
                },
            ]
        );
    }

    #[test]
    fn open_roots_leave_documents_untyped() {
        for open in [
            r#"{"type":"object"}"#,
            r#"{}"#,
            "true",
            r#"{"$schema":"http://json-schema.org/draft-07/schema#","title":"anything","type":"object","additionalProperties":true}"#,
        ] {
            assert_eq!(translate(open), Ok(Translated::Open), "{open}");
        }
    }

    #[test]
    fn unsupported_constructs_name_their_field() {
        let cases = [
            (
                r#"{"type":"object","properties":{"after":{"type":"object","properties":{"u":{"oneOf":[{"type":"string"},{"type":"integer"}]}}}}}"#,
                "after.u",
                "union",
            ),
            (
                r#"{"type":"object","properties":{"t":{"type":["string","integer"]}}}"#,
                "t",
                "union",
            ),
            (
                r#"{"type":"object","properties":{"a":{"allOf":[{"type":"string"},{"maxLength":3}]}}}"#,
                "a",
                "allOf",
            ),
            (
                r#"{"type":"object","properties":{"r":{"$ref":"other.json#/x"}}}"#,
                "r",
                "another schema",
            ),
            (
                r##"{"type":"object","properties":{"r":{"$ref":"#/definitions/missing"}}}"##,
                "r",
                "points to nothing",
            ),
            (
                r#"{"type":"object","properties":{"xs":{"type":"array","items":[{"type":"string"}]}}}"#,
                "xs",
                "tuple",
            ),
            (
                r#"{"type":"object","properties":{"xs":{"type":"array"}}}"#,
                "xs",
                "items",
            ),
            (
                r#"{"type":"object","properties":{"n":{"type":"string","connect.type":"int64"}}}"#,
                "n",
                "does not fit",
            ),
            (
                r#"{"type":"object","properties":{"m":{"type":"object","connect.type":"map"}}}"#,
                "m",
                "additionalProperties",
            ),
            (
                r#"{"type":"object","properties":{"z":{"type":"null"}}}"#,
                "z",
                "only value is null",
            ),
            (
                r#"{"type":"object","properties":{"q":{"not":{"type":"string"}}}}"#,
                "q",
                "\"not\"",
            ),
            (
                r#"{"type":"object","properties":{"any":true}}"#,
                "any",
                "unconstrained",
            ),
            (
                r#"{"type":"object","properties":{"i":{"type":"string","connect.index":"first"}}}"#,
                "i",
                "connect.index",
            ),
            (r#"{"type":"objekt"}"#, "", "unknown JSON type"),
        ];
        for (schema, path, problem) in cases {
            let e = refused(schema);
            assert_eq!(e.path, path, "{schema}: {e}");
            assert!(e.problem.contains(problem), "{schema}: {e}");
        }
        assert_eq!(
            refused(r#"{"type":"object","properties":{"after":{"type":["string","integer"]}}}"#)
                .to_string(),
            r#"field after: "type" ["string", "integer"]: a union of several types is not supported"#
        );
        assert!(
            refused("{not json")
                .to_string()
                .starts_with("the root schema: not JSON")
        );
    }

    #[test]
    fn reference_cycles_and_blowups_are_refused() {
        let cycle = refused(
            r##"{"type":"object","definitions":{"a":{"$ref":"#/definitions/b"},"b":{"$ref":"#/definitions/a"}},"properties":{"x":{"$ref":"#/definitions/a"}}}"##,
        );
        assert_eq!(cycle.path, "x");
        assert!(cycle.problem.contains("$ref cycle"), "{cycle}");
        // Each level refers twice to the next: 2^30 nodes once expanded, within the depth limit.
        let mut definitions = Map::new();
        for level in 0..30 {
            let next = format!("#/definitions/l{}", level + 1);
            definitions.insert(
                format!("l{level}"),
                serde_json::json!({"type":"object","properties":{"a":{"$ref":next},"b":{"$ref":next}}}),
            );
        }
        definitions.insert("l30".into(), serde_json::json!({"type":"string"}));
        let bomb = serde_json::json!({"definitions": definitions, "$ref": "#/definitions/l0"});
        let e = refused(&bomb.to_string());
        assert!(e.problem.contains("schema nodes"), "{e}");
    }

    proptest! {
        /// Whatever the registry returns, translation answers (no panic, no stack overflow), and
        /// what it translates the wire parser reads without panicking either.
        #[test]
        fn never_panics(text in schema_text()) {
            if let Ok(Translated::Connect(node)) = translate(&text) {
                let _ = connect_wire(&node);
            }
        }
    }

    /// Schema-like JSON: nested objects with the keywords the translator reads.
    fn schema_text() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::Bool),
            (-3i64..100).prop_map(Json::from),
            prop::sample::select(vec![
                "object",
                "array",
                "string",
                "integer",
                "number",
                "boolean",
                "null",
                "map",
                "int8",
                "bytes",
                "float32",
                "#",
                "#/definitions/a",
                "#/properties",
                "org.apache.kafka.connect.data.Decimal",
                "io.debezium.data.geometry.Point",
            ])
            .prop_map(Json::from),
        ];
        let json = leaf.prop_recursive(6, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
                prop::collection::vec(
                    (
                        prop::sample::select(vec![
                            "type",
                            "properties",
                            "items",
                            "oneOf",
                            "anyOf",
                            "allOf",
                            "$ref",
                            "connect.type",
                            "connect.index",
                            "connect.parameters",
                            "title",
                            "additionalProperties",
                            "definitions",
                            "a",
                            "key",
                            "value",
                            "enum",
                            "scale",
                        ]),
                        inner
                    ),
                    0..5
                )
                .prop_map(|members| Json::Object(
                    members
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect()
                )),
            ]
        });
        json.prop_map(|j| j.to_string())
    }
}
