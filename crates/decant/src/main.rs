//! The `decant` binary: command line, configuration and wiring.
//!
//! - `main.rs`: the CLI ([`Cli`]) and dispatch.
//! - `decode.rs`: `decant decode` — kcat-style JSON lines (or raw values) in, canonical decoded
//!   changes out; `--discard` measures decode throughput.
//! - `config.rs`: the decoder section of the configuration file (declared tables, policies).

mod config;
mod decode;

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
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Decode(args) => decode::run(args),
    }
}
