-- Ops console sessions that were logged out before they expired. A session
-- is a signed cookie any serve process accepts without shared state; this
-- is the one piece shared so that a copy of a logged-out cookie (another
-- tab, a proxy log) no longer works. Rows hold a hash of the session's
-- random part, never the cookie, and are pruned once the session would
-- have expired anyway.
CREATE TABLE ops_logouts (
    session_hash bytea PRIMARY KEY,
    expires_at   timestamptz NOT NULL
);
CREATE INDEX ops_logouts_expires_at ON ops_logouts (expires_at);
