//! A blocking client of Confluent's Schema Registry REST API (and of registries that speak it:
//! Apicurio's `/apis/ccompat/v7`, Redpanda, Karapace), for decant's decoder and its registry output formats (Avro, Protobuf).
//!
//! Map of the crate:
//! - [`config`]: [`RegistryConfig`], the `[schema_registry]` TOML section (URLs, basic or bearer
//!   authentication, CA file, client certificate, timeouts, retries); [`Secret`] never prints.
//! - [`client`]: [`RegistryClient`], one method per REST call (schema by id, subjects and
//!   versions, register, lookup, compatibility check and levels). Retriable failures
//!   (connection errors, timeouts, HTTP 5xx, 408, 429) are retried with capped exponential
//!   backoff, moving to the next URL; schemas by id and numbered versions are cached for good.
//! - [`resolver`]: `RegistryClient` as the decoder's [`decant_decode::SchemaResolver`]
//!   (retriable = the registry is unreachable or overloaded; a 404 is not), with Avro schema
//!   references inlined.
//! - [`registered`]: [`RegisteredEncoder`], the compacted-topic sink's
//!   `decant_model::RecordEncoder` for every registry format: derives a table's key and value
//!   schemas through a [`WireFormat`], registers them through a [`Registrar`] (this crate's
//!   client) under [`SubjectNameStrategy`]'s subjects before the first record needing them,
//!   frames records `0x00 + id + payload`, and turns registry refusals into a stopped table
//!   and outages into waits.
//! - [`avro_output`]: [`AvroFormat`] (`output.format = "avro"`, [`AvroEncoder`]): Avro record
//!   schemas and Avro binary payloads; the type mapping is in its documentation.
//! - [`json_sr_output`]: [`JsonSchemaFormat`] (`output.format = "json_sr"`, [`JsonSrEncoder`]):
//!   JSON Schemas in Kafka Connect's conventions and UTF-8 JSON payloads; the type mapping is in
//!   its documentation.
//! - [`protobuf_output`]: [`ProtobufFormat`] (`output.format = "protobuf"`,
//!   [`ProtobufEncoder`]): proto3 `Key` / `Value` messages with stable field numbers, framed
//!   with message indexes; the type mapping is in its documentation.
//! - [`error`]: [`RegistryError`] and its [`decant_model::RetryClass`].
//! - [`types`]: [`Schema`], [`SubjectSchema`], [`Version`], [`Compatibility`].
//!
//! Why `ureq` and not the `schema_registry_converter` crate (or `reqwest::blocking`): the
//! decoder calls the resolver synchronously, possibly from a thread of a process that also runs
//! a tokio runtime (the Iceberg writer). `schema_registry_converter`'s blocking API is
//! `reqwest::blocking`, which runs a runtime of its own and panics when used from within an
//! async context; it also retries nothing (it fails over between URLs only), treats only 502
//! and 503 as retriable (not 429, 500, 504 or timeouts), prints its basic-auth password in
//! `Debug` of its settings, and brings reqwest 0.13 and a TLS stack choice (native-tls by
//! default) beside the reqwest 0.12 / rustls decant already has. Its codecs (Avro, Protobuf,
//! JSON) are not needed: decant decodes records itself. `ureq` is a small, maintained,
//! blocking HTTP client without a runtime; it uses the same rustls (aws-lc-rs provider) as the
//! rest of decant.
//!
//! Tests: `tests/fake_registry.rs` (a scripted HTTP server in the test process: requests sent,
//! retries, failover, authentication headers, redaction) and `tests/bed_registry.rs` (the bed's
//! registry, `tests/bed/registry.sh`: set `DECANT_REGISTRY_URL` to its URL, and
//! `DECANT_REGISTRY_SECURE_ENV` to the `secure.env` of `registry.sh start --secure` for TLS,
//! basic, bearer and mTLS; without them those tests print why they skip and pass).
//! `tests/run.sh` sets both.
//!
//! Credentials never appear in `Debug`, `Display`, errors or logs: URLs are kept without their
//! `user:password@` part (which is taken as basic authentication), and the `Authorization`
//! header value is a [`Secret`].

pub mod avro_output;
pub mod client;
pub mod config;
pub mod error;
pub mod json_sr_output;
pub mod protobuf_output;
pub mod registered;
pub mod resolver;
pub mod types;

pub use avro_output::{AvroEncoder, AvroFormat};
pub use client::RegistryClient;
pub use config::{BasicAuth, RegistryConfig, Secret, Urls};
pub use error::RegistryError;
pub use json_sr_output::{JsonSchemaFormat, JsonSrEncoder};
pub use protobuf_output::{ProtobufEncoder, ProtobufFormat};
pub use registered::{RegisteredEncoder, Registrar, SubjectNameStrategy, WireFormat};
pub use types::{
    Compatibility, CompatibilityResult, Schema, SchemaReference, SchemaType, SubjectSchema,
    SubjectVersion, Version,
};
