package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/ledger"
)

// ImportArgs is the job migrating one subscription of an import file. It is
// unique by OriginalTransactionID alone: one job per subscription, however
// often (and by whichever run) it is imported.
type ImportArgs struct {
	OriginalTransactionID string `json:"original_transaction_id" river:"unique"`
	// AppAccountToken and CustomerID are linked to the subscription (a
	// disagreement with Apple is recorded as a conflict). The job takes
	// them from its import row when there is one: the Importer leaves them
	// empty here, since River indexes every key and value of the args
	// (GIN), which made them a third of the cost of enqueueing. A job
	// inserted without an import row passes them here.
	AppAccountToken string `json:"app_account_token,omitempty"`
	CustomerID      string `json:"customer_id,omitempty"`
	// RunID is the import run that enqueued the job.
	RunID int64 `json:"run_id"`
	// StatusesKnown says the job was enqueued by the statuses answer of a
	// sibling subscription (importSiblings): that answer, already applied,
	// listed this subscription too, so the job skips its own statuses call.
	StatusesKnown bool `json:"statuses_known,omitempty"`
}

// Kind is the River job kind.
func (ImportArgs) Kind() string { return "import" }

// InsertOpts puts imports on the bulk queue, behind interactive and live
// work, unique by originalTransactionId.
func (ImportArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:      QueueBulk,
		Priority:   PriorityBulk,
		UniqueOpts: river.UniqueOpts{ByArgs: true},
	}
}

// ImportSource is the conflict source of customer links made by imports.
const ImportSource = "import"

// importHistoryCursor is the durable position of a history step (of
// ImportHistoryWorker, and of ImportWorker in older binaries): the revision
// of the last page stored.
type importHistoryCursor struct {
	Revision string `json:"revision"`
}

// Import job steps (River resumable steps: a retried job skips what is done).
const (
	importStepStatuses = "statuses"
	importStepHistory  = "history"
	importStepFinish   = "finish"
)

// Timings of the import job.
const (
	// accountLeaseTTL bounds how long one job may hold an account's
	// statuses lease (a dead process's lease expires).
	accountLeaseTTL = 90 * time.Second
	// historyStopMargin is how long before the job's timeout the history
	// step stops at a page boundary and snoozes, so a long history goes on
	// in a fresh run instead of being killed mid-page.
	historyStopMargin = 10 * time.Second
)

// ImportWorker brings one import row to its current state, then hands the
// history to an ImportHistoryArgs job on its own queue (bulk_history), so
// that when the history endpoint binds, statuses keep running at their own
// limit and every row's current state is right after statuses alone:
//
//  1. statuses: one Get All Subscription Statuses call per Apple account.
//     Apple's answer lists every subscription of the account, so every row
//     of this import whose originalTransactionId it covered is marked
//     (ledger.MarkStatusesFetched) and skips its own call. Rows that may be
//     of one account (same customer id, or same appAccountToken: either is
//     enough, since a company's customer ids need not match Apple accounts)
//     take turns: while one is fetching, the others wait (snooze) for its
//     answer and then look again. Rows with neither column cannot be
//     grouped before Apple answers and may each make the call.
//  2. history: only for a job of an older binary that checkpointed a
//     history page here (its cursor): it is handed over, cursor and all, as
//     in finish. A job of this binary passes through.
//  3. finish: in one transaction, links the row's customer id and
//     appAccountToken to the subscription (a disagreement with Apple becomes
//     a conflict), so entitlements are right as soon as the current state
//     is, and enqueues the history job (unique by originalTransactionId, so
//     a retry or a concurrent run enqueues it once). The history job marks
//     the row done. A subscription Apple does not know fails the row here.
//
// Errors: transient ones are retried inside the job (retryTransient), then
// by River; a 429 snoozes the job until Retry-After; a permanent one (the
// id unknown in production and sandbox, an invalid id, data that fails
// verification) marks the row failed with the reason and cancels the job. A
// row whose job runs out of attempts is marked failed as well.
type ImportWorker struct {
	river.WorkerDefaults[ImportArgs]
	d *Deps
}

