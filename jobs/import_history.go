package jobs

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/ledger"
)

// ImportHistoryArgs is the job paging the full transaction history of one
// imported subscription, enqueued by ImportWorker once the subscription's
// current state is stored. It is unique by OriginalTransactionID alone, so
// a repeated or concurrent hand-off enqueues one.
type ImportHistoryArgs struct {
	OriginalTransactionID string `json:"original_transaction_id" river:"unique"`
	// RunID is the import run of the row.
	RunID int64 `json:"run_id"`
	// FromRevision is where an older binary's import job had stopped
	// paging (its checkpointed cursor); empty: the ledger's saved revision.
	FromRevision string `json:"from_revision,omitempty"`
}

// Kind is the River job kind.
func (ImportHistoryArgs) Kind() string { return "import_history" }

// InsertOpts puts history on its own queue, so that history bound by
// Apple's limit never holds back the statuses of the bulk queue.
func (ImportHistoryArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:      QueueBulkHistory,
		Priority:   PriorityBulk,
		UniqueOpts: river.UniqueOpts{ByArgs: true},
	}
}

// Steps of the history job.
const (
	importHistoryStepPages  = "history"
	importHistoryStepFinish = "finish"
)

// ImportHistoryWorker pages the whole transaction history of the
// subscription's group in its environment (sandbox after fallback), each
// page stored in the same transaction as the job's cursor
// (river.ResumableSetStepCursorTx), so a crash resumes at the next page; a
// job nearing its timeout stops between pages and snoozes for under a
// second. Then it marks the import row done. Errors are handled as
// ImportWorker's.
type ImportHistoryWorker struct {
	river.WorkerDefaults[ImportHistoryArgs]
	d *Deps
}

// Work runs the steps of one history job.
func (w *ImportHistoryWorker) Work(ctx context.Context, job *river.Job[ImportHistoryArgs]) error {
	ctx = ledger.WithCause(ctx, ledger.Cause{ImportRun: job.Args.RunID})
	var outcome error
	defer func() {
		_ = w.d.jobDone(ctx, job.JobRow, outcome, slog.String("original_transaction_id", job.Args.OriginalTransactionID))
	}()
	otid := job.Args.OriginalTransactionID
	row, err := w.d.Ledger.ImportRowOf(ctx, otid)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		row = nil // a sibling found by statuses: no row to mark
	case err != nil:
		outcome = err
		return err
	}
	// Already settled by an earlier run: pass through every step (see
	// ImportWorker.Work for why not return early).
	finished := row != nil && row.State != ledger.ImportPending
	river.ResumableStepCursor(ctx, importHistoryStepPages, nil, func(ctx context.Context, cur importHistoryCursor) error {
		if finished {
			return nil
		}
		outcome = w.pages(ctx, job, cur)
		return outcome
	})
	river.ResumableStep(ctx, importHistoryStepFinish, nil, func(ctx context.Context) error {
		if finished {
			return nil
		}
		outcome = w.d.Ledger.MarkImportRowDone(ctx, otid)
		return outcome
	})
	return nil
}

// pages pages the history from cur, else the revision the job was handed,
// else the ledger's saved revision, checkpointing every page durably.
func (w *ImportHistoryWorker) pages(ctx context.Context, job *river.Job[ImportHistoryArgs], cur importHistoryCursor) error {
	d := w.d
	otid := job.Args.OriginalTransactionID
	sub, err := d.Ledger.Subscription(ctx, otid)
	if errors.Is(err, ledger.ErrNotFound) {
		// ImportWorker checked it before enqueueing; only a deleted
		// subscription gets here.
		return failImportRow(ctx, d, otid, errors.New("the subscription is no longer in the ledger"))
	}
	if err != nil {
		return err
	}
	from := cur.Revision
	if from == "" {
		from = job.Args.FromRevision
	}
	if from == "" {
		from = sub.HistoryRevision
	}
	hctx, cancel := historyContext(ctx)
	defer cancel()
	checkpoint := func(ctx context.Context, tx pgx.Tx, revision string) error {
		_, err := river.ResumableSetStepCursorTx[*riverpgxv5.Driver](ctx, tx, job, importHistoryCursor{Revision: revision})
		return err
	}
	_, err = d.syncHistory(hctx, otid, appstore.Environment(sub.Environment), sub.SubscriptionGroupIdentifier, from, checkpoint)
	if err != nil && hctx.Err() != nil && ctx.Err() == nil {
		// Near the timeout: every stored page is checkpointed; go on in a
		// fresh run almost at once.
		return river.JobSnooze(time.Duration(rand.Int64N(int64(time.Second))))
	}
	if err != nil {
		return importOutcome(ctx, d, job.JobRow, otid, "history", err)
	}
	return nil
}

// historyContext ends historyStopMargin before ctx's deadline (the job's
// timeout), or a quarter of the remaining time before it when that is short.
func historyContext(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	margin := min(historyStopMargin, time.Until(deadline)/4)
	return context.WithDeadline(ctx, deadline.Add(-margin))
}
