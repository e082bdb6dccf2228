package config_test

import (
	"strings"
	"testing"

	"github.com/storesync/storesync/config"
)

func TestDatabaseSettingsDefaults(t *testing.T) {
	t.Parallel()
	c, err := config.Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.DBMaxConns != config.DefaultDBMaxConns || c.Pooler != config.PoolerNone || c.MigrateDatabaseURL != "" {
		t.Fatalf("defaults: max %d, pooler %q, migrate URL %q", c.DBMaxConns, c.Pooler, c.MigrateDatabaseURL)
	}
	if u, err := c.MigrationURL(); err != nil || u != c.DatabaseURL {
		t.Fatalf("MigrationURL without a pooler = %q, %v; want DATABASE_URL", u, err)
	}
}

func TestDatabaseSettingsValid(t *testing.T) {
	t.Parallel()
	c, err := config.Load(env(map[string]string{
		"DATABASE_URL":                   "postgres://app:secret@pooler:6432/storesync",
		"STORESYNC_DB_MAX_CONNS":         "8",
		"STORESYNC_DB_POOLER":            "PgBouncer-Transaction",
		"STORESYNC_MIGRATE_DATABASE_URL": "postgres://app:secret@db:5432/storesync",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.DBMaxConns != 8 || !c.Pooler.TransactionPooling() {
		t.Fatalf("max %d, pooler %q", c.DBMaxConns, c.Pooler)
	}
	if u, err := c.MigrationURL(); err != nil || u != "postgres://app:secret@db:5432/storesync" {
		t.Fatalf("MigrationURL = %q, %v", u, err)
	}
	if s := c.String(); strings.Contains(s, "secret") || !strings.Contains(s, "db_pooler=pgbouncer-transaction") {
		t.Fatalf("String() = %s", s)
	}
	// pool_max_conns alone still sizes the pool, as before the variable.
	c, err = config.Load(env(map[string]string{"DATABASE_URL": "postgres://h/db?pool_max_conns=30"}))
	if err != nil || c.DBMaxConns != 30 {
		t.Fatalf("pool_max_conns=30: %v, %+v", err, c)
	}
}

func TestDatabaseSettingsProblems(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"STORESYNC_DB_MAX_CONNS": "0"}, "STORESYNC_DB_MAX_CONNS=\"0\" is not an integer of at least 4"},
		{map[string]string{"STORESYNC_DB_MAX_CONNS": "-3"}, "STORESYNC_DB_MAX_CONNS=\"-3\""},
		{map[string]string{"STORESYNC_DB_MAX_CONNS": "ten"}, "STORESYNC_DB_MAX_CONNS=\"ten\""},
		{map[string]string{"STORESYNC_DB_MAX_CONNS": "3"}, "at least 4"},
		{map[string]string{"STORESYNC_DB_MAX_CONNS": "8", "DATABASE_URL": "postgres://h/db?pool_max_conns=9"}, "remove pool_max_conns"},
		{map[string]string{"DATABASE_URL": "postgres://h/db?pool_max_conns=1"}, "set STORESYNC_DB_MAX_CONNS instead"},
		{map[string]string{"STORESYNC_DB_POOLER": "pgpool"}, "STORESYNC_DB_POOLER=\"pgpool\" is not a known pooler: use none"},
		{map[string]string{"STORESYNC_DB_POOLER": "pgbouncer-transaction", "DATABASE_URL": "postgres://h/db?default_query_exec_mode=cache_statement"}, "default_query_exec_mode=cache_statement"},
		{map[string]string{"STORESYNC_MIGRATE_DATABASE_URL": "mysql://h/db"}, "STORESYNC_MIGRATE_DATABASE_URL is not a postgres:// URL"},
	} {
		_, err := config.Load(env(tc.env))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want it to contain %q", tc.env, err, tc.want)
		}
	}
	// Behind a transaction pooler, migrate needs a direct URL.
	c, err := config.Load(env(map[string]string{"DATABASE_URL": "postgres://u:pw@pooler:6432/db", "STORESYNC_DB_POOLER": "pgbouncer-transaction"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.MigrationURL(); err == nil || !strings.Contains(err.Error(), "set STORESYNC_MIGRATE_DATABASE_URL") || strings.Contains(err.Error(), "pw") {
		t.Fatalf("MigrationURL behind a transaction pooler: %v", err)
	}
}
