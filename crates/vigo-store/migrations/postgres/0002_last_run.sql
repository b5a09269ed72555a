-- The envoy's last enforcement run, PostgreSQL dialect. Keep in step with
-- ../sqlite/0002_last_run.sql.
--
-- Every cycle of an envoy's run loop applies its catalog; a clean cycle
-- sends no report, and its next check-in carries when the run finished and
-- its counts instead. A (non-noop) report sets them too. Times are UTC unix
-- milliseconds on the server's clock.

ALTER TABLE envoys ADD COLUMN last_run_at BIGINT;
ALTER TABLE envoys ADD COLUMN last_run_changed BIGINT;
ALTER TABLE envoys ADD COLUMN last_run_failed BIGINT;
ALTER TABLE envoys ADD COLUMN last_run_skipped BIGINT;
ALTER TABLE envoys ADD COLUMN last_run_unchanged BIGINT;
