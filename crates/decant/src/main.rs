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

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "decant",
    version,
    about = "Debezium change streams, decoded right"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decode Debezium records from a file or stdin and print one JSON line per change.
    Decode(decode::DecodeArgs),
    /// Consume Debezium topics and write compacted upsert topics, exactly once (a service).
    Run(run::RunArgs),
    /// Check a configuration file and report every problem at once.
    Validate(run::ValidateArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Decode(args) => decode::run(args),
        Command::Run(args) => run::run(args),
        Command::Validate(args) => run::validate(args),
    }
}
