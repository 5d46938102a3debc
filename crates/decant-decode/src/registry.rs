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

    /// The schemas schema `id` imports through the registry's `references`, transitively, as
    /// (import name, schema). Protobuf needs them to compile its `import`s (Avro references are
    /// inlined into the text by the resolver instead). The default knows of none: an import
    /// that is neither bundled (Confluent's and Google's well-known files) nor returned here
    /// fails to compile, naming the file.
    fn references(&self, _id: u32) -> Result<Vec<(String, RegisteredSchema)>, ResolveError> {
        Ok(Vec::new())
    }
}

/// A fixed id → schema map.
#[derive(Debug, Clone, Default)]
pub struct StaticResolver {
    schemas: HashMap<u32, RegisteredSchema>,
    /// Per schema id: (import name, schema) of its references.
    references: HashMap<u32, Vec<(String, RegisteredSchema)>>,
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

    /// Gives schema `id` a reference: `import` is the name its text imports it by.
    pub fn with_reference(
        mut self,
        id: u32,
        import: impl Into<String>,
        format: SchemaFormat,
        text: impl Into<String>,
    ) -> Self {
        self.references.entry(id).or_default().push((
            import.into(),
            RegisteredSchema {
                format,
                text: text.into(),
            },
        ));
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

    fn references(&self, id: u32) -> Result<Vec<(String, RegisteredSchema)>, ResolveError> {
        Ok(self.references.get(&id).cloned().unwrap_or_default())
    }
}
