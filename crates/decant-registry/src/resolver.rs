//! The decoder's seam: [`RegistryClient`] as a [`decant_decode::SchemaResolver`].
//!
//! A Protobuf schema's `references` (the `.proto` files it imports, registered under other
//! subjects) are handed over by [`SchemaResolver::references`], transitively, for the decoder to
//! compile beside it. An Avro schema with `references` (types registered under other subjects)
//! is handed to the decoder as one self-contained schema: each referenced named type's definition is put in place
//! of its first use, the way the Java serializer's `AvroSchema` resolves them.

use std::collections::HashMap;

use decant_decode::{RegisteredSchema, ResolveError, SchemaFormat, SchemaResolver};
use decant_model::RetryClass;
use serde_json::Value as Json;

use crate::client::RegistryClient;
use crate::error::RegistryError;
use crate::types::{Schema, SchemaType, Version};

/// References nest at most this deep (a cycle is an error, not a stack overflow).
const MAX_REFERENCE_DEPTH: usize = 32;

impl SchemaResolver for RegistryClient {
    fn resolve(&self, id: u32) -> Result<RegisteredSchema, ResolveError> {
        let to_resolve = |e: RegistryError| ResolveError {
            retriable: e.retry_class() == RetryClass::Retriable,
            message: e.to_string(),
        };
        let schema = self.schema_by_id(id).map_err(to_resolve)?;
        let format = format_of(schema.schema_type);
        let text = if schema.schema_type == SchemaType::Avro && !schema.references.is_empty() {
            self.inline_avro_references(&schema).map_err(to_resolve)?
        } else {
            schema.text.clone()
        };
        Ok(RegisteredSchema { format, text })
    }

    /// The schemas schema `id` imports, transitively, each once, by the name its importer
    /// uses (a Protobuf `import` path): what the Protobuf decoder compiles beside it.
    fn references(&self, id: u32) -> Result<Vec<(String, RegisteredSchema)>, ResolveError> {
        let to_resolve = |e: RegistryError| ResolveError {
            retriable: e.retry_class() == RetryClass::Retriable,
            message: e.to_string(),
        };
        let schema = self.schema_by_id(id).map_err(to_resolve)?;
        let mut out = Vec::new();
        self.collect_references(&schema, &mut out, 0)
            .map_err(to_resolve)?;
        Ok(out)
    }
}

fn format_of(t: SchemaType) -> SchemaFormat {
    match t {
        SchemaType::Avro => SchemaFormat::Avro,
        SchemaType::Json => SchemaFormat::Json,
        SchemaType::Protobuf => SchemaFormat::Protobuf,
    }
}

impl RegistryClient {
    /// An Avro schema with its references' definitions inlined at their first use.
    pub fn inline_avro_references(&self, schema: &Schema) -> Result<String, RegistryError> {
        let mut defs = HashMap::new();
        self.collect_definitions(schema, &mut defs, 0)?;
        let mut root: Json =
            serde_json::from_str(&schema.text).map_err(|e| RegistryError::Protocol {
                url: self.urls().first().cloned().unwrap_or_default(),
                message: format!("Avro schema with references is not JSON: {e}"),
            })?;
        inline(&mut root, "", &mut defs);
        Ok(root.to_string())
    }

    /// `schema`'s references and theirs, depth first, each name once (imports before importers).
    fn collect_references(
        &self,
        schema: &Schema,
        out: &mut Vec<(String, RegisteredSchema)>,
        depth: usize,
    ) -> Result<(), RegistryError> {
        if depth > MAX_REFERENCE_DEPTH {
            return Err(RegistryError::Protocol {
                url: self.urls().first().cloned().unwrap_or_default(),
                message: format!("schema references nest deeper than {MAX_REFERENCE_DEPTH}"),
            });
        }
        for r in &schema.references {
            if out.iter().any(|(name, _)| *name == r.name) {
                continue;
            }
            let referenced = self.version(&r.subject, Version::Number(r.version))?;
            self.collect_references(&referenced.schema, out, depth + 1)?;
            out.push((
                r.name.clone(),
                RegisteredSchema {
                    format: format_of(referenced.schema.schema_type),
                    text: referenced.schema.text.clone(),
                },
            ));
        }
        Ok(())
    }

