package jobs

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/ledger/budget"
)

// FollowImportOptions tunes FollowImport.
type FollowImportOptions struct {
	// Since is when the import started: 429s Apple answered from then on
	// (to every process, for any job) are counted in ImportFollow.Throttled.
	Since time.Time
	// Poll is how often the database is read; zero means a second.
	Poll time.Duration
	// Progress, when set, is called after every poll that finds rows still
	// pending (not after the last one).
	Progress func(ImportFollow)
}

// ImportFollow is what FollowImport saw of an import run at one poll.
type ImportFollow struct {
	RunID    int64
	Progress ledger.ImportProgress
	// RowsPerSecond is how many rows finished (done or failed) per second
	// over the polls of the last 30 s; 0 at the first poll.
	RowsPerSecond float64
	// CurrentPerSecond is how many rows got their current state (statuses
	// fetched) per second over the same window; 0 at the first poll.
	CurrentPerSecond float64
	// Throttled counts Apple's 429 answers since FollowImportOptions.Since.
	Throttled int64
	// Elapsed is the time since FollowImport started.
	Elapsed time.Duration
	// Failures are the five most common reasons rows failed, read once the
	// run has finished with failures; nil otherwise.
	Failures []ledger.ImportFailure
	// SiblingsImporting counts the jobs still importing subscriptions the
	// file did not list but Apple's statuses named beside its rows (other
	// subscriptions of the same Apple accounts). Read once every row has
	// finished; the run is finished only when it is 0 too.
	SiblingsImporting int64
	// Siblings counts those subscriptions imported by the run, read once
	// it has finished (River keeps finished jobs a day: a run followed
	// later may count fewer).
	Siblings int64
}

// ETA is how long the pending rows will take at RowsPerSecond, to the
// second; ok is false while nothing finished in the window (unknown).
func (f ImportFollow) ETA() (eta time.Duration, ok bool) {
	if f.RowsPerSecond <= 0 {
		return 0, false
	}
	return (time.Duration(float64(f.Progress.Pending)/f.RowsPerSecond) * time.Second).Round(time.Second), true
}

// CurrentETA is how long the rows still without their current state will
// take at CurrentPerSecond, to the second; ok is false while none got it in
// the window (unknown), and true with 0 once every row has it.
func (f ImportFollow) CurrentETA() (eta time.Duration, ok bool) {
	if f.Progress.CurrentWaiting == 0 {
		return 0, true
	}
	if f.CurrentPerSecond <= 0 {
		return 0, false
	}
	return (time.Duration(float64(f.Progress.CurrentWaiting)/f.CurrentPerSecond) * time.Second).Round(time.Second), true
}

// rateWindow is how far back FollowImport measures the rate: long enough
// to smooth bursts of a busy queue, short enough to follow a change.
const rateWindow = 30 * time.Second

// FollowImport polls import run runID until every row is done or failed
// and returns the last poll, with Failures filled. When ctx ends first it
// returns the last poll and ctx's error: following stops, the import does
// not (serve works its jobs). Reads use a context that outlives ctx, so an
// interrupt still gets the last poll. It is shaped like WaitResync.
func FollowImport(ctx context.Context, l *ledger.Ledger, runID int64, opts FollowImportOptions) (ImportFollow, error) {
	poll := opts.Poll
	if poll <= 0 {
		poll = time.Second
	}
	type sample struct {
		at       time.Time
		finished int64
		current  int64
	}
	var window []sample
	tick := time.NewTicker(poll)
	defer tick.Stop()
	started := time.Now()
	read := context.WithoutCancel(ctx)
	for {
		p, err := l.ImportProgressOf(read, runID)
		if err != nil {
			return ImportFollow{RunID: runID}, err
		}
		throttled, err := budget.ThrottledSince(read, l.Pool(), opts.Since)
		if err != nil {
			return ImportFollow{RunID: runID, Progress: p}, err
		}
		// Receipt rows become import rows only once their job has asked
		// Apple: until then they count as pending rows.
		unresolved, err := unresolvedReceipts(read, l, runID)
		if err != nil {
			return ImportFollow{RunID: runID, Progress: p}, err
		}
		p.Pending += unresolved
		p.Total += unresolved
		p.CurrentWaiting += unresolved
		now := time.Now()
		window = append(window, sample{now, p.Done + p.Failed, p.Current})
		for len(window) > 2 && now.Sub(window[0].at) > rateWindow {
			window = window[1:]
		}
		f := ImportFollow{RunID: runID, Progress: p, Throttled: throttled, Elapsed: time.Since(started)}
		if first := window[0]; now.Sub(first.at) > 0 {
			f.RowsPerSecond = float64(p.Done+p.Failed-first.finished) / now.Sub(first.at).Seconds()
			f.CurrentPerSecond = float64(p.Current-first.current) / now.Sub(first.at).Seconds()
		}
		if p.Finished() {
			// The rows are done; the subscriptions found beside them are
			// imported by jobs of the run without rows of their own.
			if f.SiblingsImporting, err = unfinishedRunJobs(read, l, runID, ImportArgs{}.Kind(), ImportHistoryArgs{}.Kind()); err != nil {
				return f, err
			}
		}
		if p.Finished() && f.SiblingsImporting == 0 {
			if f.Siblings, err = siblingImports(read, l, runID); err != nil {
				return f, err
			}
			if p.Failed > 0 {
				if f.Failures, err = l.ImportFailures(read, runID, 5); err != nil {
					return f, err
				}
			}
			return f, nil
		}
		if opts.Progress != nil {
			opts.Progress(f)
		}
		select {
		case <-ctx.Done():
			return f, ctx.Err()
		case <-tick.C:
		}
	}
}

// unfinishedRunJobs counts the jobs of kinds enqueued by import run runID
// that River has not finished yet.
func unfinishedRunJobs(ctx context.Context, l *ledger.Ledger, runID int64, kinds ...string) (int64, error) {
	var n int64
	err := l.Pool().QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = ANY($1) AND args->>'run_id' = $2
		AND state IN ('available', 'pending', 'retryable', 'running', 'scheduled')`, kinds, strconv.FormatInt(runID, 10)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counting the %s jobs of import run %d still to work: %w", strings.Join(kinds, " and "), runID, err)
	}
	return n, nil
}

// siblingImports counts the import jobs of run runID that River completed
// for subscriptions Apple named beside the run's rows (ImportArgs with
// StatusesKnown). Both keys are looked up in River's GIN index of args.
func siblingImports(ctx context.Context, l *ledger.Ledger, runID int64) (int64, error) {
	var n int64
	err := l.Pool().QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = $1 AND state = 'completed'
		AND args @> jsonb_build_object('run_id', $2::bigint, 'statuses_known', true)`, ImportArgs{}.Kind(), runID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counting the subscriptions import run %d found beside its rows: %w", runID, err)
	}
	return n, nil
}
