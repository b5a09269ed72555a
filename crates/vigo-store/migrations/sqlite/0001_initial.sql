-- Vigo store schema, SQLite dialect. Keep in step with ../postgres/0001_initial.sql:
-- same tables, columns and meaning. Times are UTC unix milliseconds.

CREATE TABLE envoys (
    name                 TEXT    NOT NULL PRIMARY KEY,
    status               TEXT    NOT NULL CHECK (status IN ('pending', 'approved', 'revoked')),
    csr_pem              TEXT,
    cert_fingerprint     TEXT,
    cert_pem             TEXT,
    facts                TEXT    NOT NULL DEFAULT '{}',
    enrolled_at          INTEGER NOT NULL,
    approved_at          INTEGER,
    revoked_at           INTEGER,
    last_checkin_at      INTEGER,
    catalog_fingerprint  TEXT,
    force_push           BOOLEAN NOT NULL DEFAULT FALSE,
    last_report_at       INTEGER,
    last_rotation_lag_ms INTEGER
);

CREATE TABLE enrollment_tokens (
    token_hash TEXT    NOT NULL PRIMARY KEY,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    used_by    TEXT
);

-- One row per (envoy, resource, secret path); the store coalesces rows into
-- one trigger per resource when reading.
CREATE TABLE triggers (
    envoy          TEXT    NOT NULL,
    resource       TEXT    NOT NULL,
    secret_path    TEXT    NOT NULL,
    queued_at      INTEGER NOT NULL,
    last_queued_at INTEGER NOT NULL,
    delivered_at   INTEGER,
    PRIMARY KEY (envoy, resource, secret_path)
);

CREATE TABLE reports (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    envoy       TEXT    NOT NULL,
    received_at INTEGER NOT NULL,
    changed     INTEGER NOT NULL,
    failed      INTEGER NOT NULL,
    skipped     INTEGER NOT NULL,
    unchanged   INTEGER NOT NULL,
    noop        BOOLEAN NOT NULL,
    body        TEXT    NOT NULL
);
CREATE INDEX reports_by_envoy ON reports (envoy, id);

CREATE TABLE secret_versions (
    path    TEXT    NOT NULL PRIMARY KEY,
    version INTEGER NOT NULL,
    seen_at INTEGER NOT NULL
);

CREATE TABLE secret_audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    actor   TEXT    NOT NULL,
    path    TEXT    NOT NULL,
    version INTEGER NOT NULL,
    event   TEXT    NOT NULL CHECK (event IN ('changed', 'deleted'))
);
CREATE INDEX secret_audit_by_path ON secret_audit (path, id);

CREATE TABLE deliveries (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    envoy   TEXT    NOT NULL,
    path    TEXT    NOT NULL,
    version INTEGER NOT NULL
);
CREATE INDEX deliveries_by_envoy ON deliveries (envoy, id);
CREATE INDEX deliveries_by_path ON deliveries (path, id);
