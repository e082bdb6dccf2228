-- A notification's signedPayload is ~15 KB, mostly three copies of one x5c
-- chain: the outer JWS header's and those of the two inner JWS
-- (signedTransactionInfo, signedRenewalInfo). 003 set lz4 on
-- signed_payload expecting it to find those repeats; it cannot: the inner
-- JWS sit base64url-encoded a second time inside the outer payload, so
-- their chains are different bytes (lz4 keeps 13.3 of 14.8 KB). Storing
-- the payload segment decoded makes the three header segments the same
-- text, and lz4 keeps 4.5 KB. That is a third of the WAL and TOAST work per
-- notification, which bounds webhook ingest.
--
-- A row holds exactly one of the two forms; the ledger writes the decoded
-- one whenever re-encoding gives back the exact bytes Apple signed (always,
-- for Apple's canonical base64url and ASCII JSON) and rebuilds
-- signedPayload from it on read. Rows stored before this keep
-- signed_payload.
--
-- Every statement here changes only the catalog: the constraint is NOT
-- VALID because the rows already stored satisfy it by construction
-- (signed_payload was NOT NULL, the new column is NULL), and validating
-- would scan the table while holding the lock that stops the webhook.
ALTER TABLE notifications
    ALTER COLUMN signed_payload DROP NOT NULL,
    ADD COLUMN signed_payload_decoded text,
    ADD CONSTRAINT notifications_payload_stored_once
        CHECK ((signed_payload IS NULL) <> (signed_payload_decoded IS NULL)) NOT VALID;

DO $$
BEGIN
    ALTER TABLE notifications ALTER COLUMN signed_payload_decoded SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 not available: notifications.signed_payload_decoded keeps the default compression';
END $$;
