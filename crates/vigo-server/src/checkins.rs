//! Batched recording of unchanged check-ins.
//!
//! An unchanged check-in changes nothing but the envoy's last check-in time
//! and facts. Writing those once per check-in made the database the
//! bottleneck of the whole server, so they are kept here (the newest per
//! envoy) and written in one transaction every [`FLUSH_INTERVAL`], when the
//! operator asks for envoys, and at shutdown. A check-in that sends a
//! catalog is still written at once; the store skips a batched record older
//! than what it already holds.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use vigo_store::{CheckinRecord, Store, StoreError};

/// How often buffered check-ins are written.
pub(crate) const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// The check-ins not yet written, newest per envoy.
#[derive(Debug, Default)]
pub(crate) struct CheckinBuffer {
    pending: Mutex<HashMap<String, CheckinRecord>>,
}

impl CheckinBuffer {
    /// Keeps `record`, replacing an older one of the same envoy.
    pub(crate) fn push(&self, record: CheckinRecord) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        match pending.get(&record.name) {
            Some(held) if held.at > record.at => {}
            _ => {
                pending.insert(record.name.clone(), record);
            }
        }
    }

    /// Writes everything buffered in one transaction. On failure the
    /// records are dropped (they are only times and facts; the next
    /// check-in brings fresh ones) and the error is returned.
    pub(crate) async fn flush(&self, store: &dyn Store) -> Result<usize, StoreError> {
        let batch: Vec<CheckinRecord> = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.drain().map(|(_, record)| record).collect()
        };
        if batch.is_empty() {
            return Ok(0);
        }
        store.record_checkins(&batch).await?;
        Ok(batch.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigo_store::Timestamp;

    fn record(name: &str, at: i64) -> CheckinRecord {
        CheckinRecord {
            name: name.to_owned(),
            facts: serde_json::json!({ "at": at }),
            catalog_fingerprint: None,
            at: Timestamp::from_unix_millis(at),
            last_run: None,
        }
    }

    #[test]
    fn the_newest_check_in_of_each_envoy_is_kept() {
        let buffer = CheckinBuffer::default();
        buffer.push(record("a", 2));
        buffer.push(record("a", 1));
        buffer.push(record("b", 1));
        buffer.push(record("b", 3));
        let pending = buffer.pending.lock().unwrap();
        assert_eq!(pending.len(), 2);
        assert_eq!(pending["a"].at, Timestamp::from_unix_millis(2));
        assert_eq!(pending["b"].at, Timestamp::from_unix_millis(3));
    }
}
