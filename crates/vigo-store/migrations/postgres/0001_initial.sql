-- Vigo store schema, PostgreSQL dialect. Keep in step with ../sqlite/0001_initial.sql:
-- same tables, columns and meaning. Times are UTC unix milliseconds.

CREATE TABLE envoys (
    name                 TEXT    NOT NULL PRIMARY KEY,
    status               TEXT    NOT NULL CHECK (status IN ('pending', 'approved', 'revoked')),
    csr_pem              TEXT,
    cert_fingerprint     TEXT,
    cert_pem             TEXT,
    facts                TEXT    NOT NULL DEFAULT '{}',
    enrolled_at          BIGINT  NOT NULL,
    approved_at          BIGINT,
    revoked_at           BIGINT,
    last_checkin_at      BIGINT,
    catalog_fingerprint  TEXT,
    force_push           BOOLEAN NOT NULL DEFAULT FALSE,
    last_report_at       BIGINT,
    last_rotation_lag_ms BIGINT
);

CREATE TABLE enrollment_tokens (
    token_hash TEXT    NOT NULL PRIMARY KEY,
    created_at BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL,
    used_at    BIGINT,
    used_by    TEXT
);

-- One row per (envoy, resource, secret path); the store coalesces rows into
-- one trigger per resource when reading.
CREATE TABLE triggers (
    envoy          TEXT    NOT NULL,
    resource       TEXT    NOT NULL,
    secret_path    TEXT    NOT NULL,
    queued_at      BIGINT  NOT NULL,
    last_queued_at BIGINT  NOT NULL,
    delivered_at   BIGINT,
    PRIMARY KEY (envoy, resource, secret_path)
);

CREATE TABLE reports (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    envoy       TEXT    NOT NULL,
    received_at BIGINT  NOT NULL,
    changed     BIGINT  NOT NULL,
    failed      BIGINT  NOT NULL,
    skipped     BIGINT  NOT NULL,
    unchanged   BIGINT  NOT NULL,
    noop        BOOLEAN NOT NULL,
    body        TEXT    NOT NULL
);
CREATE INDEX reports_by_envoy ON reports (envoy, id);

CREATE TABLE secret_versions (
    path    TEXT    NOT NULL PRIMARY KEY,
    version BIGINT  NOT NULL,
    seen_at BIGINT  NOT NULL
);

CREATE TABLE secret_audit (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      BIGINT  NOT NULL,
    actor   TEXT    NOT NULL,
    path    TEXT    NOT NULL,
    version BIGINT  NOT NULL,
    event   TEXT    NOT NULL CHECK (event IN ('changed', 'deleted'))
);
CREATE INDEX secret_audit_by_path ON secret_audit (path, id);

CREATE TABLE deliveries (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      BIGINT  NOT NULL,
    envoy   TEXT    NOT NULL,
    path    TEXT    NOT NULL,
    version BIGINT  NOT NULL
);
CREATE INDEX deliveries_by_envoy ON deliveries (envoy, id);
CREATE INDEX deliveries_by_path ON deliveries (path, id);
