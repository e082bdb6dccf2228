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

// Certificate compaction (issue 18): one self-continuing River job walks
// the ledger's tables and rewrites rows stored before migration 011 to
// their compact form (ledger.CompactBatch), while storesync works
// normally. Each batch commits its rows with the table's cursor, so the
// job can be cancelled, crash, run twice or concurrently: it goes on where
// the last committed batch stopped. Like reconciliation, it works for one
// slice and snoozes (no attempt spent) so no run nears River's JobTimeout
// and other maintenance jobs get their turn.

// Defaults of CompactionSettings.
const (
	DefaultCompactionSlice = 20 * time.Second
	compactionSliceGap     = 100 * time.Millisecond
)

// CompactionSettings tunes the compaction job. Zero fields take the
// defaults.
type CompactionSettings struct {
	// BatchSize is the rows per batch (one transaction); default
	// ledger.DefaultCompactionBatch.
	BatchSize int
	// SliceDuration is how long one job run works before it snoozes;
	// default DefaultCompactionSlice, cut to end 15 s before the job's
	// timeout.
	SliceDuration time.Duration
}

// CompactCertificatesArgs is the compaction job. It has no arguments: the
// pass's state lives in certificate_compaction, and only one such job
// waits or runs at a time (unique while not finished).
type CompactCertificatesArgs struct{}

// Kind is River's job kind.
func (CompactCertificatesArgs) Kind() string { return "compact_certificates" }

// InsertOpts puts the job on the maintenance queue, once.
func (CompactCertificatesArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, Priority: PriorityMaintenance, UniqueOpts: river.UniqueOpts{
		ByState: []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStatePending,
			rivertype.JobStateRunning, rivertype.JobStateRetryable, rivertype.JobStateScheduled},
	}}
}

type compactCertificatesWorker struct {
	river.WorkerDefaults[CompactCertificatesArgs]
	d *Deps
}

func (w *compactCertificatesWorker) Work(ctx context.Context, job *river.Job[CompactCertificatesArgs]) error {
	s := w.d.Settings.Compaction
	if s.SliceDuration <= 0 {
		s.SliceDuration = DefaultCompactionSlice
	}
	deadline := time.Now().Add(s.SliceDuration)
	if dl, ok := ctx.Deadline(); ok && dl.Add(-15*time.Second).Before(deadline) {
		deadline = dl.Add(-15 * time.Second)
	}
	for {
		done, err := w.d.Ledger.CompactBatch(ctx, s.BatchSize)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			return river.JobSnooze(compactionSliceGap)
		}
	}
}

// EnqueueCompaction enqueues the compaction job when the current pass is
// unfinished, or, with again, starts a new pass first if the current one
// is done. It returns the job (the one already waiting or running, if
// any) or nil when there was nothing to do. serve calls it at start with
// again false, so a pass interrupted by a stop resumes by itself.
func EnqueueCompaction(ctx context.Context, client *river.Client[pgx.Tx], l *ledger.Ledger, again bool) (*rivertype.JobRow, error) {
	if again {
		if _, err := l.StartCompactionPass(ctx); err != nil {
			return nil, err
		}
	}
	p, err := l.CompactionProgress(ctx)
	if err != nil {
		return nil, err
	}
	if p.Done() {
		return nil, nil
	}
	res, err := client.Insert(ctx, CompactCertificatesArgs{}, nil)
	if err != nil {
		return nil, fmt.Errorf("enqueueing the certificate compaction: %w", err)
	}
	return res.Job, nil
}

// WaitCompaction polls until the current compaction pass is done and
// returns its progress; progress, when set, is called with each reading
// (every poll, 500 ms by default). It fails when the job jobID was
// cancelled or discarded first (quoting its last error), or with ctx's
// error (the compaction goes on in the background).
func WaitCompaction(ctx context.Context, client *river.Client[pgx.Tx], l *ledger.Ledger, jobID int64, poll time.Duration,
	progress func(ledger.Compaction)) (ledger.Compaction, error) {
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	for {
		p, err := l.CompactionProgress(ctx)
		if err != nil {
			return nil, err
		}
		if progress != nil {
			progress(p)
		}
		if p.Done() {
			return p, nil
		}
		j, err := client.JobGet(ctx, jobID)
		if err != nil && !errors.Is(err, river.ErrNotFound) {
			return p, fmt.Errorf("reading the compaction job: %w", err)
		}
		if j != nil && (j.State == rivertype.JobStateCancelled || j.State == rivertype.JobStateDiscarded) {
			msg := string(j.State)
			if n := len(j.Errors); n > 0 {
				msg += ": " + j.Errors[n-1].Error
			}
			return p, fmt.Errorf("the certificate compaction ended without finishing (%s)", msg)
		}
		select {
		case <-ctx.Done():
			return p, ctx.Err()
		case <-time.After(poll):
		}
	}
}
