package ledger_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

func TestQueueCountsAndUnfinishedJobs(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	l := ledger.New(pool)
	ctx := context.Background()
	if got, err := l.QueueCounts(ctx); err != nil || len(got) != 0 {
		t.Fatalf("empty queue: %v, %v", got, err)
	}
	if n, err := l.UnfinishedJobs(ctx); err != nil || n != 0 {
		t.Fatalf("empty queue: %d unfinished, %v", n, err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO river_job (kind, queue, state, args, finalized_at) VALUES
		('import', 'bulk', 'available', '{}', NULL), ('import', 'bulk', 'available', '{}', NULL),
		('import', 'bulk', 'completed', '{}', now()), ('backfill', 'default', 'scheduled', '{}', NULL),
		('backfill', 'default', 'retryable', '{}', NULL), ('backfill', 'default', 'discarded', '{}', now()),
		('resync', 'interactive', 'running', '{}', NULL), ('resync', 'interactive', 'cancelled', '{}', now())`); err != nil {
		t.Fatal(err)
	}
	got, err := l.QueueCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[ledger.QueueCount]bool{}
	var order []string
	for _, c := range got {
		counts[c] = true
		if len(order) == 0 || order[len(order)-1] != c.Kind {
			order = append(order, c.Kind)
		}
	}
	for _, want := range []ledger.QueueCount{
		{"import", "bulk", "available", 2}, {"import", "bulk", "completed", 1},
		{"backfill", "default", "scheduled", 1}, {"backfill", "default", "retryable", 1}, {"backfill", "default", "discarded", 1},
		{"resync", "interactive", "running", 1}, {"resync", "interactive", "cancelled", 1},
	} {
		if !counts[want] {
			t.Errorf("no %+v in %+v", want, got)
		}
	}
	if len(got) != 7 || !reflect.DeepEqual(order, []string{"backfill", "import", "resync"}) {
		t.Errorf("%d rows, kinds in order %v", len(got), order)
	}
	if n, err := l.UnfinishedJobs(ctx); err != nil || n != 5 {
		t.Fatalf("%d unfinished, %v; want 5", n, err)
	}
}
