package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/storesync/storesync/ledger"
)

// WaitReconcileOptions tunes WaitReconcile.
type WaitReconcileOptions struct {
	// Poll is how often the run and its job are read; zero means 500 ms.
	Poll time.Duration
	// NotStarted, when set, is called once if the run has not started
	// after 5 s: the likely cause is that no `storesync serve` is running.
	NotStarted func()
}

// reconcileNotStartedAfter is longer than serve takes to pick up a job of
// the (uncrowded) maintenance queue.
const reconcileNotStartedAfter = 5 * time.Second

// WaitReconcile polls until the reconciliation run named key (ReconcileArgs.RunKey),
// enqueued as job jobID, has finished, and returns it. It is shaped like
// WaitResync.
//
// Errors, each returned with the run as last read (nil before it started):
// the run finished with an error; its job was cancelled or discarded
// without finishing it (the job's last error is quoted); the job completed
// but recorded no run; reading failed; or ctx ended first (ctx's error:
// the run goes on in the background).
func WaitReconcile(ctx context.Context, client *river.Client[pgx.Tx], l *ledger.Ledger, jobID int64, key string, opts WaitReconcileOptions) (*ledger.ReconcileRun, error) {
	poll := opts.Poll
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	start := time.Now()
	hinted := false
	for {
		run, err := l.ReconcileRunByKey(ctx, key)
		if err != nil && !errors.Is(err, ledger.ErrNotFound) {
			return nil, err
		}
		if run != nil && run.FinishedAt != nil {
			if run.Error != "" {
				return run, fmt.Errorf("reconciliation %q failed: %s", key, run.Error)
			}
			return run, nil
		}
		j, err := client.JobGet(ctx, jobID)
		if err != nil {
			return run, fmt.Errorf("reading the reconciliation job: %w", err)
		}
		switch j.State {
		case rivertype.JobStateCancelled, rivertype.JobStateDiscarded:
			msg := string(j.State)
			if n := len(j.Errors); n > 0 {
				msg += ": " + j.Errors[n-1].Error
			}
			return run, fmt.Errorf("reconciliation %q ended without finishing (%s)", key, msg)
		case rivertype.JobStateCompleted:
			if run == nil {
				return nil, fmt.Errorf("reconciliation %q: the job completed but recorded no run", key)
			}
		}
		if run == nil && !hinted && time.Since(start) > reconcileNotStartedAfter {
			hinted = true
			if opts.NotStarted != nil {
				opts.NotStarted()
			}
		}
		select {
		case <-ctx.Done():
			return run, ctx.Err()
		case <-time.After(poll):
		}
	}
}
