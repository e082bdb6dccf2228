package ledger

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// The job queue lives in the same database as the ledger (River's
// river_job table), so what status and the demo read of it is here too,
// beside the ledger's other read models, rather than as SQL in callers.

// QueueCount is how many River jobs of one kind in one queue are in one
// state.
type QueueCount struct {
	Kind  string // River's job kind, e.g. "import"
	Queue string
	State string // River's state name: available, scheduled, pending, running, retryable, completed, cancelled or discarded
	Jobs  int64
}

// QueueCounts counts the jobs in River's queue table by kind, queue and
// state, ordered by kind then queue (states in no particular order). An
// empty queue gives no rows. River deletes finished jobs after a while, so
// completed, cancelled and discarded counts cover only the recent past.
func (l *Ledger) QueueCounts(ctx context.Context) ([]QueueCount, error) {
	rows, err := l.db.Query(ctx, `SELECT kind, queue, state::text, count(*) FROM river_job GROUP BY 1, 2, 3 ORDER BY 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("reading river_job: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[QueueCount])
}

// UnfinishedJobs counts the jobs still to be worked: available, running,
// retryable, scheduled (including snoozed) or pending. Zero means the queue
// is idle, whatever jobs a periodic schedule may add later.
func (l *Ledger) UnfinishedJobs(ctx context.Context) (int64, error) {
	var n int64
	err := l.db.QueryRow(ctx, `SELECT count(*) FROM river_job
		WHERE state IN ('available', 'running', 'retryable', 'scheduled', 'pending')`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counting unfinished jobs in river_job: %w", err)
	}
	return n, nil
}
