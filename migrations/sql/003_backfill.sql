-- Notification backfill bookkeeping.
--
-- backfill_windows (001) records each window; these columns say who asked
-- for it and how often Apple made it restart (PaginationTokenExpired).
ALTER TABLE backfill_windows
    ADD COLUMN kind     text NOT NULL DEFAULT 'manual' CHECK (kind IN ('sweep', 'manual')),
    ADD COLUMN restarts integer NOT NULL DEFAULT 0,
    ADD COLUMN error    text;
-- The scheduled sweep chains each window to the previous sweep's end.
CREATE INDEX backfill_windows_env_end ON backfill_windows (environment, kind, end_date DESC);

-- The watermark of one environment: every notification Apple sent before
-- complete_until is in the ledger. It only moves forward, across a
-- contiguous chain of finished full (not only-failures) windows.
CREATE TABLE backfill_watermarks (
    environment    text PRIMARY KEY,
    complete_until timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- A notification's signedPayload is ~15 KB, mostly three copies of the same
-- x5c chain (outer JWS and both inner ones). lz4 finds those repeats at a
-- fraction of pglz's CPU cost, which is what bounds webhook ingest. Servers
-- built without lz4 keep the default.
DO $$
BEGIN
    ALTER TABLE notifications ALTER COLUMN signed_payload SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 not available: notifications.signed_payload keeps the default compression';
END $$;
