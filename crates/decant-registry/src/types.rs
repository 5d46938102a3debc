//! The API's nouns: a [`Schema`] (type, text, references), a subject's [`SubjectSchema`], a
//! [`Version`] selector and [`Compatibility`] levels, with their JSON wire shapes.

use serde::{Deserialize, Serialize};

/// `schemaType` on the wire; absent means Avro.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SchemaType {
    #[default]
    Avro,
    Json,
    Protobuf,
}

impl SchemaType {
    fn is_avro(&self) -> bool {
        *self == SchemaType::Avro
    }
}

/// A schema this one imports: `name` as the schema text refers to it (an Avro full name, a
/// JSON Schema `$ref`, a `.proto` import path), found under `subject` at `version`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SchemaReference {
    pub name: String,
    pub subject: String,
    pub version: i32,
}

/// A schema as registered: what `GET /schemas/ids/{id}` answers and `register` sends.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Schema {
    #[serde(
        rename = "schemaType",
        default,
        skip_serializing_if = "SchemaType::is_avro"
    )]
    pub schema_type: SchemaType,
    /// The schema text (Avro JSON, JSON Schema, `.proto` source).
    #[serde(rename = "schema")]
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<SchemaReference>,
}

impl Schema {
    pub fn new(schema_type: SchemaType, text: impl Into<String>) -> Self {
        Schema {
            schema_type,
            text: text.into(),
            references: Vec::new(),
        }
    }

    pub fn avro(text: impl Into<String>) -> Self {
        Self::new(SchemaType::Avro, text)
    }

    pub fn with_references(mut self, references: Vec<SchemaReference>) -> Self {
        self.references = references;
        self
    }
}

/// One version of a subject: `GET /subjects/{s}/versions/{v}` and the lookup answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SubjectSchema {
    pub subject: String,
    pub version: i32,
    pub id: u32,
    #[serde(flatten)]
    pub schema: Schema,
}

/// A subject and version that use a schema id (`GET /schemas/ids/{id}/versions`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SubjectVersion {
    pub subject: String,
    pub version: i32,
}

/// Which version of a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Latest,
    Number(i32),
}

impl Version {
    pub(crate) fn path(&self) -> String {
        match self {
            Version::Latest => "latest".to_owned(),
            Version::Number(n) => n.to_string(),
        }
    }
}

/// A compatibility level (`GET/PUT /config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

/// The result of a compatibility check; `messages` explain an incompatibility when the
/// registry gives reasons (`?verbose=true`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CompatibilityResult {
    pub is_compatible: bool,
    #[serde(default)]
    pub messages: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avro_has_no_schema_type_on_the_wire() {
        let s = Schema::avro("\"int\"");
        assert_eq!(
            serde_json::to_string(&s).expect("serialises"),
            r#"{"schema":"\"int\""}"#
        );
        let p: Schema = serde_json::from_str(
            r#"{"schemaType":"PROTOBUF","schema":"syntax = \"proto3\";","references":[{"name":"a.proto","subject":"a","version":1}]}"#,
        )
        .expect("parses");
        assert_eq!(p.schema_type, SchemaType::Protobuf);
        assert_eq!(p.references[0].subject, "a");
        let sv: SubjectSchema =
            serde_json::from_str(r#"{"subject":"t-value","version":2,"id":7,"schema":"\"long\""}"#)
                .expect("parses");
        assert_eq!(
            (sv.version, sv.id, sv.schema.schema_type),
            (2, 7, SchemaType::Avro)
        );
        let c: Compatibility = serde_json::from_str("\"BACKWARD_TRANSITIVE\"").expect("parses");
        assert_eq!(c, Compatibility::BackwardTransitive);
    }
}
