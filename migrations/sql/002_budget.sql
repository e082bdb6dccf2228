-- The Apple rate budget shared by every storesync process on this database,
-- and the bookkeeping of bulk import jobs.

-- One token bucket per (app, environment, endpoint). Processes lease small
-- batches of tokens from it (storesync_budget_lease) instead of each keeping
-- its own bucket, so N processes together never exceed the limit.
CREATE TABLE apple_budget (
    app             text NOT NULL,
    environment     text NOT NULL,
    endpoint        text NOT NULL,
    rate            double precision NOT NULL, -- tokens per second, as last configured
    capacity        double precision NOT NULL, -- the most tokens that may pile up
    tokens          double precision NOT NULL,
    refilled_at     timestamptz NOT NULL,
    -- Apple answered 429: nobody sends before this (its Retry-After).
    throttled_until timestamptz NOT NULL DEFAULT '-infinity',
    PRIMARY KEY (app, environment, endpoint)
);

-- Tokens granted and 429s received, per UNIX second: compact enough to keep
-- an hour of history for `storesync status` (older rows are pruned).
CREATE TABLE apple_budget_usage (
    app         text NOT NULL,
    environment text NOT NULL,
    endpoint    text NOT NULL,
    second      bigint NOT NULL,
    granted     integer NOT NULL DEFAULT 0,
    throttled   integer NOT NULL DEFAULT 0,
    PRIMARY KEY (app, environment, endpoint, second)
);
CREATE INDEX apple_budget_usage_second ON apple_budget_usage (second);

-- storesync_budget_lease refills the bucket at p_rate up to p_capacity and
-- takes up to p_want whole tokens, in one statement so that concurrent
-- callers serialise on the bucket's row. It returns how many tokens were
-- granted and, when fewer than wanted, how long until the next one (or
-- until a 429's Retry-After has passed).
CREATE FUNCTION storesync_budget_lease(p_app text, p_env text, p_endpoint text, p_rate double precision,
    p_capacity double precision, p_want integer, OUT granted integer, OUT wait_seconds double precision)
LANGUAGE plpgsql AS $$
DECLARE
    b     apple_budget%ROWTYPE;
    t     timestamptz;
    avail double precision;
BEGIN
    INSERT INTO apple_budget (app, environment, endpoint, rate, capacity, tokens, refilled_at)
    VALUES (p_app, p_env, p_endpoint, p_rate, p_capacity, p_capacity, clock_timestamp())
    ON CONFLICT DO NOTHING;
    SELECT * INTO b FROM apple_budget
    WHERE app = p_app AND environment = p_env AND endpoint = p_endpoint FOR UPDATE;
    -- The time is read once the row is ours, and refilled_at never moves
    -- back: a caller that waited for the lock must not count the same
    -- refill twice.
    t := clock_timestamp();
    IF b.throttled_until > t THEN
        granted := 0;
        wait_seconds := extract(epoch FROM b.throttled_until - t);
        RETURN;
    END IF;
    t := greatest(t, b.refilled_at);
    avail := least(p_capacity, b.tokens + p_rate * greatest(0, extract(epoch FROM t - b.refilled_at)));
    granted := greatest(0, least(p_want, floor(avail)))::integer;
    UPDATE apple_budget SET tokens = avail - granted, refilled_at = t, rate = p_rate, capacity = p_capacity
    WHERE app = p_app AND environment = p_env AND endpoint = p_endpoint;
    IF granted > 0 THEN
        INSERT INTO apple_budget_usage (app, environment, endpoint, second, granted)
        VALUES (p_app, p_env, p_endpoint, floor(extract(epoch FROM t))::bigint, granted)
        ON CONFLICT (app, environment, endpoint, second)
        DO UPDATE SET granted = apple_budget_usage.granted + excluded.granted;
    END IF;
    wait_seconds := CASE WHEN granted >= p_want THEN 0
        ELSE greatest(0.001, (1 - (avail - granted)) / p_rate) END;
END
$$;

-- Import rows: when they were created, and when the statuses of their Apple
-- account were fetched (by this row's job or by a sibling of the same
-- account), so Get All Subscription Statuses is called once per account.
ALTER TABLE import_rows
    ADD COLUMN created_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN statuses_fetched_at timestamptz;

-- A short lease per Apple account (customer id or appAccountToken of the
-- import rows) while one job fetches its statuses, so the other rows of the
-- same account wait for that answer instead of asking again.
CREATE TABLE import_account_leases (
    account_key text PRIMARY KEY,
    holder      text NOT NULL,
    expires_at  timestamptz NOT NULL
);
