//! The result of one apply: per-resource outcomes and a summary (docs/ARCHITECTURE.md "A
//! check-in").
//!
//! The engine (`vigo-engine`) produces a [`Report`], `vigoenvoy` prints it
//! and posts it to the server, which stores it. Every text in it has already
//! been scrubbed of the catalog's secret values by the engine.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What happened to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Already in the desired state (or an exec that had no reason to run).
    Unchanged,
    /// Changed (in a noop run: would change).
    Changed,
    /// Could not be brought to the desired state.
    Failed,
    /// Not attempted because something it depends on failed.
    Skipped,
}

impl Status {
    /// The word used in reports and CLI lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unchanged => "unchanged",
            Self::Changed => "changed",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The tail of a command's output, scrubbed of secret values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandOutput {
    /// Exit code, absent when the command was killed by a signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The last bytes of standard output (lossy UTF-8).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stdout: String,
    /// The last bytes of standard error (lossy UTF-8).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stderr: String,
}

/// One resource's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceResult {
    /// The resource's name.
    pub name: String,
    /// Its type: `file`, `directory`, `exec`, `service` or `package`.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// What happened.
    pub status: Status,
    /// Time spent on it, in milliseconds.
    pub duration_ms: u64,
    /// One line saying what was done or why it failed (scrubbed).
    pub message: String,
    /// Output of the command an exec ran (scrubbed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<CommandOutput>,
    /// Noop runs: what differs, over several lines (a unified diff of a
    /// file's content that holds no secret; scrubbed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

impl ResourceResult {
    /// `type[name]`, as resources are shown in CLI lines.
    pub fn label(&self) -> String {
        format!("{}[{}]", self.resource_type, self.name)
    }
}

/// Counts per status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of resources in the catalog.
    pub total: usize,
    /// Resources that changed (or would change).
    pub changed: usize,
    /// Resources that failed.
    pub failed: usize,
    /// Resources skipped because a dependency failed.
    pub skipped: usize,
    /// Resources already in the desired state.
    pub unchanged: usize,
}

impl Summary {
    /// Counts the statuses of `results`.
    pub fn of(results: &[ResourceResult]) -> Self {
        let mut summary = Self {
            total: results.len(),
            ..Self::default()
        };
        for r in results {
            match r.status {
                Status::Changed => summary.changed += 1,
                Status::Failed => summary.failed += 1,
                Status::Skipped => summary.skipped += 1,
                Status::Unchanged => summary.unchanged += 1,
            }
        }
        summary
    }
}

impl fmt::Display for Summary {
    /// `N resources: A changed, B failed, C skipped, D unchanged` (docs/operations.md "An envoy").
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} resources: {} changed, {} failed, {} skipped, {} unchanged",
            self.total, self.changed, self.failed, self.skipped, self.unchanged
        )
    }
}

/// The outcome of one apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The envoy the catalog was compiled for.
    pub envoy: String,
    /// Whether this was a noop run (nothing was touched).
    pub noop: bool,
    /// Per-resource outcomes, in the order they were applied.
    pub resources: Vec<ResourceResult>,
    /// Counts per status.
    pub summary: Summary,
    /// Resources flagged `_secret_triggered` that were applied successfully;
    /// the server clears their triggers. Always empty in a noop run.
    #[serde(default)]
    pub secret_triggered_applied: Vec<String>,
    /// Wall time of the whole apply, in milliseconds.
    pub duration_ms: u64,
}

impl Report {
    /// Whether any resource failed.
    pub fn has_failures(&self) -> bool {
        self.summary.failed > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(status: Status) -> ResourceResult {
        ResourceResult {
            name: "x".into(),
            resource_type: "file".into(),
            status,
            duration_ms: 0,
            message: String::new(),
            output: None,
            diff: None,
        }
    }

    #[test]
    fn summary_counts_and_prints_the_contract_line() {
        let results: Vec<_> = [
            Status::Changed,
            Status::Failed,
            Status::Skipped,
            Status::Unchanged,
            Status::Unchanged,
        ]
        .into_iter()
        .map(result)
        .collect();
        let summary = Summary::of(&results);
        assert_eq!(
            summary.to_string(),
            "5 resources: 1 changed, 1 failed, 1 skipped, 2 unchanged"
        );
    }

    #[test]
    fn report_round_trips_through_json() {
        let resources = vec![result(Status::Changed)];
        let report = Report {
            envoy: "db1".into(),
            noop: false,
            summary: Summary::of(&resources),
            resources,
            secret_triggered_applied: vec!["x".into()],
            duration_ms: 3,
        };
        let json = serde_json::to_string(&report).unwrap();
        assert!(json.contains("\"type\":\"file\""));
        assert!(json.contains("\"status\":\"changed\""));
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
    }
}
