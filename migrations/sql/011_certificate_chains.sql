-- Certificates once (issue 18). Every JWS Apple signs carries its x5c
-- certificate chain (about 4 KB of base64) in its header: a transaction or
-- renewal info row held it once, a notification three times (outer JWS and
-- the nested signedTransactionInfo and signedRenewalInfo). The chain is the
-- same for everything signed with one leaf certificate, so it is stored
-- once here, keyed by the SHA-256 of its exact text (the JSON array, from
-- '[' to ']', as it appeared in the header).
--
-- Rows are never deleted, and there is no foreign key to this table: every
-- writer inserts the chain in the same transaction as the row naming it
-- (ledger.CompactJWS gives both), and a foreign key would make every
-- writer lock this one hot row (FOR KEY SHARE, hence multixacts).
CREATE TABLE certificate_chains (
    sha256     bytea PRIMARY KEY CHECK (length(sha256) = 32),
    chain      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- A JWS column holds either the JWS as Apple sent it (chain column NULL)
-- or its compact form (ledger.CompactJWS: the header re-encoded without
-- the chain's array text) and the chain's hash. The compact form is stored
-- only when it rebuilds to the exact bytes Apple signed. Rows written
-- before this keep their form until the online compaction (the
-- certificate_compaction job, `storesync compact`) rewrites them.
-- Each statement changes only the catalog (NULL defaults, NOT VALID).
ALTER TABLE transactions ADD COLUMN jws_chain bytea;
ALTER TABLE renewal_infos ADD COLUMN jws_chain bytea;
ALTER TABLE notifications ADD COLUMN payload_chain bytea;
-- Kept-aside notifications take the notifications' forms (005 and this).
ALTER TABLE kept_aside_notifications
    ALTER COLUMN signed_payload DROP NOT NULL,
    ADD COLUMN signed_payload_decoded text,
    ADD COLUMN payload_chain bytea,
    ADD CONSTRAINT kept_aside_payload_stored_once
        CHECK ((signed_payload IS NULL) <> (signed_payload_decoded IS NULL)) NOT VALID;

-- storesync_jws rebuilds a transaction's or renewal info's JWS in SQL (the
-- same splice as ledger.RebuildJWS; Go code reads through the ledger's own
-- rebuild). The ledger uses it to break ties between two versions signed
-- in the same millisecond by Apple's exact text, as before compaction.
-- A NULL chain_sha256 returns compact as it is.
CREATE FUNCTION storesync_jws(compact text, chain_sha256 bytea) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    dot   int;
    seg   text;
    hdr   text;
    at    int;
    chain text;
BEGIN
    IF compact IS NULL OR chain_sha256 IS NULL THEN
        RETURN compact;
    END IF;
    SELECT c.chain INTO STRICT chain FROM certificate_chains c WHERE c.sha256 = chain_sha256;
    dot := strpos(compact, '.');
    seg := translate(left(compact, dot - 1), '-_', '+/');
    seg := seg || repeat('=', (4 - length(seg) % 4) % 4);
    hdr := convert_from(decode(seg, 'base64'), 'UTF8');
    at := strpos(hdr, '"x5c"') + 5;
    at := at + length(substring(substr(hdr, at) from '^[ \t\n\r]*:[ \t\n\r]*'));
    hdr := left(hdr, at - 1) || chain || substr(hdr, at);
    RETURN rtrim(translate(encode(convert_to(hdr, 'UTF8'), 'base64'), E'+/\n', '-_'), '=') || substr(compact, dot);
END $$;

-- Progress of the online compaction: one row per table, walked in primary
-- key order in batches (after_key is the last key done, '' before the
-- first). A batch updates its rows and this row in one transaction, so a
-- crash loses nothing and repeats nothing. finished_at is set when the
-- walk reaches the end; `storesync compact --again` starts a new pass.
-- Tables empty now (a new install) start finished: every new write is
-- already compact.
CREATE TABLE certificate_compaction (
    table_name  text PRIMARY KEY
        CHECK (table_name IN ('transactions', 'renewal_infos', 'notifications', 'kept_aside_notifications')),
    pass        integer NOT NULL DEFAULT 1,
    after_key   text NOT NULL DEFAULT '',
    scanned     bigint NOT NULL DEFAULT 0,
    compacted   bigint NOT NULL DEFAULT 0,
    kept        bigint NOT NULL DEFAULT 0,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
INSERT INTO certificate_compaction (table_name, finished_at)
SELECT t, CASE WHEN empty THEN now() END
FROM (VALUES
    ('transactions', NOT EXISTS (SELECT FROM transactions)),
    ('renewal_infos', NOT EXISTS (SELECT FROM renewal_infos)),
    ('notifications', NOT EXISTS (SELECT FROM notifications)),
    ('kept_aside_notifications', NOT EXISTS (SELECT FROM kept_aside_notifications))
) AS v(t, empty);
