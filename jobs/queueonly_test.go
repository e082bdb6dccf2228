package jobs

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

// queueOnly is a migrated database with an insert-only River client: jobs
// are enqueued but nothing works them, so tests move them by hand.
func queueOnly(t *testing.T) (*pgxpool.Pool, *ledger.Ledger, *river.Client[pgx.Tx]) {
	t.Helper()
	_, pool := migrationstest.NewDatabase(t)
	deps := &Deps{Ledger: ledger.New(pool)}
	client, err := NewRiverClient(deps, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pool, deps.Ledger, client
}

// finishJob moves a job to a final state, as a worker would, with err as
// its last error.
func finishJob(t *testing.T, pool *pgxpool.Pool, id int64, state rivertype.JobState, err string) {
	t.Helper()
	var errs []map[string]any
	if err != "" {
		errs = []map[string]any{{"at": time.Now(), "attempt": 1, "error": err}}
	}
	if _, e := pool.Exec(context.Background(), `UPDATE river_job SET state = $2, finalized_at = now(), attempt = 1, errors = $3 WHERE id = $1`,
		id, string(state), errs); e != nil {
		t.Fatal(e)
	}
}
