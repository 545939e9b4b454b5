//! `evidence-gate check PATH... [--expect NAME]... [--json]`: judge engine reports.
//! Exit 0 when everything passes, 1 when anything fails, 2 on bad usage.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "evidence-gate",
    version,
    about = "Judge Kakeya engine reports: schema, provenance, consistency and per-kind rules"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check report files, or every *.json in the folders given. Exits 0 only if all pass.
    Check {
        /// Report files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// A report that must exist, relative to the single folder given (repeatable).
        #[arg(long = "expect", value_name = "NAME")]
        expect: Vec<String>,
        /// Print the verdict as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the report kinds this gate can judge.
    Kinds {
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check {
            paths,
            expect,
            json,
        } => {
            let verdict = if expect.is_empty() {
                evidence_gate::check_paths(&paths)
            } else if paths.len() == 1 && paths[0].is_dir() {
                evidence_gate::check_dir(&paths[0], &expect)
            } else {
                eprintln!("error: --expect needs exactly one folder as PATH");
                return ExitCode::from(2);
            };
            if json {
                match serde_json::to_string_pretty(&verdict) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(2);
                    }
                }
            } else {
                for report in &verdict.reports {
                    let status = if report.passed { "ok  " } else { "FAIL" };
                    let kind = report.kind.as_deref().unwrap_or("?");
                    println!("[{status}] {} (kind {kind})", report.path);
                    for v in &report.violations {
                        println!("       [{}] {}", v.code, v.message);
                    }
                }
                for v in &verdict.violations {
                    println!("[FAIL] [{}] {}", v.code, v.message);
                }
                println!("{}", verdict.summary());
            }
            if verdict.passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Command::Kinds { json } => {
            let kinds = evidence_gate::known_kinds();
            if json {
                let list: Vec<_> = kinds
                    .iter()
                    .map(|(k, v)| serde_json::json!({"kind": k, "schema_versions": v}))
                    .collect();
                println!("{}", serde_json::json!({ "kinds": list }));
            } else {
                for (kind, versions) in kinds {
                    println!("{kind}\tschema_version {versions:?}");
                }
            }
            ExitCode::SUCCESS
        }
    }
}
