-- A million subscribers (issue 18): nothing on a request path may read
-- every subscription. `storesync status` and the ops overview (which
-- refreshes itself during an import) showed each import run's progress by
-- counting its import_rows: a 1,000,000-row run read 1,000,000 rows on
-- every refresh (0.46 s at 70,000 rows, cold). Progress is now kept as
-- counters maintained by statement-level triggers, so reading it costs a
-- few rows whatever the run's size, and every writer of import_rows (the
-- importer, the jobs, a hand-made UPDATE) keeps it right without knowing.
--
-- Counters are sharded by the writing backend (pg_backend_pid() % 16) so
-- concurrent import jobs do not queue on one row; a run's count in a state
-- is the sum over its shards. A statement that moves no row between runs
-- or states (statuses_fetched_at, updated_at) writes no counter.
CREATE TABLE import_run_counts (
    run_id bigint   NOT NULL,
    state  text     NOT NULL,
    shard  smallint NOT NULL,
    n      bigint   NOT NULL,
    PRIMARY KEY (run_id, state, shard)
);

CREATE FUNCTION storesync_import_run_counts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Groups are upserted in key order, so two statements of one shard
    -- lock their counter rows in the same order and cannot deadlock.
    IF TG_OP = 'INSERT' THEN
        INSERT INTO import_run_counts (run_id, state, shard, n)
        SELECT run_id, state, pg_backend_pid() % 16, count(*) FROM new_rows GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (run_id, state, shard) DO UPDATE SET n = import_run_counts.n + excluded.n;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO import_run_counts (run_id, state, shard, n)
        SELECT run_id, state, pg_backend_pid() % 16, sum(d) FROM (
            SELECT run_id, state, 1 AS d FROM new_rows
            UNION ALL
            SELECT run_id, state, -1 FROM old_rows) x
        GROUP BY 1, 2 HAVING sum(d) <> 0 ORDER BY 1, 2
        ON CONFLICT (run_id, state, shard) DO UPDATE SET n = import_run_counts.n + excluded.n;
    ELSE
        INSERT INTO import_run_counts (run_id, state, shard, n)
        SELECT run_id, state, pg_backend_pid() % 16, -count(*) FROM old_rows GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (run_id, state, shard) DO UPDATE SET n = import_run_counts.n + excluded.n;
    END IF;
    RETURN NULL;
END
$$;

-- The backfill and the triggers are one transaction: rows written while
-- the migration waits for its lock are counted by one or the other, once.
LOCK TABLE import_rows IN SHARE ROW EXCLUSIVE MODE;
INSERT INTO import_run_counts (run_id, state, shard, n)
SELECT run_id, state, 0, count(*) FROM import_rows GROUP BY 1, 2;

CREATE TRIGGER import_run_counts_insert AFTER INSERT ON import_rows
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION storesync_import_run_counts();
CREATE TRIGGER import_run_counts_update AFTER UPDATE ON import_rows
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION storesync_import_run_counts();
CREATE TRIGGER import_run_counts_delete AFTER DELETE ON import_rows
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION storesync_import_run_counts();
