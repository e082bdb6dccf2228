package ledger_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

// Import progress comes from counters (migrations 012, 014), not from counting
// the run's rows: after concurrent inserts, repeated and racing marks,
// duplicate rows of a second run, bookkeeping updates and a deletion, every
// run's progress still equals a count of its rows by state.
func TestImportProgressCountersMatchTheRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, pool := migrationstest.NewDatabase(t)
	l := ledger.New(pool)
	first, err := l.CreateImportRun(ctx, "first.csv")
	if err != nil {
		t.Fatal(err)
	}
	second, err := l.CreateImportRun(ctx, "second.csv")
	if err != nil {
		t.Fatal(err)
	}
	rows := func(from, to int) []ledger.ImportRow {
		var out []ledger.ImportRow
		for i := from; i < to; i++ {
			out = append(out, ledger.ImportRow{OriginalTransactionID: fmt.Sprint(1000 + i), CustomerID: fmt.Sprint("c", i)})
		}
		return out
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Overlapping batches: each id lands in one run once.
			if _, err := l.InsertImportRows(ctx, first, rows(w*40, w*40+60)); err != nil {
				errs <- err
			}
			if _, err := l.InsertImportRows(ctx, second, rows(w*40+30, w*40+70)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 400; i += 4 { // every row marked by two workers
				id := fmt.Sprint(1000 + i)
				var err error
				switch i % 5 {
				case 0:
					err = l.MarkImportRowFailed(ctx, id, "gone")
				case 1, 2, 3:
					err = l.MarkImportRowDone(ctx, id)
				}
				if err == nil && i%3 != 0 { // some rows, pending ones too, without their statuses
					err = l.MarkStatusesFetched(ctx, []string{id})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `DELETE FROM import_rows WHERE original_transaction_id IN ('1003', '1004')`); err != nil {
		t.Fatal(err)
	}
	runs, err := l.ImportRuns(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 {
		t.Fatalf("%d runs, want 2", len(runs))
	}
	var all ledger.ImportProgress
	for _, r := range runs {
		var want ledger.ImportProgress
		if err := pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE state = 'pending'),
				count(*) FILTER (WHERE state = 'done'), count(*) FILTER (WHERE state = 'failed'),
				count(*) FILTER (WHERE statuses_fetched_at IS NOT NULL),
				count(*) FILTER (WHERE state = 'pending' AND statuses_fetched_at IS NULL)
			FROM import_rows WHERE run_id = $1`, r.ID).Scan(&want.Total, &want.Pending, &want.Done, &want.Failed,
			&want.Current, &want.CurrentWaiting); err != nil {
			t.Fatal(err)
		}
		// Which run gets an id is decided by the racing inserts above, so
		// a run may be small: the states are required of the two together.
		all.Total, all.Done, all.Failed = all.Total+want.Total, all.Done+want.Done, all.Failed+want.Failed
		all.Current, all.CurrentWaiting = all.Current+want.Current, all.CurrentWaiting+want.CurrentWaiting
		if r.Progress != want {
			t.Errorf("run %d: ImportRuns says %+v, the rows %+v", r.ID, r.Progress, want)
		}
		p, err := l.ImportProgressOf(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if p != want {
			t.Errorf("run %d: ImportProgressOf says %+v, the rows %+v", r.ID, p, want)
		}
	}
	if all.Total == 0 || all.Done == 0 || all.Failed == 0 || all.Current == 0 || all.CurrentWaiting == 0 {
		t.Fatalf("the test should leave rows in several states, got %+v over both runs", all)
	}
}