    /// Full name → definition (itself inlined) of every schema `schema` references, transitively.
    fn collect_definitions(
        &self,
        schema: &Schema,
        defs: &mut HashMap<String, Json>,
        depth: usize,
    ) -> Result<(), RegistryError> {
        if depth > MAX_REFERENCE_DEPTH {
            return Err(RegistryError::Protocol {
                url: self.urls().first().cloned().unwrap_or_default(),
                message: format!("schema references nest deeper than {MAX_REFERENCE_DEPTH}"),
            });
        }
        for r in &schema.references {
            if defs.contains_key(&r.name) {
                continue;
            }
            let referenced = self.version(&r.subject, Version::Number(r.version))?;
            let mut nested = HashMap::new();
            self.collect_definitions(&referenced.schema, &mut nested, depth + 1)?;
            let mut def: Json = serde_json::from_str(&referenced.schema.text).map_err(|e| {
                RegistryError::Protocol {
                    url: self.urls().first().cloned().unwrap_or_default(),
                    message: format!(
                        "referenced schema {} version {} is not JSON: {e}",
                        r.subject, r.version
                    ),
                }
            })?;
            inline(&mut def, "", &mut nested);
            // what the nested schema did not use stays available to the outer one
            for (k, v) in nested {
                defs.entry(k).or_insert(v);
            }
            defs.insert(r.name.clone(), def);
        }
        Ok(())
    }
}

/// Replaces the first use of each name in `defs` (removing it from `defs`) by its definition,
/// in document order. `namespace` is the enclosing one (for names written without a dot).
fn inline(node: &mut Json, namespace: &str, defs: &mut HashMap<String, Json>) {
    if defs.is_empty() {
        return;
    }
    match node {
        Json::String(name) => {
            let full = if name.contains('.') || namespace.is_empty() {
                name.clone()
            } else {
                format!("{namespace}.{name}")
            };
            let found = defs.remove(&full).or_else(|| defs.remove(name.as_str()));
            if let Some(def) = found {
                *node = def;
            }
        }
        Json::Array(items) => {
            for i in items {
                inline(i, namespace, defs);
            }
        }
        Json::Object(map) => {
            let own_ns = match (map.get("name").and_then(Json::as_str), map.get("namespace")) {
                (Some(n), _) if n.contains('.') => {
                    n.rsplit_once('.').map_or("", |p| p.0).to_owned()
                }
                (_, Some(Json::String(ns))) => ns.clone(),
                _ => namespace.to_owned(),
            };
            // a named type defined here takes its name out of the pending set
            if let Some(Json::String(n)) = map.get("name")
                && map.contains_key("type")
                && matches!(map.get("type"), Some(Json::String(t)) if t == "record" || t == "enum" || t == "fixed")
            {
                let full = if n.contains('.') || own_ns.is_empty() {
                    n.clone()
                } else {
                    format!("{own_ns}.{n}")
                };
                defs.remove(&full);
            }
            for key in ["type", "items", "values", "fields"] {
                if let Some(v) = map.get_mut(key) {
                    inline(v, &own_ns, defs);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_use_gets_the_definition() {
        let mut root: Json = serde_json::from_str(
            r#"{"type":"record","name":"Order","namespace":"shop","fields":[
                {"name":"ship","type":"shop.Address"},
                {"name":"bill","type":["null","Address"]}]}"#,
        )
        .expect("json");
        let mut defs = HashMap::new();
        defs.insert(
            "shop.Address".to_owned(),
            serde_json::json!({"type":"record","name":"Address","namespace":"shop","fields":[{"name":"street","type":"string"}]}),
        );
        inline(&mut root, "", &mut defs);
        assert!(defs.is_empty());
        assert_eq!(root["fields"][0]["type"]["name"], "Address");
        assert_eq!(root["fields"][1]["type"][1], "Address");
        apache_avro::Schema::parse_str(&root.to_string()).expect("one valid Avro schema");
    }
}
