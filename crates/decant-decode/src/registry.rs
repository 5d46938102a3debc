//! Schema-registry seam: resolving a schema id is I/O, so the decoder asks a [`SchemaResolver`].
//! The registry HTTP client lives outside this crate; [`StaticResolver`] serves tests and files.

use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaFormat {
    Avro,
    /// Confluent JSON_SR: the value after the 5-byte header is a plain JSON document.
    Json,
    Protobuf,
}

#[derive(Debug, Clone)]
pub struct RegisteredSchema {
    pub format: SchemaFormat,
    /// The schema text as the registry returns it (Avro JSON, JSON Schema, .proto).
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct ResolveError {
    pub message: String,
    /// The registry was unreachable or overloaded; the same id may resolve later.
    pub retriable: bool,
}

pub trait SchemaResolver: Send {
    fn resolve(&self, id: u32) -> Result<RegisteredSchema, ResolveError>;
}

/// A fixed id → schema map.
#[derive(Debug, Clone, Default)]
pub struct StaticResolver {
    schemas: HashMap<u32, RegisteredSchema>,
}

impl StaticResolver {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, id: u32, format: SchemaFormat, text: impl Into<String>) -> Self {
        self.schemas.insert(
            id,
            RegisteredSchema {
                format,
                text: text.into(),
            },
        );
        self
    }
}

impl SchemaResolver for StaticResolver {
    fn resolve(&self, id: u32) -> Result<RegisteredSchema, ResolveError> {
        self.schemas.get(&id).cloned().ok_or(ResolveError {
            message: format!("schema id {id} is not registered"),
            retriable: false,
        })
    }
}
