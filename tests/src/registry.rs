//! The bed's Schema Registry from Rust ([`Registry`], through `tests/bed/registry.sh`) and the
//! registry fixtures under `tests/fixtures/registry/<format>/`: `messages.jsonl` (kcat -J style,
//! framed keys and values as `key_b64` / `payload_b64`), `schemas.jsonl` (every schema id those
//! records use, with its subjects: `tests/bed/registry_dump.py`'s format) and, for captures,
//! `expected-state.jsonl` (PostgreSQL's final rows).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use decant_decode::{SchemaFormat, StaticResolver};
use decant_registry::{RegistryClient, RegistryConfig, Schema, SchemaType};
use serde_json::Value as Json;

use crate::Input;
use crate::bed::{bed_dir, free_port, random_name, run_ok};

/// A Schema Registry (Apicurio Registry, Confluent API) started through `tests/bed/registry.sh`
/// on a free port with a fresh directory (so schema ids start at 1); stopped and removed on drop.
pub struct Registry {
    pub port: u16,
    pub dir: PathBuf,
}

impl Registry {
    pub fn start() -> Registry {
        let r = Registry {
            port: free_port(),
            dir: std::env::temp_dir().join(random_name("decant-registry")),
        };
        run_ok(&mut r.script("start"), "registry.sh start");
        r
    }

    fn script(&self, action: &str) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg(bed_dir().join("registry.sh"))
            .arg(action)
            .arg("--dir")
            .arg(&self.dir)
            .arg("--port")
            .arg(self.port.to_string());
        cmd
    }

    /// The Confluent-compatible API's base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/apis/ccompat/v7", self.port)
    }

    pub fn client(&self) -> RegistryClient {
        RegistryClient::new(&RegistryConfig::new(self.url())).expect("registry client")
    }

    pub fn stop(&self) {
        run_ok(&mut self.script("stop"), "registry.sh stop");
    }

    /// Starts it again on the same port and directory (its schemas and ids kept).
    pub fn restart(&self) {
        run_ok(&mut self.script("start"), "registry.sh start");
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.script("stop").output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One line of a fixture's `schemas.jsonl`.
#[derive(Debug, Clone)]
pub struct FixtureSchema {
    pub id: u32,
    pub schema_type: SchemaType,
    /// (subject, version) pairs that used the id when the fixture was made.
    pub subjects: Vec<(String, i32)>,
    pub text: String,
}

pub fn registry_fixture_dir(format: &str) -> PathBuf {
    crate::fixtures_dir().join("registry").join(format)
}

pub fn load_schemas(path: &Path) -> Vec<FixtureSchema> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Json = serde_json::from_str(l).expect("schemas.jsonl line");
            FixtureSchema {
                id: v["id"].as_u64().expect("id") as u32,
                schema_type: match v["schemaType"].as_str() {
                    Some("JSON") => SchemaType::Json,
                    Some("PROTOBUF") => SchemaType::Protobuf,
                    _ => SchemaType::Avro,
                },
                subjects: v["subjects"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| {
                        (
                            p[0].as_str().expect("subject").to_owned(),
                            p[1].as_i64().expect("version") as i32,
                        )
                    })
                    .collect(),
                text: v["schema"].as_str().expect("schema").to_owned(),
            }
        })
        .collect()
}

pub fn load_messages(path: &Path) -> Vec<Input> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(Input::from_kcat)
        .collect()
}

/// The fixture's schemas by their original ids, for decoding without a registry.
pub fn static_resolver(schemas: &[FixtureSchema]) -> StaticResolver {
    schemas.iter().fold(StaticResolver::new(), |r, s| {
        let format = match s.schema_type {
            SchemaType::Avro => SchemaFormat::Avro,
            SchemaType::Json => SchemaFormat::Json,
            SchemaType::Protobuf => SchemaFormat::Protobuf,
        };
        r.with(s.id, format, s.text.clone())
    })
}

/// Registers every fixture schema under its subjects in `client`'s registry (in id order);
/// returns original id → the id the registry gave.
pub fn register_all(client: &RegistryClient, schemas: &[FixtureSchema]) -> HashMap<u32, u32> {
    let mut map = HashMap::new();
    for s in schemas {
        let schema = Schema::new(s.schema_type, s.text.clone());
        for (subject, _) in &s.subjects {
            let id = client
                .register(subject, &schema)
                .unwrap_or_else(|e| panic!("registering {subject}: {e}"));
            map.insert(s.id, id);
        }
    }
    map
}

/// A framed key or value (magic 0 + 4-byte id) with its id replaced through `ids`.
pub fn reframe(bytes: &[u8], ids: &HashMap<u32, u32>) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if bytes.len() >= 5 && bytes[0] == 0 {
        let old = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        let new = ids
            .get(&old)
            .unwrap_or_else(|| panic!("schema id {old} is not in schemas.jsonl"));
        out[1..5].copy_from_slice(&new.to_be_bytes());
    }
    out
}

