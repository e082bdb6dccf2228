package jobs

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/storesync/storesync/ledger"
)

// startedWriter records whether Started had run before the first write.
type startedWriter struct {
	started, writtenBeforeStart bool
	b                           strings.Builder
}

func (w *startedWriter) Write(p []byte) (int, error) {
	if !w.started {
		w.writtenBeforeStart = true
	}
	return w.b.Write(p)
}

// Run records the run, names it before any row is read, imports, and
// finishes it; interrupted, it returns the run it leaves unfinished.
func TestImporterRunRecordsAndFinishesTheRun(t *testing.T) {
	t.Parallel()
	_, l, client := queueOnly(t)
	ctx := context.Background()
	rejects := &startedWriter{}
	var startedRun int64
	im, err := NewImporter(ImporterOptions{Ledger: l, River: client, Rejects: rejects,
		Started: func(id int64) { startedRun, rejects.started = id, true }})
	if err != nil {
		t.Fatal(err)
	}
	run, counts, err := im.Run(ctx, "subs.csv", strings.NewReader("2000000000000001\nx\n2000000000000002\n2000000000000001\n"))
	if err != nil {
		t.Fatal(err)
	}
	if run == 0 || startedRun != run || rejects.writtenBeforeStart || !strings.HasPrefix(rejects.b.String(), "2,") {
		t.Fatalf("run %d, Started with %d, rejects written before: %v, rejects %q", run, startedRun, rejects.writtenBeforeStart, rejects.b.String())
	}
	want := ledger.ImportCounts{Rows: 4, Rejected: 1, Duplicates: 1, Enqueued: 2}
	if counts != want {
		t.Fatalf("counts %+v, want %+v", counts, want)
	}
	runs, err := l.ImportRuns(ctx, 1)
	if err != nil || len(runs) != 1 || runs[0].ID != run || runs[0].Source != "subs.csv" || runs[0].FinishedAt == nil || runs[0].Counts != want {
		t.Fatalf("recorded runs %+v, %v", runs, err)
	}

	// Interrupted once the run is recorded: the run stays unfinished and
	// is returned with the error.
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	im, err = NewImporter(ImporterOptions{Ledger: l, River: client, Started: func(int64) { cancel() }})
	if err != nil {
		t.Fatal(err)
	}
	run2, _, err := im.Run(cctx, "-", strings.NewReader("2000000000000003\n"))
	if !errors.Is(err, context.Canceled) || run2 == 0 || run2 == run {
		t.Fatalf("interrupted: run %d, %v", run2, err)
	}
	runs, err = l.ImportRuns(ctx, 1)
	if err != nil || len(runs) != 1 || runs[0].ID != run2 || runs[0].FinishedAt != nil {
		t.Fatalf("interrupted run recorded as %+v, %v", runs, err)
	}
}
