use std::path::PathBuf;

use anyhow::Context;
use kakeya_engine::{probe, report};
use serde_json::Map;

#[derive(clap::Args)]
pub struct Args {
    /// Where to write the `env_probe` report.
    #[arg(long, default_value = "env_probe.json")]
    out: PathBuf,
    /// Also print the report on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut params = Map::new();
    params.insert("out".into(), args.out.display().to_string().into());
    let mut builder = report::ReportBuilder::start("env_probe", "cpu", params);
    let (body, device) = probe::probe();
    builder.set_device(&device);
    let finished = builder.finish(body)?;
    report::write_report(&args.out, &finished)
        .with_context(|| format!("writing {}", args.out.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&finished)?);
    } else {
        eprintln!(
            "env-probe: best device {device}; report {}",
            args.out.display()
        );
    }
    Ok(())
}
