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
	// AtLeast says the state holds more than QueueCountCap jobs in all, so
	// only that many were counted and Jobs is a lower bound.
	AtLeast bool
}

// QueueCountCap is how many jobs of one state QueueCounts reads at most.
// A million-row import queues a million jobs (and River keeps them a day
// once completed): counting them all took about a second on every
// refresh of status and of the ops overview, which need only say "more
// than 10,000" then (import progress has counters of its own).
const QueueCountCap = 10000

// queueStates are River's job states, which QueueCounts reads one by one
// through River's (state, …) indexes.
var queueStates = []string{"available", "scheduled", "pending", "running", "retryable", "completed", "cancelled", "discarded"}

// QueueCounts counts the jobs in River's queue table by kind, queue and
// state, ordered by kind then queue (states in no particular order),
// reading at most QueueCountCap+1 jobs of each state (see
// QueueCount.AtLeast). An empty queue gives no rows. River deletes
// finished jobs after a while, so completed, cancelled and discarded
// counts cover only the recent past.
func (l *Ledger) QueueCounts(ctx context.Context) ([]QueueCount, error) {
	return l.queueCounts(ctx, QueueCountCap)
}

func (l *Ledger) queueCounts(ctx context.Context, limit int) ([]QueueCount, error) {
	rows, err := l.db.Query(ctx, `SELECT kind, queue, state, count(*), bool_or(truncated) FROM (
			SELECT j.kind, j.queue, s.state, count(*) OVER (PARTITION BY s.state) > $1 AS truncated
			FROM unnest($2::text[]) AS s(state)
			CROSS JOIN LATERAL (SELECT kind, queue FROM river_job
				WHERE river_job.state = s.state::river_job_state LIMIT $1 + 1) j
		) x GROUP BY 1, 2, 3 ORDER BY 1, 2`, limit, queueStates)
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
