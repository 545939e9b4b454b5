//! `kakeya serve ARGS…`: runs the `kakeya-serve` binary (package `kakeya-serve`, which
//! depends on this library, hence a separate binary) found next to this executable or on
//! PATH, passing every argument through (so `kakeya serve --help` is the server's help).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

#[derive(clap::Args)]
#[command(disable_help_flag = true, disable_version_flag = true)]
pub struct Args {
    /// Arguments for the server (see `kakeya serve --help`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

fn server_binary() -> Option<PathBuf> {
    let name = format!("kakeya-serve{}", std::env::consts::EXE_SUFFIX);
    let beside = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(&name)));
    if let Some(p) = beside.filter(|p| p.is_file()) {
        return Some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(&name))
        .find(|p| p.is_file())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let Some(bin) = server_binary() else {
        bail!(
            "`kakeya serve` needs the `kakeya-serve` binary next to `kakeya` or on PATH \
             (build it with `cargo build --release -p kakeya-serve`)"
        );
    };
    let mut cmd = Command::new(&bin);
    cmd.args(&args.args);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let err = cmd.exec();
        Err(err).with_context(|| format!("starting {}", bin.display()))
    }
    #[cfg(not(unix))]
    {
        let status = cmd
            .status()
            .with_context(|| format!("starting {}", bin.display()))?;
        std::process::exit(status.code().unwrap_or(1));
    }
}
