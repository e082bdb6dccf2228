package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/storesync/storesync/ledger"
)

// WaitBackfillOptions tunes WaitBackfill.
type WaitBackfillOptions struct {
	// Poll is how often the jobs are read; zero means a second.
	Poll time.Duration
	// Window, when set, is called once per window as its job finishes,
	// in the order they are noticed.
	Window func(BackfillWindowOutcome)
	// NotStarted, when set, is called once if no window has started
	// after 15 s: the likely cause is that no `storesync serve` is
	// running.
	NotStarted func()
}

// backfillNotStartedAfter is longer than a busy serve takes to pick a
// maintenance job up.
const backfillNotStartedAfter = 15 * time.Second

// BackfillWindowOutcome is how one backfill window's job ended.
type BackfillWindowOutcome struct {
	// Window is the job's window (its arguments).
	Window BackfillArgs
	// State is the job's final state: completed, cancelled or discarded.
	State rivertype.JobState
	// Error is the job's last error when it did not complete ("" if none
	// was recorded).
	Error string
	// Record is what the window read, for a completed job; nil when the
	// job did not complete or the window was outside Apple's look-back
	// (nothing was read).
	Record *ledger.BackfillWindow
}

// BackfillWaitTotals sums the windows WaitBackfill saw finish.
type BackfillWaitTotals struct {
	// Seen and New count the notifications the completed windows read
	// and, of those, the ones the ledger lacked.
	Seen, New int
	// Failed counts windows whose job was cancelled or discarded.
	Failed int
	// Left counts windows still unfinished when waiting stopped early.
	Left int
}

// WaitBackfill polls the window jobs EnqueueBackfill returned until every
// one has finished, reporting each through opts.Window, and returns the
// totals. A job River has already cleaned away (it finished long ago) is
// skipped without a report. When ctx ends first it returns the totals so
// far, with Left set, and ctx's error: the windows go on in the
// background. A window that did not complete is counted in Failed, not
// returned as an error.
func WaitBackfill(ctx context.Context, client *river.Client[pgx.Tx], l *ledger.Ledger, windows []*rivertype.JobRow, opts WaitBackfillOptions) (BackfillWaitTotals, error) {
	poll := opts.Poll
	if poll <= 0 {
		poll = time.Second
	}
	pending := map[int64]bool{}
	for _, r := range windows {
		pending[r.ID] = true
	}
	var totals BackfillWaitTotals
	started := time.Now()
	hinted := false
	for len(pending) > 0 {
		for id := range pending {
			job, err := client.JobGet(ctx, id)
			if errors.Is(err, rivertype.ErrNotFound) {
				delete(pending, id)
				continue
			}
			if err != nil {
				totals.Left = len(pending)
				return totals, err
			}
			switch job.State {
			case rivertype.JobStateCompleted, rivertype.JobStateCancelled, rivertype.JobStateDiscarded:
			default:
				continue
			}
			delete(pending, id)
			o := backfillOutcome(ctx, l, job)
			if o.Record != nil {
				totals.Seen, totals.New = totals.Seen+o.Record.Seen, totals.New+o.Record.New
			}
			if o.State != rivertype.JobStateCompleted {
				totals.Failed++
			}
			if opts.Window != nil {
				opts.Window(o)
			}
		}
		if len(pending) == 0 {
			break
		}
		if !hinted && time.Since(started) > backfillNotStartedAfter && noneStarted(ctx, client, pending) {
			hinted = true
			if opts.NotStarted != nil {
				opts.NotStarted()
			}
		}
		select {
		case <-ctx.Done():
			totals.Left = len(pending)
			return totals, ctx.Err()
		case <-time.After(poll):
		}
	}
	return totals, nil
}

// noneStarted reports whether no pending job has been attempted yet.
func noneStarted(ctx context.Context, client *river.Client[pgx.Tx], pending map[int64]bool) bool {
	for id := range pending {
		job, err := client.JobGet(ctx, id)
		if err != nil || job.Attempt > 0 {
			return false
		}
	}
	return true
}

// backfillOutcome describes one finished window job, with what its window
// recorded when it completed.
func backfillOutcome(ctx context.Context, l *ledger.Ledger, job *rivertype.JobRow) BackfillWindowOutcome {
	o := BackfillWindowOutcome{State: job.State}
	_ = json.Unmarshal(job.EncodedArgs, &o.Window)
	if job.State != rivertype.JobStateCompleted {
		if n := len(job.Errors); n > 0 {
			o.Error = job.Errors[n-1].Error
		}
		return o
	}
	if w, err := l.FindBackfillWindow(ctx, o.Window.Environment, o.Window.Start, o.Window.End, o.Window.OnlyFailures); err == nil {
		o.Record = w
	}
	return o
}
