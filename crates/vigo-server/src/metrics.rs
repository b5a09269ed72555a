//! The server's Prometheus metrics, served at `GET /metrics`.
//!
//! Each [`Server`](crate::Server) owns its own recorder (never the process
//! global one), so two servers in one process (tests) keep separate counts.
//! Metric names and meanings are documented in `docs/operations.md`.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use vigo_store::{Store, StoreError};

/// `vigo_checkins_total{result}`: check-ins answered, by answer.
pub(crate) const CHECKINS: &str = "vigo_checkins_total";
/// `vigo_compile_seconds`: time to compile one envoy's catalog (a
/// histogram with [`COMPILE_BUCKETS`]).
pub(crate) const COMPILE_SECONDS: &str = "vigo_compile_seconds";
/// `vigo_catalog_bytes`: size of each catalog answer sent (a histogram with
/// [`CATALOG_BUCKETS`]).
pub(crate) const CATALOG_BYTES: &str = "vigo_catalog_bytes";
/// `vigo_queued_triggers{envoy}`: resources with rotation triggers waiting
/// for an envoy, read from the store at each scrape.
pub(crate) const QUEUED_TRIGGERS: &str = "vigo_queued_triggers";
/// `vigo_enrollments_total{result}`: enrollment requests, by outcome.
pub(crate) const ENROLLMENTS: &str = "vigo_enrollments_total";
/// `vigo_rotation_lag_seconds{envoy}`: queue-to-applied time of an envoy's
/// last cleared triggers.
pub(crate) const ROTATION_LAG: &str = "vigo_rotation_lag_seconds";
/// `vigo_config_reload_success`: 1 when the last load of the config
/// repository succeeded, 0 when it failed (the last good one serves).
pub(crate) const CONFIG_RELOAD_SUCCESS: &str = "vigo_config_reload_success";
/// `vigo_config_last_reload_timestamp_seconds`: unix time of the last load
/// attempt of the config repository (at start, then each reload).
pub(crate) const CONFIG_LAST_RELOAD: &str = "vigo_config_last_reload_timestamp_seconds";

/// Upper bounds (seconds) of the `vigo_compile_seconds` buckets.
pub(crate) const COMPILE_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Upper bounds (bytes) of the `vigo_catalog_bytes` buckets.
pub(crate) const CATALOG_BUCKETS: &[f64] = &[
    256.0,
    1_024.0,
    4_096.0,
    16_384.0,
    65_536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
];

/// How a check-in was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CheckinResult {
    /// The short "unchanged" answer.
    Unchanged,
    /// The full catalog.
    Catalog,
}

/// How an enrollment request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EnrollmentResult {
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
pub(crate) struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// The envoys `vigo_queued_triggers` was last set for from the store.
    trigger_envoys: Mutex<BTreeSet<String>>,
}