/// kcat -J lines of `inputs` (keys and values base64), for `decant decode`.
pub fn kcat_lines(inputs: &[Input]) -> String {
    use base64::Engine as _;
    let b64 = |b: &Option<Vec<u8>>| {
        b.as_ref()
            .map(|b| Json::String(base64::engine::general_purpose::STANDARD.encode(b)))
            .unwrap_or(Json::Null)
    };
    let mut out = String::new();
    for i in inputs {
        let headers: Vec<Json> = i
            .headers
            .iter()
            .flat_map(|(k, v)| {
                [
                    Json::String(k.clone()),
                    v.as_ref()
                        .map(|v| Json::String(String::from_utf8_lossy(v).into_owned()))
                        .unwrap_or(Json::Null),
                ]
            })
            .collect();
        let line = serde_json::json!({
            "topic": i.topic, "partition": i.partition, "offset": i.offset,
            "headers": headers, "key_b64": b64(&i.key), "payload_b64": b64(&i.value),
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

/// A capture of the bed's workload (`avro`, `json_sr`), registered in a fresh bed registry, its
/// records reframed with the ids the registry gave, and PostgreSQL's final state (one workload:
/// the Avro capture's expected state serves every format).
pub fn framed_capture(format: &str) -> (Registry, Vec<Input>, Vec<Json>) {
    let dir = registry_fixture_dir(format);
    let schemas = load_schemas(&dir.join("schemas.jsonl"));
    let inputs = load_messages(&dir.join("messages.jsonl"));
    let expected_file = registry_fixture_dir("avro").join("expected-state.jsonl");
    let expected: Vec<Json> = std::fs::read_to_string(expected_file)
        .expect("expected state")
        .lines()
        .map(|l| serde_json::from_str(l).expect("expected-state line"))
        .collect();
    let registry = Registry::start();
    let ids = register_all(&registry.client(), &schemas);
    let framed: Vec<Input> = inputs
        .iter()
        .map(|i| Input {
            key: i.key.as_deref().map(|k| reframe(k, &ids)),
            value: i.value.as_deref().map(|v| reframe(v, &ids)),
            ..i.clone()
        })
        .collect();
    (registry, framed, expected)
}

/// Produces a capture's records to the bed's topic names under a run's source prefix
/// (`decant.bed.composite` → `{prefix}.bed.composite`).
pub fn produce_capture(bootstrap: &str, prefix: &str, inputs: &[Input]) {
    crate::bed::produce_inputs(bootstrap, inputs, "none", |t| {
        format!("{prefix}.{}", t.split_once('.').map_or(t, |(_, rest)| rest))
    });
}

/// A live PostgreSQL source (Debezium into the bed's broker), a fresh registry, and `decant
/// run` writing `output.format = format` into the topics `<out>.*`, its schemas registered in
/// that registry; started and ready (`/ready` 200).
pub struct RegistryOutputRun {
    pub source: crate::bed::LiveSource,
    pub registry: Registry,
    pub out: String,
    pub work: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    pub port: u16,
    pub decant: crate::bed::DecantProcess,
}

impl RegistryOutputRun {
    /// `registry_settings`: extra `[schema_registry]` lines (timeouts, retries).
    pub fn start(format: &str, registry_settings: &str) -> RegistryOutputRun {
        let source = crate::bed::LiveSource::start();
        let registry = Registry::start();
        let out = random_name("out");
        let work = std::env::temp_dir().join(random_name(&format!("decant-{format}-out")));
        let extra = format!(
            "[schema_registry]\nurl = \"{}\"\n{registry_settings}",
            registry.url()
        );
        let (config, port) = crate::bed::write_decant_config(
            &work,
            &source.broker.bootstrap(),
            &source.prefix,
            &out,
            &extra,
        );
        let log = work.join("decant.log");
        let decant = start_writing(&config, &log, format, port);
        RegistryOutputRun {
            source,
            registry,
            out,
            work,
            config,
            log,
            port,
            decant,
        }
    }
}

/// `decant run --config config` writing `format`, once `/ready` answers 200 on `port`.
pub fn start_writing(
    config: &Path,
    log: &Path,
    format: &str,
    port: u16,
) -> crate::bed::DecantProcess {
    let decant =
        crate::bed::DecantProcess::start(config, log, &[("DECANT_OUTPUT__FORMAT", format)]);
    crate::bed::wait_for(std::time::Duration::from_secs(60), "decant /ready", || {
        crate::bed::http_get(port, "/ready").filter(|(s, _)| *s == 200)
    });
    decant
}
