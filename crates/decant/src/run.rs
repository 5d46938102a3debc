//! `decant run` and `decant validate`: load and check the configuration, set up logs, metrics
//! endpoints and signal handling, check that the cluster answers and accepts the credentials,
//! then hand over to `decant_pipeline::run`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use decant_pipeline::config::{OutputFormat, SinkKind};
use decant_pipeline::{Health, Metrics, Runtime};

use crate::config::{self, FileConfig, LogConfig};

#[derive(Args)]
pub struct RunArgs {
    /// Configuration file (TOML); see the README's `decant run` reference.
    #[arg(long)]
    config: PathBuf,
}

#[derive(Args)]
pub struct ValidateArgs {
    /// Configuration file (TOML) to check.
    #[arg(long)]
    config: PathBuf,
}

/// Loads and checks everything; all problems in one error.
fn load_checked(path: &std::path::Path) -> Result<FileConfig, Vec<String>> {
    let cfg = config::load_all(path, &config::env_vars())?;
    let problems = config::check_for_run(&cfg);
    if problems.is_empty() {
        Ok(cfg)
    } else {
        Err(problems
            .into_iter()
            .map(|p| format!("{}: {p}", path.display()))
            .collect())
    }
}

pub fn validate(args: ValidateArgs) -> Result<()> {
    match load_checked(&args.config) {
        Ok(cfg) => {
            let p = &cfg.pipeline;
            let i = &cfg.iceberg;
            let source = match &p.source.topic_pattern {
                Some(re) => format!("topics matching {re:?}"),
                None => format!("{} topic(s)", p.source.topics.len()),
            };
            let output = match p.output.sink {
                SinkKind::Kafka => format!(
                    "topics {:?} ({})",
                    p.output.topic_template,
                    p.output.format.as_str()
                ),
                SinkKind::Iceberg if i.warehouse.is_empty() => format!(
                    "Iceberg tables {}.{} (catalog {})",
                    i.namespace,
                    i.table,
                    without_password(&i.catalog_uri)
                ),
                SinkKind::Iceberg => format!(
                    "Iceberg tables {}.{} in {} (catalog {})",
                    i.namespace,
                    i.table,
                    i.warehouse,
                    without_password(&i.catalog_uri)
                ),
            };
            let line = format!(
                "{}: OK — {source}, output {output}, {} table section(s), {:?} delivery",
                args.config.display(),
                p.tables.len(),
                p.delivery.mode
            );
            println!("{}", config::scrub(&line, &cfg.secrets.0));
            Ok(())
        }
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            bail!("{} configuration problem(s)", problems.len())
        }
    }
}

/// The compacted-topic sink from `[output]` and `[delivery]`, writing `output.format`.
fn upsert_topics(
    kafka: &decant_kafka::KafkaConfig,
    p: &decant_pipeline::PipelineConfig,
    registry: Option<&decant_registry::RegistryConfig>,
) -> Result<decant_kafka::UpsertTopics> {
    let encoder: Box<dyn decant_model::RecordEncoder> = match p.output.format {
        OutputFormat::Json => Box::new(decant_model::JsonEncoder),
        OutputFormat::Avro => Box::new(registered::<decant_registry::AvroFormat>(p, registry)?),
        OutputFormat::JsonSr => Box::new(registered::<decant_registry::JsonSchemaFormat>(
            p, registry,
        )?),
        OutputFormat::Protobuf => {
            Box::new(registered::<decant_registry::ProtobufFormat>(p, registry)?)
        }
    };
    let d = &p.delivery;
    decant_kafka::UpsertTopics::create(
        kafka,
        decant_kafka::UpsertConfig {
            exactly_once: d.mode == decant_pipeline::config::DeliveryMode::ExactlyOnce,
            transaction_timeout_ms: d.transaction_timeout_ms,
            commit_interval: Duration::from_millis(d.commit_interval_ms),
            commit_max_records: d.commit_max_records,
            partitions: p.output.partitions,
            replication_factor: p.output.replication_factor,
            create_topics: p.output.create_topics,
            provenance_headers: p.output.provenance_headers,
        },
    )
    .map(|sink| sink.with_encoder(encoder))
    .context("creating the output producer")
}

/// The registry-backed encoder of format `F`, its subjects named as `output` says.
fn registered<F: decant_registry::WireFormat + Default>(
    p: &decant_pipeline::PipelineConfig,
    registry: Option<&decant_registry::RegistryConfig>,
) -> Result<decant_registry::RegisteredEncoder<F>> {
    let registry = registry
        .with_context(|| format!("output.format = {:?} needs [schema_registry]", F::NAME))?;
    let client = decant_registry::RegistryClient::new(registry)
        .map_err(|e| anyhow::anyhow!("[schema_registry]: {e}"))?;
    Ok(
        decant_registry::RegisteredEncoder::<F>::new(Box::new(client))
            .with_subjects(subject_strategy(p.output.subject_name_strategy)),
    )
}

