//! The envelope every engine report shares: `kind`, `schema_version` and `provenance`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Envelope version written by the engine today. Each kind may evolve its body separately.
pub const REPORT_SCHEMA_VERSION: u64 = 1;

/// Where and how a report was produced. Every field is required for a report to count.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Provenance {
    /// `kakeya` version that wrote the report.
    pub engine_version: String,
    /// Compute device the measurement ran on (`cpu`, `metal:0`, `cuda:0`).
    pub device: String,
    /// The parameters the command ran with, exactly as it used them.
    pub params: Map<String, Value>,
    /// sha256 of every model file the run read, keyed by file name (empty when no model).
    pub model_digests: Map<String, Value>,
    /// RFC 3339 UTC timestamps around the measured work.
    pub started_at: String,
    pub finished_at: String,
    pub host: Host,
}

/// The machine a report was produced on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Host {
    pub os: String,
    pub arch: String,
    pub cpus: u64,
}

impl Host {
    /// The machine this process runs on.
    pub fn current() -> Self {
        Host {
            os: std::env::consts::OS.to_string(),
            arch: std::env::consts::ARCH.to_string(),
            cpus: std::thread::available_parallelism()
                .map(|n| n.get() as u64)
                .unwrap_or(1),
        }
    }
}

/// Current UTC time as RFC 3339 (sub-second digits included).
pub fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

pub(crate) fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}
