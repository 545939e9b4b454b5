//! The gate's answer, embedded verbatim in every signed result.

use serde::{Deserialize, Serialize};

/// One broken rule: a stable machine code plus a sentence for people.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Violation {
    pub code: String,
    pub message: String,
}

impl Violation {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Violation {
            code: code.to_string(),
            message: message.into(),
        }
    }
}

/// The judgement on one report file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReportVerdict {
    /// File name as given (relative to the job's report folder when the runner checks).
    pub path: String,
    pub kind: Option<String>,
    pub schema_version: Option<u64>,
    pub passed: bool,
    pub violations: Vec<Violation>,
}

impl ReportVerdict {
    pub(crate) fn from_violations(
        path: String,
        kind: Option<String>,
        schema_version: Option<u64>,
        violations: Vec<Violation>,
    ) -> Self {
        ReportVerdict {
            path,
            kind,
            schema_version,
            passed: violations.is_empty(),
            violations,
        }
    }
}

/// The judgement on everything one job produced.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Verdict {
    /// True only when every report passed, none was missing, and at least one was checked.
    pub passed: bool,
    pub reports: Vec<ReportVerdict>,
    /// Expected reports the job did not write.
    pub missing: Vec<String>,
    /// Problems with the set as a whole (e.g. nothing to check).
    pub violations: Vec<Violation>,
}

impl Verdict {
    pub(crate) fn assemble(
        reports: Vec<ReportVerdict>,
        missing: Vec<String>,
        mut violations: Vec<Violation>,
    ) -> Self {
        for name in &missing {
            violations.push(Violation::new(
                "MISSING_REPORT",
                format!("expected report {name} was not produced"),
            ));
        }
        if reports.is_empty() && missing.is_empty() {
            violations.push(Violation::new("NO_REPORTS", "no report to check"));
        }
        let passed = violations.is_empty() && reports.iter().all(|r| r.passed);
        Verdict {
            passed,
            reports,
            missing,
            violations,
        }
    }

    /// One line for logs and terminals.
    pub fn summary(&self) -> String {
        let failed = self.reports.iter().filter(|r| !r.passed).count();
        format!(
            "{}: {} report(s) checked, {} failed, {} missing",
            if self.passed { "PASS" } else { "FAIL" },
            self.reports.len(),
            failed,
            self.missing.len()
        )
    }
}