fn subject_strategy(
    s: decant_pipeline::config::SubjectNameStrategy,
) -> decant_registry::SubjectNameStrategy {
    use decant_pipeline::config::SubjectNameStrategy as S;
    match s {
        S::TopicName => decant_registry::SubjectNameStrategy::TopicName,
        S::RecordName => decant_registry::SubjectNameStrategy::RecordName,
        S::TopicRecordName => decant_registry::SubjectNameStrategy::TopicRecordName,
    }
}

/// The Iceberg sink from `[iceberg]`; the pipeline id defaults to the consumer group.
fn iceberg(
    kafka: &decant_kafka::KafkaConfig,
    p: &decant_pipeline::PipelineConfig,
    ic: &decant_iceberg::IcebergSinkConfig,
) -> Result<decant_iceberg::IcebergSink> {
    let pipeline = ic
        .pipeline
        .clone()
        .unwrap_or_else(|| kafka.group_id.clone());
    decant_iceberg::IcebergSink::open(ic.clone(), pipeline, p.output.prefix.clone())
        .map_err(|e| anyhow::anyhow!(decant_pipeline::error::chain(&e)))
        .context("opening the Iceberg catalog")
}

/// `scheme://user:password@host…` → `scheme://user:[redacted]@host…`.
fn without_password(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!(
                "{scheme}://{user}:{}@{host}{}",
                decant_kafka::config::REDACTED,
                &rest[authority_end..]
            )
        }
        _ => uri.to_owned(),
    }
}

/// Logs go to stderr: colour only when stderr is a terminal (never into files or collectors)
/// and `NO_COLOR` is unset; `log.format = "json"` writes one JSON object per line.
fn init_logging(log: &LogConfig) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = if log.format == "json" {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

pub fn run(args: RunArgs) -> Result<()> {
    let cfg = match load_checked(&args.config) {
        Ok(c) => c,
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            bail!(
                "{} configuration problem(s); see `decant validate`",
                problems.len()
            );
        }
    };
    init_logging(&cfg.log);
    let kafka = cfg.kafka.clone().context("[kafka] section")?;
    let mut decoder = decant_decode::Decoder::new(cfg.decode.decoder_config()?)
        .map_err(|e| anyhow::anyhow!("[decode]: {e}"))?;
    if let Some(registry) = &cfg.schema_registry {
        let client = decant_registry::RegistryClient::new(registry)
            .map_err(|e| anyhow::anyhow!("[schema_registry]: {e}"))?;
        decoder = decoder.with_resolver(Box::new(client));
    }
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    let shutdown = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        // A second signal while shutting down exits at once (status 1).
        signal_hook::flag::register_conditional_shutdown(sig, 1, shutdown.clone())
            .context("installing signal handlers")?;
        signal_hook::flag::register(sig, shutdown.clone()).context("installing signal handlers")?;
    }
    let obs = &cfg.pipeline.observability;
    if !obs.listen.is_empty() {
        let addr = decant_pipeline::observe::serve(
            &obs.listen,
            metrics.clone(),
            health.clone(),
            Duration::from_millis(obs.stall_after_ms),
        )
        .with_context(|| format!("listening on {}", obs.listen))?;
        tracing::info!(%addr, "serving /metrics, /health, /ready");
    }
    // A wrong password, an untrusted certificate or a rejected token stops here, with one
    // error, instead of librdkafka retrying behind a pipeline that never becomes ready.
    match decant_kafka::reach(&kafka) {
        Ok(r) => tracing::info!(brokers = r.brokers, "connected to the Kafka cluster"),
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            bail!("{e}");
        }
    }
    let rt = Runtime {
        metrics,
        health,
        shutdown,
    };
    let p = &cfg.pipeline;
    // One line per sink: build it, hand it to the loop.
    let summary = match p.output.sink {
        SinkKind::Kafka => {
            let sink = upsert_topics(&kafka, p, cfg.schema_registry.as_ref())?;
            decant_pipeline::run(&kafka, p, decoder, sink, &rt)
        }
        SinkKind::Iceberg => {
            decant_pipeline::run(&kafka, p, decoder, iceberg(&kafka, p, &cfg.iceberg)?, &rt)
        }
    }
    .map_err(|e| anyhow::anyhow!(decant_pipeline::error::chain(&e)))?;
    tracing::info!(
        records_in = summary.records_in,
        records_out = summary.records_out,
        dead_lettered = summary.dead_lettered,
        commits = summary.commits,
        rewinds = summary.rewinds,
        "decant run: clean shutdown"
    );
    Ok(())
}
