//! The server's Prometheus metrics, served at `GET /metrics`.
//!
//! Each [`Server`](crate::Server) owns its own recorder (never the process
//! global one), so two servers in one process (tests) keep separate counts.
//! Metric names and meanings are documented in `docs/operations.md`.

use std::fmt;
use std::time::Duration;

use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// `vigo_checkins_total{result}`: check-ins answered, by answer.
pub const CHECKINS: &str = "vigo_checkins_total";
/// `vigo_compile_seconds`: time to compile one envoy's catalog.
pub const COMPILE_SECONDS: &str = "vigo_compile_seconds";
/// `vigo_catalog_bytes`: size of each catalog answer sent.
pub const CATALOG_BYTES: &str = "vigo_catalog_bytes";
/// `vigo_queued_triggers{envoy}`: rotation triggers waiting for an envoy.
pub const QUEUED_TRIGGERS: &str = "vigo_queued_triggers";
/// `vigo_enrollments_total{result}`: enrollment requests, by outcome.
pub const ENROLLMENTS: &str = "vigo_enrollments_total";
/// `vigo_rotation_lag_seconds{envoy}`: queue-to-applied time of an envoy's
/// last cleared triggers.
pub const ROTATION_LAG: &str = "vigo_rotation_lag_seconds";

/// How a check-in was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckinResult {
    /// The short "unchanged" answer.
    Unchanged,
    /// The full catalog.
    Catalog,
}

/// How an enrollment request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrollmentResult {
    /// Signed at once with a valid token.
    Token,
    /// Stored as pending, waiting for approval.
    Pending,
    /// Signed by `vigocli envoys approve`.
    Approved,
    /// Already approved; the stored certificate was handed out again.
    Reissued,
    /// Refused (bad token, revoked, name taken, invalid request).
    Refused,
}

impl EnrollmentResult {
    fn label(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Reissued => "reissued",
            Self::Refused => "refused",
        }
    }
}

/// A per-server metrics recorder and its renderer.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl Metrics {
    /// A fresh recorder with every metric described.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let this = Self { recorder, handle };
        this.record(|| {
            describe_counter!(CHECKINS, "Check-ins answered, by answer (unchanged or catalog).");
            describe_histogram!(COMPILE_SECONDS, Unit::Seconds, "Time to compile one envoy's catalog.");
            describe_histogram!(CATALOG_BYTES, Unit::Bytes, "Size of each catalog answer sent to an envoy.");
            describe_gauge!(QUEUED_TRIGGERS, "Rotation triggers queued for an envoy at its last check-in or report.");
            describe_counter!(ENROLLMENTS, "Enrollment requests, by outcome.");
            describe_gauge!(ROTATION_LAG, Unit::Seconds, "Time from a rotation to the envoy reporting the triggered resources applied (last rotation).");
        });
        this
    }

    fn record(&self, f: impl FnOnce()) {
        metrics::with_local_recorder(&self.recorder, f);
    }

    /// Counts a check-in answer.
    pub fn checkin(&self, result: CheckinResult) {
        let label = match result {
            CheckinResult::Unchanged => "unchanged",
            CheckinResult::Catalog => "catalog",
        };
        self.record(|| counter!(CHECKINS, "result" => label).increment(1));
    }

    /// Records one catalog compilation.
    pub fn compile_time(&self, took: Duration) {
        self.record(|| histogram!(COMPILE_SECONDS).record(took.as_secs_f64()));
    }

    /// Records the size of a catalog answer.
    pub fn catalog_bytes(&self, bytes: usize) {
        // Precision loss above 2^53 bytes is irrelevant here.
        #[allow(clippy::cast_precision_loss)]
        let bytes = bytes as f64;
        self.record(|| histogram!(CATALOG_BYTES).record(bytes));
    }

    /// Sets the number of triggers queued for `envoy`.
    pub fn queued_triggers(&self, envoy: &str, count: usize) {
        #[allow(clippy::cast_precision_loss)]
        let count = count as f64;
        let envoy = envoy.to_owned();
        self.record(|| gauge!(QUEUED_TRIGGERS, "envoy" => envoy).set(count));
    }

    /// Counts an enrollment outcome.
    pub fn enrollment(&self, result: EnrollmentResult) {
        self.record(|| counter!(ENROLLMENTS, "result" => result.label()).increment(1));
    }

    /// Sets the rotation lag of `envoy`.
    pub fn rotation_lag(&self, envoy: &str, lag: Duration) {
        let envoy = envoy.to_owned();
        self.record(|| gauge!(ROTATION_LAG, "envoy" => envoy).set(lag.as_secs_f64()));
    }

    /// Drains histogram samples into their summaries; call regularly so
    /// they do not grow between scrapes.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.handle.run_upkeep();
        self.handle.render()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_server_counts_on_its_own() {
        let one = Metrics::new();
        let two = Metrics::new();
        one.checkin(CheckinResult::Unchanged);
        one.checkin(CheckinResult::Unchanged);
        one.checkin(CheckinResult::Catalog);
        one.enrollment(EnrollmentResult::Token);
        one.rotation_lag("db1.example.com", Duration::from_millis(1500));
        one.queued_triggers("db1.example.com", 2);
        one.compile_time(Duration::from_millis(3));
        one.catalog_bytes(1200);
        let text = one.render();
        assert!(
            text.contains("vigo_checkins_total{result=\"unchanged\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("vigo_checkins_total{result=\"catalog\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("vigo_enrollments_total{result=\"token\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("vigo_rotation_lag_seconds{envoy=\"db1.example.com\"} 1.5"),
            "{text}"
        );
        assert!(
            text.contains("vigo_queued_triggers{envoy=\"db1.example.com\"} 2"),
            "{text}"
        );
        assert!(text.contains("vigo_compile_seconds"), "{text}");
        assert!(text.contains("vigo_catalog_bytes"), "{text}");
        assert!(!two.render().contains("vigo_checkins_total{"));
    }
}
