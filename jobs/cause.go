package jobs

import (
	"context"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/storesync/storesync/ledger"
)

// causeMiddleware tells the ledger which job kind is working, so that every
// change-feed event names its cause (ledger.Cause) without each worker
// passing it down: import, notification processing, backfill, reconcile and
// resync all reach the ledger through a River job.
type causeMiddleware struct{ river.MiddlewareDefaults }

var _ rivertype.WorkerMiddleware = &causeMiddleware{}

// Work runs the job with its kind as the ledger cause.
func (*causeMiddleware) Work(ctx context.Context, job *rivertype.JobRow, doInner func(ctx context.Context) error) error {
	return doInner(ledger.WithCause(ctx, ledger.Cause{Job: job.Kind}))
}
