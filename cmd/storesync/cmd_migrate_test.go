package main

import (
	"flag"
	"strings"
	"testing"

	"github.com/storesync/storesync/migrations/migrationstest"
)

func newTestFlagSet() *flag.FlagSet { return flag.NewFlagSet("test", flag.ContinueOnError) }

func TestMigrateTwiceThenShowNotFound(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": migrationstest.DatabaseURL(migrationstest.NewEmptyDatabaseName(t))}
	code, stdout, stderr := runCLI(t, env, "migrate")
	if code != 0 || !strings.Contains(stdout, "created database") {
		t.Fatalf("first migrate: %d %q %q", code, stdout, stderr)
	}
	code, stdout, _ = runCLI(t, env, "migrate")
	if code != 0 || !strings.Contains(stdout, "River migrations applied: 0; ledger migrations applied: 0") {
		t.Fatalf("second migrate: %d %q", code, stdout)
	}
	code, _, stderr = runCLI(t, env, "show", "--original-transaction-id", "123")
	if code != 1 || !strings.Contains(stderr, "not found") {
		t.Fatalf("show unknown: %d %q", code, stderr)
	}
	code, _, stderr = runCLI(t, env, "show", "--app-account-token", "not-a-uuid")
	if code != 2 {
		t.Fatalf("show bad token: %d %q", code, stderr)
	}
}
