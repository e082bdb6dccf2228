package jobs

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/storesync/storesync/ledger"
)

func TestWaitReconcileEndsWithTheRunOrItsJob(t *testing.T) {
	t.Parallel()
	pool, l, client := queueOnly(t)
	ctx := context.Background()
	insert := func(key string) int64 {
		t.Helper()
		res, err := client.Insert(ctx, ReconcileArgs{RunKey: key, CallCap: 10, FullCycle: time.Hour}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res.Job.ID
	}

	// Not started: the end of ctx stops waiting.
	id := insert("manual a")
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	run, err := WaitReconcile(cctx, client, l, id, "manual a", WaitReconcileOptions{Poll: time.Millisecond})
	if !errors.Is(err, context.DeadlineExceeded) || run != nil {
		t.Fatalf("not started: %+v, %v", run, err)
	}
	// Discarded without a run: its last error is quoted.
	finishJob(t, pool, id, rivertype.JobStateDiscarded, "budget gone")
	if _, err := WaitReconcile(ctx, client, l, id, "manual a", WaitReconcileOptions{Poll: time.Millisecond}); err == nil ||
		!strings.Contains(err.Error(), "ended without finishing (discarded: budget gone)") {
		t.Fatalf("discarded: %v", err)
	}
	// Completed without a run.
	id = insert("manual b")
	finishJob(t, pool, id, rivertype.JobStateCompleted, "")
	if _, err := WaitReconcile(ctx, client, l, id, "manual b", WaitReconcileOptions{}); err == nil || !strings.Contains(err.Error(), "recorded no run") {
		t.Fatalf("completed without a run: %v", err)
	}
	// A finished run is returned, whatever its job's state.
	id = insert("manual c")
	r, _, err := l.StartReconcileRun(ctx, ledger.NewReconcileRun{Key: "manual c", AsOf: time.Now(), CallCap: 10,
		FullCycle: time.Hour, FirstSweep: time.Hour, MaxSweep: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.FinishReconcileRun(ctx, r.ID, "", ""); err != nil {
		t.Fatal(err)
	}
	if run, err := WaitReconcile(ctx, client, l, id, "manual c", WaitReconcileOptions{}); err != nil || run == nil || run.ID != r.ID || run.FinishedAt == nil {
		t.Fatalf("finished run: %+v, %v", run, err)
	}
}
