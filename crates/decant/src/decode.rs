//! `decant decode`: kcat `-J` JSON lines (or raw values) in, canonical decoded changes out.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::Args;
use decant_decode::render::render_in_order;
use decant_decode::{
    Decoder, Outcome, RegisteredSchema, ResolveError, SchemaFormat, SchemaResolver, StaticResolver,
};
use decant_model::{Header, KafkaRecord};
use decant_registry::{RegistryClient, RegistryConfig};
use serde_json::Value as Json;

use crate::config;

#[derive(Args)]
pub struct DecodeArgs {
    /// Input file; stdin when absent or `-`.
    input: Option<PathBuf>,
    /// Each line is one message value (no kcat envelope).
    #[arg(long)]
    raw: bool,
    /// Topic name to use with --raw (also names the table when the record does not).
    #[arg(long, default_value = "raw")]
    topic: String,
    /// Decode to batches and throw them away; print throughput to stderr.
    #[arg(long)]
    discard: bool,
    /// Configuration file (TOML) with a [decode] section: declared tables, policies.
    #[arg(long)]
    config: Option<PathBuf>,
    /// A registered schema for framed records: `ID=PATH` (Avro JSON), `ID=json:PATH` (JSON_SR).
    #[arg(long = "schema", value_name = "ID=PATH")]
    schemas: Vec<String>,
    /// A Confluent-compatible Schema Registry for framed records' schema ids not given with
    /// --schema (`http[s]://[KEY:SECRET@]host:port[/path]`; retries outages a few times).
    #[arg(long, value_name = "URL")]
    registry: Option<String>,
    /// Keep going after a bad record (it is reported on stderr and counted); default: stop.
    #[arg(long)]
    skip_errors: bool,
    /// Rows per batch before it is flushed to output.
    #[arg(long, default_value_t = 8192)]
    batch_rows: usize,
}

/// One input record, owned.
struct Owned {
    topic: String,
    partition: i32,
    offset: i64,
    ts: Option<i64>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
}

fn bytes_field(
    obj: &serde_json::Map<String, Json>,
    text: &str,
    b64: &str,
    line: usize,
) -> Result<Option<Vec<u8>>> {
    if let Some(v) = obj.get(b64).filter(|v| !v.is_null()) {
        let s = v
            .as_str()
            .with_context(|| format!("line {line}: {b64} must be a string"))?;
        return Ok(Some(
            STANDARD
                .decode(s)
                .with_context(|| format!("line {line}: {b64} is not base64"))?,
        ));
    }
    match obj.get(text) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.as_bytes().to_vec())),
        Some(other) => Ok(Some(other.to_string().into_bytes())),
    }
}

fn parse_kcat(line: &str, n: usize) -> Result<Owned> {
    let v: Json =
        serde_json::from_str(line).with_context(|| format!("line {n}: not a JSON object"))?;
    let obj = v
        .as_object()
        .with_context(|| format!("line {n}: not a JSON object"))?;
    let mut headers = Vec::new();
    if let Some(Json::Array(h)) = obj.get("headers") {
        for pair in h.chunks(2) {
            if let [k, v] = pair {
                headers.push((
                    k.as_str().unwrap_or_default().to_owned(),
                    v.as_str().map(|s| s.as_bytes().to_vec()),
                ));
            }
        }
    }
    Ok(Owned {
        topic: obj
            .get("topic")
            .and_then(Json::as_str)
            .unwrap_or("unknown")
            .to_owned(),
        partition: obj.get("partition").and_then(Json::as_i64).unwrap_or(0) as i32,
        offset: obj
            .get("offset")
            .and_then(Json::as_i64)
            .unwrap_or(n as i64 - 1),
        ts: obj.get("ts").and_then(Json::as_i64),
        headers,
        key: bytes_field(obj, "key", "key_b64", n)?,
        value: bytes_field(obj, "payload", "payload_b64", n)?,
    })
}

fn read_input(args: &DecodeArgs) -> Result<Vec<Owned>> {
    let reader: Box<dyn Read> = match &args.input {
        Some(p) if p.as_os_str() != "-" => {
            Box::new(std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?)
        }
        _ => Box::new(std::io::stdin()),
    };
    let mut out = Vec::new();
    for (i, line) in BufReader::new(reader).lines().enumerate() {
        let line = line.context("reading input")?;
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        if args.raw {
            out.push(Owned {
                topic: args.topic.clone(),
                partition: 0,
                offset: i as i64,
                ts: None,
                headers: Vec::new(),
                key: None,
                value: Some(line.into_bytes()),
            });
        } else {
            out.push(parse_kcat(&line, n)?);
        }
    }
    Ok(out)
}

