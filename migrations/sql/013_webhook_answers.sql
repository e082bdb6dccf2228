-- The webhook's answers per minute, so `storesync status` and the ops
-- console (other processes than the `serve` that answered) show the same
-- webhook rate and answer latency. Each `serve` adds its own counts to the
-- minute's row; a row is small and rows older than two days are pruned.
CREATE TABLE webhook_answer_minutes (
    minute      timestamptz PRIMARY KEY,
    answers     bigint NOT NULL DEFAULT 0,
    -- Answers other than 200 (malformed, unverifiable, overloaded, …).
    refused     bigint NOT NULL DEFAULT 0,
    seconds_sum double precision NOT NULL DEFAULT 0,
    -- Answer-time histogram: buckets[i] counts answers no slower than
    -- ledger.WebhookLatencyBounds[i]; the last counts the slower rest.
    buckets     bigint[] NOT NULL
);
