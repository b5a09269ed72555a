-- Run history and its pruning, PostgreSQL dialect. Keep in step with
-- ../sqlite/0006_history.sql.
--
-- Every stored report is kept as run history (its body holds the per-resource
-- outcomes, durations and messages, scrubbed by the envoy). History is pruned
-- in the background by age and by a count per envoy; deliveries and the
-- secret audit log by the same age. These indexes keep the listing (newest
-- first, optionally since a time) and each pruning batch off a full scan.

CREATE INDEX reports_by_time ON reports (received_at, id);
CREATE INDEX deliveries_by_time ON deliveries (at, id);
CREATE INDEX secret_audit_by_time ON secret_audit (at, id);
CREATE INDEX run_requests_by_time ON run_requests (requested_at);