/// Schemas given with --schema first, then the registry.
struct Resolver {
    fixed: StaticResolver,
    registry: Option<RegistryClient>,
}

impl SchemaResolver for Resolver {
    fn resolve(&self, id: u32) -> Result<RegisteredSchema, ResolveError> {
        match (self.fixed.resolve(id), &self.registry) {
            (Ok(s), _) => Ok(s),
            (Err(_), Some(registry)) => registry.resolve(id),
            (Err(e), None) => Err(e),
        }
    }
}

fn registry(url: Option<&str>) -> Result<Option<RegistryClient>> {
    url.map(|u| {
        RegistryClient::new(&RegistryConfig::new(u)).map_err(|e| anyhow::anyhow!("--registry: {e}"))
    })
    .transpose()
}

fn resolver(specs: &[String]) -> Result<StaticResolver> {
    let mut r = StaticResolver::new();
    for spec in specs {
        let (id, path) = spec
            .split_once('=')
            .with_context(|| format!("--schema {spec}: expected ID=PATH"))?;
        let id: u32 = id
            .parse()
            .with_context(|| format!("--schema {spec}: bad id"))?;
        let (format, path) = match path.split_once(':') {
            Some(("json", p)) => (SchemaFormat::Json, p),
            Some(("avro", p)) => (SchemaFormat::Avro, p),
            _ => (SchemaFormat::Avro, path),
        };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading schema {path}"))?;
        r = r.with(id, format, text);
    }
    Ok(r)
}

pub fn run(args: DecodeArgs) -> Result<()> {
    let file_cfg = match &args.config {
        Some(p) => config::load(p)?,
        None => config::FileConfig::default(),
    };
    let decoder_cfg = file_cfg.decode.decoder_config()?;
    let mut decoder = Decoder::new(decoder_cfg)
        .map_err(|e| anyhow::anyhow!("configuration: {e}"))?
        .with_resolver(Box::new(Resolver {
            fixed: resolver(&args.schemas)?,
            registry: registry(args.registry.as_deref())?,
        }));
    let records = read_input(&args)?;
    let bytes: usize = records
        .iter()
        .map(|r| r.value.as_ref().map_or(0, Vec::len))
        .sum();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut text = String::new();
    let mut controls = Vec::new();
    let mut errors = 0usize;
    let started = Instant::now();
    for r in &records {
        let headers: Vec<Header> = r
            .headers
            .iter()
            .map(|(k, v)| Header {
                key: k,
                value: v.as_deref(),
            })
            .collect();
        let rec = KafkaRecord {
            topic: &r.topic,
            partition: r.partition,
            offset: r.offset,
            timestamp_ms: r.ts,
            headers: &headers,
            key: r.key.as_deref(),
            value: r.value.as_deref(),
        };
        match decoder.decode(&rec) {
            Ok(Outcome::Row { .. }) => {}
            Ok(Outcome::Control(c)) => {
                if !args.discard {
                    controls.push(*c);
                }
            }
            Err(e) => {
                errors += 1;
                eprintln!("error: {e}");
                if !args.skip_errors {
                    flush(
                        &mut decoder,
                        &mut controls,
                        &mut text,
                        &mut out,
                        args.discard,
                    )?;
                    out.flush()?;
                    bail!("stopped at the first bad record (use --skip-errors to continue)");
                }
            }
        }
        if decoder.pending_rows() >= args.batch_rows {
            flush(
                &mut decoder,
                &mut controls,
                &mut text,
                &mut out,
                args.discard,
            )?;
        }
    }
    flush(
        &mut decoder,
        &mut controls,
        &mut text,
        &mut out,
        args.discard,
    )?;
    out.flush()?;
    let secs = started.elapsed().as_secs_f64();
    if args.discard {
        eprintln!(
            "decoded {} messages ({:.1} MB) in {:.6} s: {:.0} msgs/s, {:.1} MB/s, {} errors",
            records.len(),
            bytes as f64 / 1e6,
            secs,
            records.len() as f64 / secs,
            bytes as f64 / 1e6 / secs,
            errors
        );
    } else if errors > 0 {
        eprintln!("{errors} bad records skipped");
    }
    Ok(())
}

fn flush(
    decoder: &mut Decoder,
    controls: &mut Vec<decant_decode::ControlRecord>,
    text: &mut String,
    out: &mut impl Write,
    discard: bool,
) -> Result<()> {
    let batches = decoder
        .take_batches()
        .map_err(|e| anyhow::anyhow!("building batches: {e}"))?;
    if discard {
        return Ok(());
    }
    text.clear();
    render_in_order(&batches, controls, text);
    controls.clear();
    out.write_all(text.as_bytes())?;
    Ok(())
}
