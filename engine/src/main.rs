//! `kakeya`: the engine's command line. Each subcommand writes a JSON report that the
//! evidence gate can judge.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

#[derive(Parser)]
#[command(
    name = "kakeya",
    version,
    about = "Kakeya engine: lattice KV-cache codec, models, speculative decoding, evaluations"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Probe this machine (devices actually computing, CPU features, OS) and write a report.
    EnvProbe(cli::env_probe::Args),
    /// Sleep for a while and write a `sleep` report (used to count executions and test leases).
    Sleep(cli::sleep::Args),
    /// Describe a local model directory (config and file digests) in a `model_info` report.
    ModelInfo(cli::model_info::Args),
    /// The E8/D4 lattice codec: bit counts, round trips, evaluations and benchmarks.
    #[command(subcommand)]
    Codec(cli::codec::Command),
    /// Write a seeded tiny Llama/Qwen3 model directory, or derive a draft from one.
    MakeTinyModel(cli::make_tiny_model::Args),
    /// Greedy generation from a local model directory (optionally through a compressed cache).
    Generate(cli::generate::Args),
    /// Lossless speculative decoding with a draft model, next to plain decoding, in a report.
    SpecDecode(cli::spec_decode::Args),
    /// Codec arms on K/V captured from a model run: bits, rel-MSE, next-token top-1 and KL.
    KvQuantEval(cli::kv_quant_eval::Args),
    /// Needle-in-a-haystack recall through several KV channels (raw cache as the oracle),
    /// with a recall heatmap per channel.
    Niah(cli::niah::Args),
    /// Drafts of one drafter under two configurations (or vs recorded drafts): agreement.
    DrafterParity(cli::drafter_parity::Args),
    /// Engine benchmarks on this machine: models and speculative decoding.
    #[command(subcommand)]
    Bench(cli::bench::Command),
    /// OpenAI-compatible HTTP server (runs `kakeya-serve`; `kakeya serve --help` for flags).
    Serve(cli::serve::Args),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KAKEYA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::EnvProbe(args) => cli::env_probe::run(args),
        Command::Sleep(args) => cli::sleep::run(args),
        Command::ModelInfo(args) => cli::model_info::run(args),
        Command::Codec(command) => cli::codec::run(command),
        Command::MakeTinyModel(args) => cli::make_tiny_model::run(args),
        Command::Generate(args) => cli::generate::run(args),
        Command::SpecDecode(args) => cli::spec_decode::run(args),
        Command::KvQuantEval(args) => cli::kv_quant_eval::run(args),
        Command::Bench(command) => cli::bench::run(command),
        Command::Niah(args) => cli::niah::run(args),
        Command::DrafterParity(args) => cli::drafter_parity::run(args),
        Command::Serve(args) => cli::serve::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kakeya: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
