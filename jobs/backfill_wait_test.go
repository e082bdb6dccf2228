package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/ledger"
)

func TestWaitBackfillReportsEveryWindowOnce(t *testing.T) {
	t.Parallel()
	pool, l, client := queueOnly(t)
	ctx := context.Background()
	now := time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)
	rows, _, err := EnqueueBackfill(ctx, client, BackfillRequest{Environments: []appstore.Environment{appstore.Sandbox},
		Since: now.Add(-4 * 24 * time.Hour), Until: now, Now: now})
	if err != nil || len(rows) != 4 {
		t.Fatalf("%d windows, %v", len(rows), err)
	}
	args := func(job *rivertype.JobRow) BackfillArgs {
		t.Helper()
		var a BackfillArgs
		if err := json.Unmarshal(job.EncodedArgs, &a); err != nil {
			t.Fatal(err)
		}
		return a
	}
	// One window read 2 pages, one job left no window, one was discarded,
	// one was cleaned away.
	read := args(rows[0])
	w, err := l.OpenBackfillWindow(ctx, ledger.BackfillWindow{Environment: read.Environment, Kind: ledger.BackfillManual, Start: read.Start, End: read.End})
	if err != nil {
		t.Fatal(err)
	}
	for _, page := range [][2]int{{5, 1}, {3, 2}} {
		if err := l.SaveBackfillPage(ctx, w.ID, "", page[0], page[1]); err != nil {
			t.Fatal(err)
		}
	}
	finishJob(t, pool, rows[0].ID, rivertype.JobStateCompleted, "")
	finishJob(t, pool, rows[1].ID, rivertype.JobStateCompleted, "")
	finishJob(t, pool, rows[2].ID, rivertype.JobStateDiscarded, "apple said no")
	if _, err := client.JobDelete(ctx, rows[3].ID); err != nil {
		t.Fatal(err)
	}

	seen := map[int64]BackfillWindowOutcome{}
	totals, err := WaitBackfill(ctx, client, l, rows, WaitBackfillOptions{Poll: time.Millisecond, Window: func(o BackfillWindowOutcome) {
		for _, r := range rows {
			if args(r) == o.Window {
				if _, again := seen[r.ID]; again {
					t.Errorf("window %d reported twice", r.ID)
				}
				seen[r.ID] = o
			}
		}
	}})
	if err != nil || totals != (BackfillWaitTotals{Seen: 8, New: 3, Failed: 1}) || len(seen) != 3 {
		t.Fatalf("totals %+v, %v; outcomes %+v", totals, err, seen)
	}
	if o := seen[rows[0].ID]; o.State != rivertype.JobStateCompleted || o.Record == nil || o.Record.Pages != 2 {
		t.Errorf("read window: %+v", o)
	}
	if o := seen[rows[1].ID]; o.State != rivertype.JobStateCompleted || o.Record != nil {
		t.Errorf("window without record: %+v", o)
	}
	if o := seen[rows[2].ID]; o.State != rivertype.JobStateDiscarded || o.Error != "apple said no" || o.Record != nil {
		t.Errorf("discarded window: %+v", o)
	}

	// A window nobody works: the end of ctx stops waiting, not the window.
	more, _, err := EnqueueBackfill(ctx, client, BackfillRequest{Environments: []appstore.Environment{appstore.Sandbox},
		Since: now.Add(-5 * 24 * time.Hour), Until: now.Add(-4 * 24 * time.Hour), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	totals, err = WaitBackfill(cctx, client, l, more, WaitBackfillOptions{Poll: time.Millisecond})
	if !errors.Is(err, context.DeadlineExceeded) || totals.Left != 1 {
		t.Fatalf("unworked window: %+v, %v", totals, err)
	}
}
