package main

import (
	"context"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/appstore/sim/simtest"
	"github.com/storesync/storesync/jobs/jobstest"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

// pgbouncerURL returns STORESYNC_PGBOUNCER_URL (set by .ci/with-pgbouncer)
// with its database replaced by name. `make test` sets
// STORESYNC_REQUIRE_PGBOUNCER=1, so that a missing PgBouncer fails there
// instead of silently skipping the only test of the pooler path; a bare
// `go test` of this package skips with the command to run.
func pgbouncerURL(t *testing.T, name string) string {
	t.Helper()
	raw := os.Getenv("STORESYNC_PGBOUNCER_URL")
	if raw == "" {
		msg := "STORESYNC_PGBOUNCER_URL is unset: run through .ci/with-pgbouncer, e.g. .ci/with-postgres .ci/with-pgbouncer go test ./cmd/storesync/"
		if os.Getenv("STORESYNC_REQUIRE_PGBOUNCER") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("STORESYNC_PGBOUNCER_URL is not a URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// storesync through PgBouncer in transaction pooling mode: migrate (direct,
// as it must be), then a real serve (workers on, River poll-only, a bounded
// pool) and the import and webhook → processing paths through the pooler,
// ending with the ledger equal to the simulator's truth and every
// notification the simulator sent stored and processed.
func TestServeThroughPgBouncerTransactionPooling(t *testing.T) {
	t.Parallel()
	name := migrationstest.NewEmptyDatabaseName(t)
	pooled, direct := pgbouncerURL(t, name), migrationstest.DatabaseURL(name)
	simulator := simtest.StartTest(t, sim.Options{Seed: 11, Subscribers: 25})
	if _, err := simulator.WriteFiles(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	env := simulator.Env()
	env["DATABASE_URL"] = pooled
	env["STORESYNC_DB_POOLER"] = "pgbouncer-transaction"
	env["STORESYNC_DB_MAX_CONNS"] = "6"
	env["STORESYNC_LISTEN"] = "127.0.0.1:0"

	// Migrations hold a session advisory lock: not through the pooler.
	if code, _, stderr := runCLI(t, env, "migrate"); code != 1 || !strings.Contains(stderr, "STORESYNC_MIGRATE_DATABASE_URL") {
		t.Fatalf("migrate through the pooler without a direct URL: code %d, stderr %q", code, stderr)
	}
	env["STORESYNC_MIGRATE_DATABASE_URL"] = direct
	if code, stdout, stderr := runCLI(t, env, "migrate"); code != 0 || !strings.Contains(stdout, "created database") {
		t.Fatalf("migrate: code %d\n%s%s", code, stdout, stderr)
	}

	out := startServe(t, env, "--bulk-workers", "8", "--no-schedules")
	m := regexp.MustCompile(`serving on (http://\S+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no address in serve's output:\n%s", out.String())
	}
	truths := simulator.Truth()
	if code, stdout, stderr := runCLI(t, env, "import", truthFile(t, truths, ""), "--wait"); code != 0 {
		t.Fatalf("import --wait through the pooler: code %d\n%s%s", code, stdout, stderr)
	}

	// Notifications arrive by webhook and are processed by the workers.
	if err := simulator.SetWebhookURL(m[1] + "/webhooks/appstore"); err != nil {
		t.Fatal(err)
	}
	simulator.Advance(45 * 24 * time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := simulator.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	sent := 0
	for _, e := range []appstore.Environment{appstore.Production, appstore.Sandbox} {
		sent += len(simulator.Notifications(e))
	}
	if sent == 0 {
		t.Fatal("the simulator sent no notification in 45 days: the test tests nothing")
	}
	check := openTestPool(t, direct)
	waitNotificationsProcessed(t, ctx, check, sent)
	jobstest.RequireLedgerEqualsTruth(t, ledger.New(check), simulator.Truth())
	t.Logf("through PgBouncer: %d subscriptions imported, %d notifications stored and processed", len(truths), sent)
}

// waitNotificationsProcessed waits until want notifications are stored, each
// processed, and no job is left to work.
func waitNotificationsProcessed(t *testing.T, ctx context.Context, pool *pgxpool.Pool, want int) {
	t.Helper()
	var stored, unprocessed, jobs int
	for {
		err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM notifications),
			(SELECT count(*) FROM notifications WHERE processed_at IS NULL),
			(SELECT count(*) FROM river_job WHERE state IN ('available', 'running', 'retryable', 'scheduled', 'pending'))`).Scan(&stored, &unprocessed, &jobs)
		if err == nil && stored >= want && unprocessed == 0 && jobs == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %d processed notifications: %d stored, %d unprocessed, %d jobs left (%v)", want, stored, unprocessed, jobs, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
