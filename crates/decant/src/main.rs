//! The `decant` binary: command line, configuration and wiring.
//!
//! - `main.rs`: the CLI ([`Cli`]) and dispatch.
//! - `decode.rs`: `decant decode` — kcat-style JSON lines (or raw values) in, canonical decoded
//!   changes out; `--discard` measures decode throughput.
//! - `run.rs`: `decant run` (the service: logs, signals, metrics endpoints, then the pipeline)
//!   and `decant validate` (every configuration problem at once).
//! - `config.rs`: the configuration file: `${ENV}` interpolation, `DECANT_…` overrides,
//!   per-section typing, the `[decode]` and `[log]` sections.

mod config;
mod decode;
mod run;

use clap::{CommandFactory, Parser, Subcommand};

/// mimalloc: the loop allocates and frees small buffers per change on several threads (decode,
/// render, librdkafka, the Iceberg writer); glibc's malloc cost about 15 % of its CPU. Built with
/// mimalloc's `override`, so the C libraries linked in (librdkafka above all: a header, an op
/// and a message per output record, freed on its delivery thread) allocate from it too; with
/// glibc's malloc their allocations and cross-thread frees were a tenth of the CPU into topics.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "decant",
    about = "Debezium change streams, decoded right",
    disable_version_flag = true
)]
struct Cli {
    /// Print decant's version, librdkafka's version and its built-in features.
    #[arg(short = 'V', long)]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Decode Debezium records from a file or stdin and print one JSON line per change.
    Decode(decode::DecodeArgs),
    /// Consume Debezium topics and write compacted upsert topics, exactly once (a service).
    Run(run::RunArgs),
    /// Check a configuration file and report every problem at once (connects to nothing).
    Validate(run::ValidateArgs),
    /// Print decant's version, librdkafka's version and its built-in features.
    Version,
}

/// `decant version` / `decant --version`.
fn version() -> String {
    let b = decant_kafka::BuildInfo::get();
    format!(
        "decant {}\nlibrdkafka {}\nbuiltin.features {}",
        env!("CARGO_PKG_VERSION"),
        b.librdkafka_version,
        b.features.join(",")
    )
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        _ if cli.version => println!("{}", version()),
        Some(Command::Version) => println!("{}", version()),
        Some(Command::Decode(args)) => decode::run(args)?,
        Some(Command::Run(args)) => run::run(args)?,
        Some(Command::Validate(args)) => run::validate(args)?,
        None => {
            Cli::command().print_help()?;
            std::process::exit(2);
        }
    }
    Ok(())
}
