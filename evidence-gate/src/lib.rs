//! The evidence gate: what a Kakeya engine report must look like, and the rules that decide
//! whether it counts as evidence.
//!
//! A report is evidence only when it parses, carries a known `kind` and `schema_version`,
//! has complete provenance (engine version, device, params, timestamps), holds only finite
//! numbers, is not a dry run or a mock, and meets the rules of its kind. The gate fails
//! closed: an unknown kind, an unparseable file or a missing expected report is a failure.
//!
//! The runner embeds the [`Verdict`] in every signed result; `evidence-gate check` runs the
//! same code from the command line.

mod envelope;
mod gate;
mod kinds;
mod verdict;

pub use envelope::{Host, Provenance, REPORT_SCHEMA_VERSION, now_rfc3339};
pub use gate::{check_dir, check_paths, check_report_bytes, check_report_file};
pub use kinds::known_kinds;
pub use verdict::{ReportVerdict, Verdict, Violation};
