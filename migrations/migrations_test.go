package migrations_test

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/storesync/storesync/migrations"
	"github.com/storesync/storesync/migrations/migrationstest"
)

func TestMigrateCreatesDatabaseAndIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := migrationstest.DatabaseURL(migrationstest.NewEmptyDatabaseName(t))

	first, err := migrations.Migrate(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	all, _ := migrations.All()
	if !first.CreatedDatabase || len(first.LedgerApplied) != len(all) || len(first.RiverApplied) == 0 {
		t.Fatalf("first run: %+v, want database created, %d ledger and some River migrations", first, len(all))
	}
	second, err := migrations.Migrate(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if second.CreatedDatabase || len(second.LedgerApplied) != 0 || len(second.RiverApplied) != 0 {
		t.Fatalf("second run applied something: %+v", second)
	}
	requireTables(t, url, "river_job", "river_queue", "subscriptions", "transactions", "notifications", "drift", "storesync_migrations")
}

func TestMigrateConcurrentlyOnNewDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := migrationstest.DatabaseURL(migrationstest.NewEmptyDatabaseName(t))
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	results := make([]*migrations.Result, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = migrations.Migrate(ctx, url)
		}()
	}
	wg.Wait()
	applied := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("migration %d: %v", i, errs[i])
		}
		applied += len(results[i].LedgerApplied)
	}
	all, _ := migrations.All()
	if applied != len(all) {
		t.Fatalf("ledger migrations applied %d times in total, want exactly %d", applied, len(all))
	}
	requireTables(t, url, "river_job", "subscriptions")
}

func requireTables(t *testing.T, url string, names ...string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, name := range names {
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", name).Scan(&ok); err != nil || !ok {
			t.Errorf("table %s missing after migrate (err %v)", name, err)
		}
	}
}

func TestDropDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := migrationstest.DatabaseURL(migrationstest.NewEmptyDatabaseName(t))
	if created, err := migrations.EnsureDatabase(ctx, url); err != nil || !created {
		t.Fatalf("EnsureDatabase: %v, %v", created, err)
	}
	conn, err := pgx.Connect(ctx, url) // a user still connected is disconnected
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for i := range 2 { // the second time there is nothing to drop
		if err := migrations.DropDatabase(ctx, url); err != nil {
			t.Fatalf("drop %d: %v", i+1, err)
		}
	}
	if created, err := migrations.EnsureDatabase(ctx, url); err != nil || !created {
		t.Fatalf("the database survived: created %v, %v", created, err)
	}
	if err := migrations.DropDatabase(ctx, migrationstest.DatabaseURL("postgres")); err == nil {
		t.Fatal("dropped the maintenance database")
	}
}
