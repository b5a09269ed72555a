-- One-shot run requests (`vigocli run TARGET`), SQLite dialect. Keep in step
-- with ../postgres/0005_run_requests.sql.
--
-- run_requests is the audit record: who asked, for which target, noop or
-- not, when. run_request_envoys holds one row per matched envoy: pending
-- until a check-in delivers it (delivered_at), then the outcome the envoy's
-- report carried (reported_at, outcome ok/changed/failed, the scrubbed
-- report). A request never names a command: the envoy applies its own
-- compiled catalog.

CREATE TABLE run_requests (
    id           TEXT PRIMARY KEY,
    requested_at BIGINT NOT NULL,
    requested_by TEXT NOT NULL,
    target       TEXT NOT NULL,
    noop         BOOLEAN NOT NULL
);

CREATE TABLE run_request_envoys (
    request_id   TEXT NOT NULL REFERENCES run_requests (id) ON DELETE CASCADE,
    envoy        TEXT NOT NULL,
    delivered_at BIGINT,
    reported_at  BIGINT,
    outcome      TEXT,
    report       TEXT,
    PRIMARY KEY (request_id, envoy)
);

CREATE INDEX run_request_envoys_pending ON run_request_envoys (envoy, delivered_at);