impl Metrics {
    /// A fresh recorder with every metric described.
    pub(crate) fn new() -> Self {
        // Histograms, not summaries: bucket counts only ever grow, so they
        // add up across scrapes and replicas (a summary's quantiles cover a
        // sliding window and can contradict each other).
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(COMPILE_SECONDS.to_owned()), COMPILE_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(CATALOG_BYTES.to_owned()), CATALOG_BUCKETS)
            })
            // Fails only for an empty bucket list; these are constants.
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let this = Self {
            recorder,
            handle,
            trigger_envoys: Mutex::new(BTreeSet::new()),
        };
        this.record(|| {
            describe_counter!(CHECKINS, "Check-ins answered, by answer (unchanged or catalog).");
            describe_histogram!(COMPILE_SECONDS, Unit::Seconds, "Time to compile one envoy's catalog.");
            describe_histogram!(CATALOG_BYTES, Unit::Bytes, "Size of each catalog answer sent to an envoy.");
            describe_gauge!(QUEUED_TRIGGERS, "Resources with rotation triggers waiting for the envoy (read from the database at each scrape).");
            describe_counter!(ENROLLMENTS, "Enrollment requests, by outcome.");
            describe_gauge!(CONFIG_RELOAD_SUCCESS, "Whether the last load of the config repository succeeded (1) or failed (0; the last good one keeps serving).");
            describe_gauge!(CONFIG_LAST_RELOAD, Unit::Seconds, "Unix time of the last load attempt of the config repository.");
            describe_gauge!(ROTATION_LAG, Unit::Seconds, "Time from a rotation to the envoy reporting the triggered resources applied (last rotation).");
        });
        this
    }

    fn record(&self, f: impl FnOnce()) {
        metrics::with_local_recorder(&self.recorder, f);
    }

    /// Counts a check-in answer.
    pub(crate) fn checkin(&self, result: CheckinResult) {
        let label = match result {
            CheckinResult::Unchanged => "unchanged",
            CheckinResult::Catalog => "catalog",
        };
        self.record(|| counter!(CHECKINS, "result" => label).increment(1));
    }

    /// Records one catalog compilation.
    pub(crate) fn compile_time(&self, took: Duration) {
        self.record(|| histogram!(COMPILE_SECONDS).record(took.as_secs_f64()));
    }

    /// Records the size of a catalog answer.
    pub(crate) fn catalog_bytes(&self, bytes: usize) {
        // Precision loss above 2^53 bytes is irrelevant here.
        let bytes = bytes as f64;
        self.record(|| histogram!(CATALOG_BYTES).record(bytes));
    }

    /// Sets the number of triggers queued for `envoy`.
    pub(crate) fn queued_triggers(&self, envoy: &str, count: usize) {
        // Exact: far fewer than 2^53 triggers.
        let count = count as f64;
        let envoy = envoy.to_owned();
        self.record(|| gauge!(QUEUED_TRIGGERS, "envoy" => envoy).set(count));
    }

    /// Counts an enrollment outcome.
    pub(crate) fn enrollment(&self, result: EnrollmentResult) {
        self.record(|| counter!(ENROLLMENTS, "result" => result.label()).increment(1));
    }

    /// Sets the rotation lag of `envoy`.
    pub(crate) fn rotation_lag(&self, envoy: &str, lag: Duration) {
        let envoy = envoy.to_owned();
        self.record(|| gauge!(ROTATION_LAG, "envoy" => envoy).set(lag.as_secs_f64()));
    }

    /// Records a load attempt of the config repository that ended at
    /// `at_unix_secs`.
    pub(crate) fn config_reload(&self, ok: bool, at_unix_secs: f64) {
        self.record(|| {
            gauge!(CONFIG_RELOAD_SUCCESS).set(if ok { 1.0 } else { 0.0 });
            gauge!(CONFIG_LAST_RELOAD).set(at_unix_secs);
        });
    }

    /// Sets `vigo_queued_triggers` of every envoy that is not revoked from
    /// the store (zero included), so an envoy that is down still shows the
    /// triggers waiting for it. A gauge of an envoy no longer listed drops
    /// to zero.
    pub(crate) async fn refresh_queued_triggers(
        &self,
        store: &dyn Store,
    ) -> Result<(), StoreError> {
        let counts = store.queued_trigger_counts().await?;
        let mut known = self
            .trigger_envoys
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let listed: BTreeSet<String> = counts.iter().map(|(name, _)| name.clone()).collect();
        for gone in known.difference(&listed) {
            self.queued_triggers(gone, 0);
        }
        for (name, count) in &counts {
            self.queued_triggers(name, *count as usize);
        }
        *known = listed;
        Ok(())
    }

    /// [`render`](Metrics::render) after
    /// [`refresh_queued_triggers`](Metrics::refresh_queued_triggers); a
    /// store failure is logged and the last known counts are rendered.
    pub(crate) async fn render_with_store(&self, store: &dyn Store) -> String {
        if let Err(e) = self.refresh_queued_triggers(store).await {
            tracing::warn!(error = %crate::error_chain(&e), "metrics: cannot read queued triggers");
        }
        self.render()
    }

    /// Drains histogram samples into their buckets; call regularly so
    /// they do not grow between scrapes.
    pub(crate) fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// The Prometheus text exposition of every metric.
    pub(crate) fn render(&self) -> String {
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
        assert!(
            text.contains("vigo_compile_seconds_bucket{le=\"0.005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("vigo_catalog_bytes_bucket{le=\"4096\"} 1"),
            "{text}"
        );
        assert!(!text.contains("quantile="), "no summaries: {text}");
        assert!(!two.render().contains("vigo_checkins_total{"));
    }
}
