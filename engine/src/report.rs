//! Writing reports in the evidence gate's envelope, with provenance filled in from what the
//! command actually did.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use evidence_gate::{Host, Provenance, REPORT_SCHEMA_VERSION, now_rfc3339};
use serde_json::{Map, Value};

use crate::ENGINE_VERSION;

/// Errors while writing a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot write report {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("report body for kind {kind} must be a JSON object")]
    NotAnObject { kind: String },
}

/// Collects provenance while a measurement runs; `finish` stamps the end time.
pub struct ReportBuilder {
    kind: String,
    device: String,
    params: Map<String, Value>,
    model_digests: Map<String, Value>,
    started_at: String,
    started: Instant,
}

impl ReportBuilder {
    /// Start timing a report of `kind` on `device` with the parameters the command used.
    pub fn start(kind: &str, device: &str, params: Map<String, Value>) -> Self {
        ReportBuilder {
            kind: kind.to_string(),
            device: device.to_string(),
            params,
            model_digests: Map::new(),
            started_at: now_rfc3339(),
            started: Instant::now(),
        }
    }

    /// Record the sha256 of a model file the run read.
    pub fn model_digest(&mut self, name: &str, sha256: &str) {
        self.model_digests
            .insert(name.to_string(), Value::String(sha256.to_string()));
    }

    /// Name the device once it is known (e.g. after probing).
    pub fn set_device(&mut self, device: &str) {
        self.device = device.to_string();
    }

    /// Seconds since `start`, on the monotonic clock.
    pub fn elapsed_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Stamp the end time and merge the envelope into `body`.
    pub fn finish(self, body: Value) -> Result<Value, ReportError> {
        let Value::Object(mut map) = body else {
            return Err(ReportError::NotAnObject { kind: self.kind });
        };
        let provenance = Provenance {
            engine_version: ENGINE_VERSION.to_string(),
            device: self.device,
            params: self.params,
            model_digests: self.model_digests,
            started_at: self.started_at,
            finished_at: now_rfc3339(),
            host: Host::current(),
        };
        map.insert("kind".into(), Value::String(self.kind));
        map.insert("schema_version".into(), Value::from(REPORT_SCHEMA_VERSION));
        map.insert(
            "provenance".into(),
            serde_json::to_value(provenance).unwrap_or(Value::Null),
        );
        Ok(Value::Object(map))
    }
}

/// Write a report so that a reader never sees half a file: temp file, fsync, rename.
pub fn write_report(path: &Path, report: &Value) -> Result<(), ReportError> {
    let io = |source| ReportError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("json.partial");
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    let bytes = serde_json::to_vec_pretty(report).map_err(|e| io(std::io::Error::other(e)))?;
    file.write_all(&bytes).map_err(io)?;
    file.write_all(b"\n").map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
