//! Limits on what one envoy may store: the size of a report
//! ([`MAX_REPORT_BYTES`]) and how many reports it may send
//! ([`ReportLimiter`], a token bucket per envoy kept in memory).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The largest report body accepted (1 MiB); a larger one is answered 413.
pub(crate) const MAX_REPORT_BYTES: usize = 1024 * 1024;

/// Reports an envoy may send in a burst.
pub const REPORT_BURST: u32 = 20;

/// After a burst, one more report is allowed every this long.
pub const REPORT_REFILL: Duration = Duration::from_secs(5);

/// A token bucket per envoy: [`REPORT_BURST`] reports at once, then one per
/// [`REPORT_REFILL`]. An envoy that runs every minute and reports each run
/// never comes near it; one stuck in a loop cannot grow the database
/// faster than the refill rate.
#[derive(Debug)]
pub(crate) struct ReportLimiter {
    burst: u32,
    refill: Duration,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Default for ReportLimiter {
    fn default() -> Self {
        Self::new(REPORT_BURST, REPORT_REFILL)
    }
}

impl ReportLimiter {
    /// A limiter allowing `burst` reports at once and one per `refill` after.
    pub(crate) fn new(burst: u32, refill: Duration) -> Self {
        Self {
            burst: burst.max(1),
            refill: refill.max(Duration::from_millis(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `envoy` at `now`: `Ok(())` when the report may be
    /// stored, otherwise `Err(wait)`, the time until the next token.
    pub(crate) fn admit(&self, envoy: &str, now: Instant) -> Result<(), Duration> {
        let burst = f64::from(self.burst);
        let per_sec = 1.0 / self.refill.as_secs_f64();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        // Full buckets carry no information: forget them, so the map only
        // holds envoys that reported recently.
        if buckets.len() > 4096 {
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * per_sec < burst
            });
        }
        let bucket = buckets.entry(envoy.to_owned()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let earned = now.saturating_duration_since(bucket.at).as_secs_f64() * per_sec;
        bucket.tokens = (bucket.tokens + earned).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_sec))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_per_refill_each_envoy_on_its_own() {
        let limiter = ReportLimiter::new(3, Duration::from_secs(10));
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.admit("a", start), Ok(()));
        }
        let wait = limiter.admit("a", start).unwrap_err();
        assert_eq!(wait, Duration::from_secs(10));
        assert_eq!(limiter.admit("b", start), Ok(()), "b has its own bucket");
        assert!(limiter.admit("a", start + Duration::from_secs(5)).is_err());
        assert_eq!(limiter.admit("a", start + Duration::from_secs(10)), Ok(()));
        assert!(limiter.admit("a", start + Duration::from_secs(10)).is_err());
        // A long pause refills the burst, no more.
        let later = start + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(limiter.admit("a", later), Ok(()));
        }
        assert!(limiter.admit("a", later).is_err());
    }
}
