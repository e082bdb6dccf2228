package jobs

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/storesync/storesync/ledger"
)

func TestFollowImportStopsWithCtxAndReportsFailures(t *testing.T) {
	t.Parallel()
	_, l, client := queueOnly(t)
	im, err := NewImporter(ImporterOptions{Ledger: l, River: client})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	run, _, err := im.Run(ctx, "subs.csv", strings.NewReader("2000000000000001\n2000000000000002\n2000000000000003\n"))
	if err != nil {
		t.Fatal(err)
	}
	// Nothing works the rows: the end of ctx stops following (at the next
	// wait: a tick already due may win the race for one more poll).
	cctx, cancel := context.WithCancel(ctx)
	polls := 0
	f, err := FollowImport(cctx, l, run, FollowImportOptions{Since: time.Now(), Poll: time.Millisecond, Progress: func(ImportFollow) {
		if polls++; polls == 2 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) || polls < 2 || f.RunID != run || f.Progress != (ledger.ImportProgress{Total: 3, Pending: 3, CurrentWaiting: 3}) {
		t.Fatalf("interrupted: %+v, %v after %d polls", f, err, polls)
	}
	if _, ok := f.ETA(); ok {
		t.Errorf("an ETA with nothing finished: %+v", f)
	}
	if _, ok := f.CurrentETA(); ok {
		t.Errorf("a current-state ETA with no statuses fetched: %+v", f)
	}

	for _, otid := range []string{"2000000000000002", "2000000000000003"} {
		if err := l.MarkImportRowFailed(ctx, otid, "gone"); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.MarkImportRowDone(ctx, "2000000000000001"); err != nil {
		t.Fatal(err)
	}
	// As workers would have: the rows' jobs end with them (FollowImport
	// also waits for the run's jobs, which import subscriptions found
	// beside the rows).
	if _, err := l.Pool().Exec(ctx, `DELETE FROM river_job WHERE kind = 'import'`); err != nil {
		t.Fatal(err)
	}
	f, err = FollowImport(ctx, l, run, FollowImportOptions{Progress: func(f ImportFollow) { t.Errorf("progress of a finished run: %+v", f) }})
	if err != nil || f.Progress != (ledger.ImportProgress{Total: 3, Done: 1, Failed: 2}) ||
		len(f.Failures) != 1 || f.Failures[0] != (ledger.ImportFailure{Reason: "gone", Rows: 2}) {
		t.Fatalf("finished: %+v, %v", f, err)
	}
}

func TestImportFollowETA(t *testing.T) {
	t.Parallel()
	f := ImportFollow{Progress: ledger.ImportProgress{Pending: 90}, RowsPerSecond: 2}
	if eta, ok := f.ETA(); !ok || eta != 45*time.Second {
		t.Fatalf("ETA %s %v, want 45s", eta, ok)
	}
	f = ImportFollow{Progress: ledger.ImportProgress{Pending: 90, CurrentWaiting: 30}, RowsPerSecond: 2, CurrentPerSecond: 10}
	if eta, ok := f.CurrentETA(); !ok || eta != 3*time.Second {
		t.Fatalf("current-state ETA %s %v, want 3s", eta, ok)
	}
	f.Progress.CurrentWaiting = 0
	if eta, ok := f.CurrentETA(); !ok || eta != 0 {
		t.Fatalf("current-state ETA of a run with every current state %s %v, want 0", eta, ok)
	}
}
