-- Current state first, history behind it (issue 15): an import row has its
-- current state once its account's statuses are fetched
-- (statuses_fetched_at), long before its history is paged and the row is
-- done. `storesync status` and `import --wait` show both phases, so the
-- counters of migration 012 also count, per run and state, the rows whose
-- statuses are fetched, under the key 'current:' || state (a row counts
-- once under its state and, when fetched, once more under 'current:…').
-- Readers of a run's total therefore sum only the keys without that prefix.
CREATE OR REPLACE FUNCTION storesync_import_run_counts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Groups are upserted in key order, so two statements of one shard
    -- lock their counter rows in the same order and cannot deadlock.
    IF TG_OP = 'INSERT' THEN
        INSERT INTO import_run_counts (run_id, state, shard, n)
        SELECT run_id, k, pg_backend_pid() % 16, count(*) FROM (
            SELECT run_id, state AS k FROM new_rows
            UNION ALL
            SELECT run_id, 'current:' || state FROM new_rows WHERE statuses_fetched_at IS NOT NULL) x
        GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (run_id, state, shard) DO UPDATE SET n = import_run_counts.n + excluded.n;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO import_run_counts (run_id, state, shard, n)
        SELECT run_id, k, pg_backend_pid() % 16, sum(d) FROM (
            SELECT run_id, state AS k, 1 AS d FROM new_rows
            UNION ALL
            SELECT run_id, 'current:' || state, 1 FROM new_rows WHERE statuses_fetched_at IS NOT NULL
            UNION ALL
            SELECT run_id, state, -1 FROM old_rows
            UNION ALL
            SELECT run_id, 'current:' || state, -1 FROM old_rows WHERE statuses_fetched_at IS NOT NULL) x
        GROUP BY 1, 2 HAVING sum(d) <> 0 ORDER BY 1, 2
        ON CONFLICT (run_id, state, shard) DO UPDATE SET n = import_run_counts.n + excluded.n;
    ELSE
        INSERT INTO import_run_counts (run_id, state, shard, n)
        SELECT run_id, k, pg_backend_pid() % 16, -count(*) FROM (
            SELECT run_id, state AS k FROM old_rows
            UNION ALL
            SELECT run_id, 'current:' || state FROM old_rows WHERE statuses_fetched_at IS NOT NULL) x
        GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (run_id, state, shard) DO UPDATE SET n = import_run_counts.n + excluded.n;
    END IF;
    RETURN NULL;
END
$$;

-- The backfill and the new function are one transaction: rows written
-- while the migration waits for its lock are counted by one or the other.
LOCK TABLE import_rows IN SHARE ROW EXCLUSIVE MODE;
INSERT INTO import_run_counts (run_id, state, shard, n)
SELECT run_id, 'current:' || state, 0, count(*) FROM import_rows WHERE statuses_fetched_at IS NOT NULL GROUP BY 1, 2
ON CONFLICT (run_id, state, shard) DO UPDATE SET n = import_run_counts.n + excluded.n;
