-- Enrollment hardening, PostgreSQL dialect. Keep in step with
-- ../sqlite/0003_enrollment_binding.sql.
--
-- 1. A pending request is bound to the key that first asked: its key
--    fingerprint (SHA-256 of the public key, hex) is stored with it, and the
--    source address, so unauthenticated requests can be capped per source.
-- 2. Envoy names are compared in lower case only. Stored names are
--    lower-cased here, with every row that refers to them, unless another
--    envoy's name differs only in case. Such look-alikes (only an attack or
--    a mistake makes them) can no longer be reached by any lookup: they are
--    revoked and keep their original spelling, so `vigocli envoys list`
--    shows them and `vigocli envoys remove NAME` deletes them.

ALTER TABLE envoys ADD COLUMN key_fingerprint TEXT;
ALTER TABLE envoys ADD COLUMN request_source TEXT;
CREATE INDEX envoys_pending ON envoys (status, request_source, enrolled_at);

UPDATE triggers SET envoy = lower(envoy)
WHERE envoy <> lower(envoy)
  AND NOT EXISTS (SELECT 1 FROM envoys o
                  WHERE lower(o.name) = lower(triggers.envoy) AND o.name <> triggers.envoy)
  AND NOT EXISTS (SELECT 1 FROM triggers t
                  WHERE lower(t.envoy) = lower(triggers.envoy) AND t.envoy <> triggers.envoy);

UPDATE reports SET envoy = lower(envoy)
WHERE envoy <> lower(envoy)
  AND NOT EXISTS (SELECT 1 FROM envoys o
                  WHERE lower(o.name) = lower(reports.envoy) AND o.name <> reports.envoy);

UPDATE deliveries SET envoy = lower(envoy)
WHERE envoy <> lower(envoy)
  AND NOT EXISTS (SELECT 1 FROM envoys o
                  WHERE lower(o.name) = lower(deliveries.envoy) AND o.name <> deliveries.envoy);

UPDATE enrollment_tokens SET used_by = lower(used_by)
WHERE used_by <> lower(used_by)
  AND NOT EXISTS (SELECT 1 FROM envoys o
                  WHERE lower(o.name) = lower(enrollment_tokens.used_by)
                    AND o.name <> enrollment_tokens.used_by);

UPDATE envoys SET name = lower(name)
WHERE name <> lower(name)
  AND NOT EXISTS (SELECT 1 FROM envoys o
                  WHERE lower(o.name) = lower(envoys.name) AND o.name <> envoys.name);

UPDATE envoys
SET status = 'revoked',
    force_push = FALSE,
    revoked_at = COALESCE(revoked_at, CAST(EXTRACT(EPOCH FROM now()) * 1000 AS BIGINT))
WHERE name <> lower(name);
