//! # macbridge-presets: the allowlist
//!
//! This crate owns everything that decides *what* a runner may execute:
//!
//! - the preset definitions, `presets/defs/<name>.yaml`, compiled into every binary by
//!   `build.rs` (one `include_str!` per file), so a request branch can never change the
//!   allowlist and adding a file is how a preset is added;
//! - the strict parsing of those definitions ([`Preset::from_yaml`], [`catalog`]);
//! - the preset digest a manifest pins ([`Preset::digest`]);
//! - the typed, bounded params and the strict parsing of manifest values
//!   ([`Preset::validate_params`]); the client and the runner call the same code;
//! - argv rendering with `{placeholders}` and `${ENV:NAME}` ([`Preset::render`]);
//! - the run-time symlink-escape check for repo-relative paths ([`resolve_within`]).
//!
//! It does not execute anything, read manifests or know about git.
//!
//! ## Definition format
//!
//! ```yaml
//! name: sleep                   # [a-z][a-z0-9_-]*, at most 64 bytes, == file stem
//! description: Sleep for MS milliseconds and write a sleep report.
//! class: engine                 # engine | workload
//! argv: ["{engine}", "sleep", "--ms", "{ms}", "--out", "{out}/sleep.json"]
//! timeout_seconds: 660          # 1 ..= 86400
//! labels: []                    # runner labels needed, [a-z0-9][a-z0-9._-]*
//! reports: [sleep.json]         # files the job must write into {out}; may be empty
//! params:
//!   ms: {type: int, min: 0, max: 600000, default: 1000, description: Milliseconds to sleep.}
//! ```
//!
//! Param types: `int` (`min`, `max`: required, inclusive, i64), `float` (`min`, `max`:
//! required, inclusive, finite), `bool`, `enum` (`values`: non-empty list of strings), `path`
//! (repo-relative; optional `under: <prefix>`). `default` is optional; without it the param
//! is required. `description` is optional for params.
//!
//! Parsing is strict: unknown fields, duplicate keys, unknown types, fields that do not apply
//! to the type (`min` on a path), `min > max`, a `default` that fails its own type's
//! validation, `default: null`, a placeholder that is not known, `{workspace}` in an engine
//! preset, and a declared param the argv never uses are all errors naming the file.
//!
//! ## Argv placeholders
//!
//! `{engine}` (the engine binary), `{out}` (absolute report folder), `{workspace}` (the
//! checked-out workload; workload presets only), `{<param>}` (the param's canonical string),
//! `${ENV:NAME}` with `NAME` matching `[A-Z][A-Z0-9_]*` (from the runner config's env map;
//! unset or empty is [`PresetError::MissingEnv`]). Placeholders may sit inside a token
//! (`--out={out}/x.json`); `{{` and `}}` are literal braces; `${` always starts an env
//! placeholder. Substitution is a single pass over the template: substituted text is never
//! scanned again. The result is an argv vector; no shell is involved.
//!
//! `argv_when` (optional) appends tokens only for some values of an enum or bool param
//! (`{param: drafter, values: [model], argv: ["--draft", "${ENV:KAKEYA_DRAFT_MODEL}"]}`), so an
//! env variable only those values use is required only then ([`Preset::required_env_for`]).
//!
//! ## Param validation
//!
//! Manifest values are JSON. A JSON string is parsed strictly by the param's type; otherwise
//! only the native JSON type is accepted (`int`: a JSON integer, `5.0` is refused; `float`:
//! any JSON number; `bool`: a JSON boolean). `null`, arrays, objects and params the preset
//! does not declare are refused; a missing param without default is refused. Strings are at
//! most 1024 bytes without control characters.
//!
//! - `int`: ASCII `-?[0-9]+`, fits i64, within bounds. `+5`, `5_0`, ` 5`, `5 `, `1e3`,
//!   `0x10`, full-width or other non-ASCII digits and the empty string are refused.
//! - `float`: ASCII `-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?`, finite, within bounds; `nan`,
//!   `inf`, `.5`, `5.`, `+1` are refused. `-0` becomes `0`.
//! - `bool`: exactly `true` or `false`.
//! - `enum`: exactly one of the listed values.
//! - `path`: non-empty; no leading `/` or `~`, no `..` component, no backslash, no control
//!   characters, no drive prefix, no leading `-` after normalisation (it would read as an
//!   option). `.` and empty components are dropped. With `under`, the normalised path must
//!   equal `under` or start with `under/`. When a workload is rendered, every path param is
//!   also checked with [`resolve_within`] against the checkout: a symlink leading out of it
//!   is a [`PresetError::PathEscape`].

mod catalog;
mod definition;
mod error;
mod params;
mod path;
mod preset;
mod render;

pub use catalog::{Catalog, catalog};
pub use error::PresetError;
pub use params::{MAX_STRING_BYTES, ParamKind, ParamSpec, ParamValue, ValidatedParams};
pub use path::resolve_within;
pub use preset::{ArgvWhen, Preset, PresetClass};
pub use render::RenderContext;
