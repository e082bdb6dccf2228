package jobs

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/storesync/storesync/ledger"
)

// causeMiddleware tells the ledger which job kind is working, so that every
// change-feed event names its cause (ledger.Cause) without each worker
// passing it down: import, notification processing, backfill, reconcile and
// resync all reach the ledger through a River job. For the same reason it
// is where a job that wrote events asks for their fan-out (feed).
type causeMiddleware struct {
	river.MiddlewareDefaults
	feed *feedNudger
}

var _ rivertype.WorkerMiddleware = &causeMiddleware{}

// Work runs the job with its kind as the ledger cause and, when it wrote
// change-feed events (even if it then failed: paging jobs commit as they
// go), asks for a fan-out.
func (m *causeMiddleware) Work(ctx context.Context, job *rivertype.JobRow, doInner func(ctx context.Context) error) error {
	ctx, watch := ledger.WithEventWatch(ctx)
	err := doInner(ledger.WithCause(ctx, ledger.Cause{Job: job.Kind}))
	if watch.Wrote() && m.feed != nil {
		if client, cerr := river.ClientFromContextSafely[pgx.Tx](ctx); cerr == nil {
			m.feed.nudge(client)
		}
	}
	return err
}
