package config

import (
	"net/url"
	"strconv"
	"strings"
)

// Database connection settings: how many connections a process may open,
// whether a connection pooler sits between storesync and Postgres, and the
// direct URL migrations use.

// DefaultDBMaxConns is the default of STORESYNC_DB_MAX_CONNS: the pool size
// `serve` has used since it learnt that its workers wait for Apple, not for
// Postgres (16 lets four processes fit in Postgres's default
// max_connections of 100 with room for psql and monitoring).
const DefaultDBMaxConns = 16

// MinDBMaxConns is the smallest STORESYNC_DB_MAX_CONNS: River's LISTEN
// connection (when not behind a transaction pooler), one webhook committer,
// and two connections for jobs, River's fetches and the budget leases, so
// none of them can starve the others completely.
const MinDBMaxConns = 4

// Pooler names what sits between storesync and Postgres
// (STORESYNC_DB_POOLER).
type Pooler string

const (
	// PoolerNone is a direct connection (or a session-pooling PgBouncer,
	// which behaves like one): the default.
	PoolerNone Pooler = "none"
	// PoolerPgBouncerTransaction is PgBouncer (or a pooler that behaves
	// like it, e.g. a managed Postgres's "transaction mode" endpoint) in
	// transaction pooling mode: each transaction may run on a different
	// server connection, so nothing may rely on session state. storesync
	// then runs River poll-only (no LISTEN), uses no named prepared
	// statements, and refuses to migrate through the pooler.
	PoolerPgBouncerTransaction Pooler = "pgbouncer-transaction"
)

// TransactionPooling reports whether p hands out a server connection per
// transaction (so LISTEN, session advisory locks, SET and named prepared
// statements do not survive between transactions).
func (p Pooler) TransactionPooling() bool { return p == PoolerPgBouncerTransaction }

// loadDatabase reads STORESYNC_DB_MAX_CONNS, STORESYNC_DB_POOLER and
// STORESYNC_MIGRATE_DATABASE_URL into c (whose DatabaseURL is already set),
// reporting problems through add.
func loadDatabase(c *Config, get func(string) string, add func(string, ...any)) {
	urlMax := queryParam(c.DatabaseURL, "pool_max_conns")
	c.DBMaxConns = DefaultDBMaxConns
	switch v := get("STORESYNC_DB_MAX_CONNS"); {
	case v != "":
		n, err := strconv.Atoi(v)
		if err != nil || n < MinDBMaxConns {
			add("STORESYNC_DB_MAX_CONNS=%q is not an integer of at least %d: set the most connections one storesync process may open, e.g. %d (the default)", v, MinDBMaxConns, DefaultDBMaxConns)
			break
		}
		c.DBMaxConns = n
		if urlMax != "" && urlMax != v {
			add("STORESYNC_DB_MAX_CONNS=%s and DATABASE_URL's pool_max_conns=%s disagree: remove pool_max_conns from DATABASE_URL", v, urlMax)
		}
	case urlMax != "":
		// Before STORESYNC_DB_MAX_CONNS, pool_max_conns in DATABASE_URL was
		// the way to size the pool: it still is the bound when alone.
		n, err := strconv.Atoi(urlMax)
		if err != nil || n < MinDBMaxConns {
			add("DATABASE_URL's pool_max_conns=%q is not an integer of at least %d: remove it and set STORESYNC_DB_MAX_CONNS instead", urlMax, MinDBMaxConns)
			break
		}
		c.DBMaxConns = n
	}

	c.Pooler = PoolerNone
	if v := strings.ToLower(get("STORESYNC_DB_POOLER")); v != "" {
		switch Pooler(v) {
		case PoolerNone, PoolerPgBouncerTransaction:
			c.Pooler = Pooler(v)
		default:
			add("STORESYNC_DB_POOLER=%q is not a known pooler: use none (direct or session pooling) or pgbouncer-transaction", v)
		}
	}
	if c.Pooler.TransactionPooling() {
		switch mode := queryParam(c.DatabaseURL, "default_query_exec_mode"); mode {
		case "", "cache_describe", "exec", "simple_protocol", "describe_exec":
		default:
			add("DATABASE_URL's default_query_exec_mode=%s keeps prepared statements on a server connection, which transaction pooling hands to others: remove it (storesync then uses cache_describe)", mode)
		}
	}

	c.MigrateDatabaseURL = get("STORESYNC_MIGRATE_DATABASE_URL")
	if c.MigrateDatabaseURL != "" {
		if u, err := url.Parse(c.MigrateDatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			add("STORESYNC_MIGRATE_DATABASE_URL is not a postgres:// URL: set it to a direct connection to the same database, e.g. postgres://user:pass@db-host:5432/storesync")
		}
	}
}

// queryParam returns the query parameter name of a postgres:// URL, "" when
// absent or when the URL does not parse (reported elsewhere).
func queryParam(rawURL, name string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(u.Query().Get(name))
}

// MigrationURL returns the URL `storesync migrate` connects to:
// STORESYNC_MIGRATE_DATABASE_URL, else DATABASE_URL. Behind a transaction
// pooler with no direct URL it returns "" and an error naming the fix,
// because migrations hold a session advisory lock across transactions
// (concurrent migrates must not interleave) and may create the database,
// neither of which works through transaction pooling.
func (c *Config) MigrationURL() (string, error) {
	if c.MigrateDatabaseURL != "" {
		return c.MigrateDatabaseURL, nil
	}
	if c.Pooler.TransactionPooling() {
		return "", Problems{"STORESYNC_DB_POOLER=" + string(c.Pooler) + " and STORESYNC_MIGRATE_DATABASE_URL is unset: migrations need a direct connection to Postgres (they hold a session advisory lock); set STORESYNC_MIGRATE_DATABASE_URL to the database's direct URL"}
	}
	return c.DatabaseURL, nil
}
