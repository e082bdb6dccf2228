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
		{"import", "bulk", "available", 2, false}, {"import", "bulk", "completed", 1, false},
		{"backfill", "default", "scheduled", 1, false}, {"backfill", "default", "retryable", 1, false}, {"backfill", "default", "discarded", 1, false},
		{"resync", "interactive", "running", 1, false}, {"resync", "interactive", "cancelled", 1, false},
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

// Beyond the cap a state's count is a lower bound, said so; other states
// stay exact.
func TestQueueCountsStopAtTheCap(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	l := ledger.New(pool)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `INSERT INTO river_job (kind, queue, state, args)
		SELECT CASE WHEN i % 2 = 0 THEN 'import' ELSE 'resync' END, 'bulk', 'available', '{}' FROM generate_series(1, 50) i;
		INSERT INTO river_job (kind, queue, state, args) VALUES ('backfill', 'default', 'scheduled', '{}')`); err != nil {
		t.Fatal(err)
	}
	got, err := ledger.QueueCountsCapped(l, ctx, 20)
	if err != nil {
		t.Fatal(err)
	}
	var available int64
	for _, c := range got {
		switch c.State {
		case "available":
			available += c.Jobs
			if !c.AtLeast {
				t.Errorf("%+v: 50 available jobs over a cap of 20 not marked as a lower bound", c)
			}
		case "scheduled":
			if c.Jobs != 1 || c.AtLeast {
				t.Errorf("%+v: want exactly 1 scheduled", c)
			}
		}
	}
	if available != 21 {
		t.Errorf("read %d available jobs, want the cap + 1 (21)", available)
	}
	if got, err := l.QueueCounts(ctx); err != nil || len(got) != 3 || got[0].AtLeast {
		t.Errorf("under the default cap: %+v, %v", got, err)
	}
}
