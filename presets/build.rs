//! Compiles the allowlist into the crate.
//!
//! Every `defs/<name>.yaml` becomes one `include_str!` entry of a generated table, so the
//! preset definitions live inside the binary: a request branch can never add, remove or edit
//! a preset. Adding a file to `defs/` is the whole procedure for adding a preset; parsing and
//! validation happen in the library (where errors can name the file), not here.

use std::error::Error;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::{env, fs};

fn main() -> Result<(), Box<dyn Error>> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let defs_dir = manifest_dir.join("defs");
    // A directory argument makes cargo rerun us when any file inside is added, removed or
    // touched, which is what keeps the table in step with the folder.
    println!("cargo::rerun-if-changed=defs");
    println!("cargo::rerun-if-changed=build.rs");

    let mut entries: Vec<(String, PathBuf)> = Vec::new();
    for entry in
        fs::read_dir(&defs_dir).map_err(|e| format!("cannot read {}: {e}", defs_dir.display()))?
    {
        let path = entry?.path();
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            return Err(format!("{}: file name is not UTF-8", path.display()).into());
        };
        if file_name.starts_with('.') {
            // Editor swap files and the like are not definitions.
            continue;
        }
        if file_name.ends_with(".yml") {
            // Refuse rather than skip: a silently ignored definition is a preset that
            // mysteriously does not exist.
            return Err(format!("defs/{file_name}: preset definitions must end in .yaml").into());
        }
        if !file_name.ends_with(".yaml") {
            continue;
        }
        entries.push((file_name, path));
    }
    // Sorted so the generated table (and therefore the build) is reproducible.
    entries.sort();

    let mut table = String::from(
        "/// `(file name, YAML text)` of every `defs/*.yaml`, sorted by file name.\n\
         pub(crate) static DEFINITION_SOURCES: &[(&str, &str)] = &[\n",
    );
    for (file_name, path) in &entries {
        let Some(path) = path.to_str() else {
            return Err(format!("{}: path is not UTF-8", path.display()).into());
        };
        // `{:?}` on a str yields a valid Rust string literal, escapes included.
        writeln!(table, "    ({file_name:?}, include_str!({path:?})),")?;
    }
    table.push_str("];\n");

    let out = PathBuf::from(env::var("OUT_DIR")?).join("definition_sources.rs");
    fs::write(&out, table)?;
    Ok(())
}