// Work runs the steps of one import row.
func (w *ImportWorker) Work(ctx context.Context, job *river.Job[ImportArgs]) error {
	ctx = ledger.WithCause(ctx, ledger.Cause{ImportRun: job.Args.RunID}) // the change feed names the run (events hold/release)
	var outcome error
	// One metric and one log line per run, like every other job (the
	// steps' result is what River records).
	defer func() {
		_ = w.d.jobDone(ctx, job.JobRow, outcome, slog.String("original_transaction_id", job.Args.OriginalTransactionID))
	}()
	otid := job.Args.OriginalTransactionID
	row, err := w.d.Ledger.ImportRowOf(ctx, otid)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		row = nil // a job without its row: migrate it all the same
	case err != nil:
		outcome = err
		return err
	}
	// A row finished by an earlier run that died before River recorded the
	// job as complete: pass through the steps without doing anything. An
	// early return would leave River looking for the step it checkpointed
	// ("resumable step not found") and retrying the job forever.
	finished := row != nil && row.State != ledger.ImportPending
	token, customer := job.Args.AppAccountToken, job.Args.CustomerID
	if row != nil {
		token, customer = row.AppAccountToken, row.CustomerID
	}

	river.ResumableStep(ctx, importStepStatuses, nil, func(ctx context.Context) error {
		if finished {
			return nil
		}
		outcome = w.statuses(ctx, job, row)
		return outcome
	})
	// The step keeps its name and cursor type so that a job checkpointed
	// mid-history by an older binary resumes here (River matches steps by
	// name) and its pages are not asked again.
	river.ResumableStepCursor(ctx, importStepHistory, nil, func(ctx context.Context, cur importHistoryCursor) error {
		if finished || cur.Revision == "" {
			return nil
		}
		outcome = w.handOff(ctx, job, token, customer, cur.Revision)
		return outcome
	})
	river.ResumableStep(ctx, importStepFinish, nil, func(ctx context.Context) error {
		if finished {
			return nil
		}
		outcome = w.handOff(ctx, job, token, customer, "")
		return outcome
	})
	return nil
}

// handOff links the customer and enqueues the history job from revision
// (empty: the ledger's), in one transaction. Both are idempotent, so a run
// repeated after a crash changes nothing more.
func (w *ImportWorker) handOff(ctx context.Context, job *river.Job[ImportArgs], token, customer, revision string) error {
	otid := job.Args.OriginalTransactionID
	if _, err := w.d.Ledger.Subscription(ctx, otid); errors.Is(err, ledger.ErrNotFound) {
		return failImportRow(ctx, w.d, otid, errors.New("Apple reports no subscription with this originalTransactionId (is it the id of a renewal, or of a purchase that is not a subscription?)"))
	} else if err != nil {
		return err
	}
	client := river.ClientFromContext[pgx.Tx](ctx)
	err := pgx.BeginFunc(ctx, w.d.Ledger.Pool(), func(tx pgx.Tx) error {
		if _, err := w.d.Ledger.WithTx(tx).LinkCustomer(ctx, otid, token, customer, ImportSource); err != nil {
			return err
		}
		_, err := client.InsertTx(ctx, tx, ImportHistoryArgs{OriginalTransactionID: otid, RunID: job.Args.RunID, FromRevision: revision}, nil)
		return err
	})
	if err != nil {
		return importOutcome(ctx, w.d, job.JobRow, otid, "linking the customer", err)
	}
	return nil
}

// statuses fetches and applies the statuses of the row's Apple account,
// unless a sibling row's job already did.
func (w *ImportWorker) statuses(ctx context.Context, job *river.Job[ImportArgs], row *ledger.ImportRowState) error {
	d := w.d
	otid := job.Args.OriginalTransactionID
	if job.Args.StatusesKnown {
		return nil
	}
	var keys []string
	if row != nil {
		if row.StatusesFetchedAt != nil {
			return nil
		}
		keys = importAccountKeys(row.AppAccountToken, row.CustomerID)
	}
	if len(keys) > 0 {
		// Another row that may be of this account may be asking Apple
		// right now; its answer may cover this row too.
		release, err := d.acquireAccountLeases(ctx, keys, strconv.FormatInt(job.ID, 10))
		if err != nil {
			return err
		}
		defer release()
		fresh, err := d.Ledger.ImportRowOf(ctx, otid)
		if err != nil {
			return err
		}
		if fresh.StatusesFetchedAt != nil {
			return nil
		}
	}
	changes, _, err := d.syncStatuses(ctx, otid)
	if err != nil {
		return importOutcome(ctx, w.d, job.JobRow, otid, "statuses", err)
	}
	ids := make([]string, 0, len(changes)+1)
	ids = append(ids, otid)
	var siblings []string
	for _, c := range changes {
		if c.After != nil && c.After.OriginalTransactionID != otid {
			ids = append(ids, c.After.OriginalTransactionID)
			if c.After.HistoryRevision == "" {
				siblings = append(siblings, c.After.OriginalTransactionID)
			}
		}
	}
	if err := d.Ledger.MarkStatusesFetched(ctx, ids); err != nil {
		return err
	}
	return w.importSiblings(ctx, job, siblings)
}

// importSiblings enqueues the full import of the account's other
// subscriptions that Apple's statuses answer just put in the ledger with
// only their latest transaction, unless the file imports them itself: the
// ledger never keeps a partial history. The jobs are unique by
// originalTransactionId, so concurrent discoveries enqueue one.
func (w *ImportWorker) importSiblings(ctx context.Context, job *river.Job[ImportArgs], siblings []string) error {
	if len(siblings) == 0 {
		return nil
	}
	client := river.ClientFromContext[pgx.Tx](ctx)
	params := make([]river.InsertManyParams, 0, len(siblings))
	for _, sib := range siblings {
		if _, err := w.d.Ledger.ImportRowOf(ctx, sib); err == nil {
			continue // the file has its own row and job
		} else if !errors.Is(err, ledger.ErrNotFound) {
			return err
		}
		params = append(params, river.InsertManyParams{Args: ImportArgs{OriginalTransactionID: sib, RunID: job.Args.RunID, StatusesKnown: true}})
	}
	if len(params) == 0 {
		return nil
	}
	_, err := client.InsertMany(ctx, params)
	return err
}

// importAccountKeys are the keys that group the rows of one Apple account
// before Apple says which they are: the company's customer id and the
// appAccountToken, each when set, in this fixed order (so two jobs take
// their leases in the same order). Both count: a company may give each
// subscription its own customer id while Apple's token is the account's, or
// one customer two Apple accounts. Grouping only makes rows take turns;
// whether a row's call is saved is decided by StatusesFetchedAt, so an
// over-wide group costs time, never correctness.
func importAccountKeys(token, customer string) []string {
	var keys []string
	if customer != "" {
		keys = append(keys, "customer:"+customer)
	}
	if token != "" {
		keys = append(keys, "token:"+strings.ToLower(token))
	}
	return keys
}

// acquireAccountLeases takes the import leases of every key, in order, for
// holder. When another job holds one it releases what it took and returns
// a River snooze error (holding nothing while waiting, so two rows sharing
// one key each cannot block each other); on success the caller must call
// release.
func (d *Deps) acquireAccountLeases(ctx context.Context, keys []string, holder string) (release func(), err error) {
	var held []string
	release = func() {
		for _, k := range held {
			_ = d.Ledger.ReleaseImportAccountLease(context.WithoutCancel(ctx), k, holder)
		}
	}
	for _, key := range keys {
		ok, err := d.Ledger.AcquireImportAccountLease(ctx, key, holder, accountLeaseTTL)
		if err != nil {
			release()
			return nil, err
		}
		if !ok {
			release()
			return nil, river.JobSnooze(time.Second + time.Duration(rand.Int64N(int64(time.Second))))
		}
		held = append(held, key)
	}
	return release, nil
}

// importOutcome turns an error of stage, in the job of row otid, into the
// job's result: a permanent Apple error fails the row and cancels the job;
// a 429 snoozes; a transient error retries (and fails the row when attempts
// run out).
func importOutcome(ctx context.Context, d *Deps, job *rivertype.JobRow, otid, stage string, err error) error {
	var apiErr *appstore.APIError
	if errors.As(err, &apiErr) && apiErr.Unauthorized() {
		// Not this row's fault: every row would fail the same way. Keep
		// the rows pending until the key is fixed.
		d.logger().Error("storesync: Apple refused the API key; import jobs wait until it is fixed", "error", err)
		return river.JobSnooze(time.Minute)
	}
	if isPermanentAppleError(err) {
		return failImportRow(ctx, d, otid, fmt.Errorf("%s: %s", stage, reasonOf(err)))
	}
	if ctx.Err() != nil {
		// Shutting down (or out of time): no attempt is used.
		return river.JobSnooze(0)
	}
	// Retry-After is a wall-clock instant, whatever clock Deps.Now is.
	out := appleOutcome(err)
	var snooze *river.JobSnoozeError
	var cancel *river.JobCancelError
	if !errors.As(out, &snooze) && !errors.As(out, &cancel) && job.Attempt >= job.MaxAttempts {
		if ferr := d.Ledger.MarkImportRowFailed(context.WithoutCancel(ctx), otid,
			fmt.Sprintf("%s: gave up after %d attempts: %s", stage, job.Attempt, reasonOf(err))); ferr != nil {
			return errors.Join(out, ferr)
		}
	}
	return out
}

// failImportRow marks row otid failed with reason and cancels the job.
func failImportRow(ctx context.Context, d *Deps, otid string, reason error) error {
	if err := d.Ledger.MarkImportRowFailed(context.WithoutCancel(ctx), otid, reason.Error()); err != nil {
		return err // retried: the row must not stay pending with its job cancelled
	}
	return river.JobCancel(reason)
}

// reasonOf is the part of err ops need: Apple's error or the verification
// failure, without the ids of the wrapping messages, so that failures group
// by reason.
func reasonOf(err error) string {
	var apiErr *appstore.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Error()
	}
	var verr *appstore.VerificationError
	if errors.As(err, &verr) {
		return verr.Error()
	}
	return err.Error()
}
