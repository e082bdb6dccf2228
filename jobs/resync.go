package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/ledger"
)

// ResyncTarget names what an ops re-sync repairs: exactly one of an
// originalTransactionId (Apple's id, known to the ledger or not), an
// appAccountToken or the company's customer id (both resolved through the
// ledger), or an order id from the customer's emailed receipt (resolved by
// Apple's Look Up Order ID, see resync_order.go).
type ResyncTarget struct {
	OriginalTransactionID string `json:"originalTransactionId,omitempty"`
	AppAccountToken       string `json:"appAccountToken,omitempty"`
	CustomerID            string `json:"customerId,omitempty"`
	OrderID               string `json:"orderId,omitempty"`
}

// Validate requires exactly one non-empty key, a UUID for
// appAccountToken and a well-formed orderId (ValidateOrderID).
func (t ResyncTarget) Validate() error {
	n := 0
	for _, v := range []string{t.OriginalTransactionID, t.AppAccountToken, t.CustomerID, t.OrderID} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		return errors.New("give exactly one of originalTransactionId, appAccountToken, customerId or orderId")
	}
	if t.AppAccountToken != "" && !ledger.IsUUID(t.AppAccountToken) {
		return fmt.Errorf("appAccountToken %q is not a UUID", t.AppAccountToken)
	}
	if t.OrderID != "" {
		return ValidateOrderID(t.OrderID)
	}
	return nil
}

// String names the target for logs and messages.
func (t ResyncTarget) String() string {
	switch {
	case t.OriginalTransactionID != "":
		return "originalTransactionId " + t.OriginalTransactionID
	case t.AppAccountToken != "":
		return "appAccountToken " + t.AppAccountToken
	case t.OrderID != "":
		return "orderId " + t.OrderID
	default:
		return "customerId " + t.CustomerID
	}
}

// ResyncArgs re-reads one target from Apple now, at interactive priority:
// statuses, transaction history since the stored revision, and the
// customer's notification history (missing notifications are stored and
// processed). Its result (ResyncResult) is the job's recorded output.
type ResyncArgs struct {
	ResyncTarget
}

// Kind is the River job kind.
func (ResyncArgs) Kind() string { return "resync" }

// InsertOpts: interactive queue and priority; one job per target while
// one is pending or running (a finished one does not block the next).
func (ResyncArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue: QueueInteractive, Priority: PriorityInteractive, MaxAttempts: 5,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
			rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
			rivertype.JobStateScheduled, rivertype.JobStateRetryable,
		}},
	}
}

// FieldChange is one field of one subscription that a re-sync changed.
type FieldChange struct {
	OriginalTransactionID string `json:"originalTransactionId"`
	Field                 string `json:"field"`
	Before                string `json:"before"`
	After                 string `json:"after"`
}

// ResyncResult is what a re-sync did.
type ResyncResult struct {
	Target ResyncTarget `json:"target"`
	// Subscriptions are every subscription re-read (the target's, and the
	// other subscriptions of the same Apple accounts), ordered.
	Subscriptions       []string      `json:"subscriptions"`
	Changes             []FieldChange `json:"changes"`
	HistoryPages        int           `json:"historyPages"`
	NotificationsSeen   int           `json:"notificationsSeen"`
	NotificationsStored int           `json:"notificationsStored"`
	// Errors are per-subscription permanent failures (e.g. an id Apple
	// does not know); the rest of the target was still re-synced.
	Errors []string `json:"errors,omitempty"`
}

type resyncWorker struct {
	river.WorkerDefaults[ResyncArgs]
	d *Deps
}

func (w *resyncWorker) Work(ctx context.Context, job *river.Job[ResyncArgs]) error {
	res, err := w.d.resync(ctx, job.Args.ResyncTarget)
	attrs := []slog.Attr{slog.String("target", job.Args.ResyncTarget.String())}
	if res != nil {
		attrs = append(attrs, slog.Int("subscriptions", len(res.Subscriptions)), slog.Int("changes", len(res.Changes)),
			slog.Int("notifications_stored", res.NotificationsStored))
		if oerr := river.RecordOutput(ctx, res); oerr != nil && err == nil {
			err = oerr
		}
	}
	return w.d.jobDone(ctx, job.JobRow, err, attrs...)
}

// resync repairs one target. Transient Apple errors and 429s fail the run
// (River retries or snoozes it; every step is idempotent); a permanent
// error on one subscription is recorded and the others continue.
func (d *Deps) resync(ctx context.Context, target ResyncTarget) (*ResyncResult, error) {
	if err := target.Validate(); err != nil {
		return nil, river.JobCancel(err)
	}
	ctx = appstore.WithPriority(ctx, appstore.PriorityInteractive)
	res := &ResyncResult{Target: target, Changes: []FieldChange{}}
	ids, err := d.resolveTarget(ctx, target)
	if err != nil {
		return res, err
	}
	before := map[string]*ledger.Subscription{}
	for _, id := range ids {
		if s, err := d.Ledger.Subscription(ctx, id); err == nil {
			before[id] = s
		} else if !errors.Is(err, ledger.ErrNotFound) {
			return res, err
		}
	}
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return res, ErrNoRiverClient
	}
	done := map[string]bool{}
	for _, id := range ids {
		if done[id] {
			continue // a sibling's statuses call already covered it
		}
		covered, err := d.resyncAccount(ctx, client, id, res)
		if err != nil {
			if isPermanentAppleError(err) {
				res.Errors = append(res.Errors, fmt.Sprintf("%s: %v", id, err))
				done[id] = true
				continue
			}
			return res, appleOutcome(err)
		}
		for _, c := range covered {
			if _, ok := before[c]; !ok && !done[c] && !containsString(ids, c) {
				// A sibling subscription of the same account, first seen in
				// this statuses answer.
				before[c] = nil
			}
			done[c] = true
		}
		done[id] = true
	}
	for id := range before {
		if !containsString(res.Subscriptions, id) {
			res.Subscriptions = append(res.Subscriptions, id)
		}
	}
	for _, id := range ids {
		if !containsString(res.Subscriptions, id) {
			res.Subscriptions = append(res.Subscriptions, id)
		}
	}
	sort.Strings(res.Subscriptions)
	for _, id := range res.Subscriptions {
		after, err := d.Ledger.Subscription(ctx, id)
		if errors.Is(err, ledger.ErrNotFound) {
			continue
		}
		if err != nil {
			return res, err
		}
		res.Changes = append(res.Changes, fieldChanges(before[id], after)...)
	}
	if len(res.Errors) > 0 && len(res.Errors) == len(ids) && len(res.Changes) == 0 {
		return res, river.JobCancel(fmt.Errorf("re-sync of %s: %s", target, res.Errors[0]))
	}
	return res, nil
}

// resolveTarget returns the originalTransactionIds of a target.
func (d *Deps) resolveTarget(ctx context.Context, t ResyncTarget) ([]string, error) {
	if t.OrderID != "" {
		return d.orderSubscriptions(ctx, t.OrderID)
	}
	ids, err := ResyncTargetIDs(ctx, d.Ledger, t)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, river.JobCancel(fmt.Errorf("no subscription in the ledger has %s: re-sync by originalTransactionId instead", t))
	}
	return ids, err
}

// ResyncTargetIDs returns the subscriptions a re-sync target names: the
// originalTransactionId itself (known to the ledger or not: Apple is asked
// anyway), or every subscription the ledger links to the appAccountToken or
// customer id — ledger.ErrNotFound when there is none. An order id names
// subscriptions only Apple knows: it returns none and no error (the job asks
// Apple).
func ResyncTargetIDs(ctx context.Context, l *ledger.Ledger, t ResyncTarget) ([]string, error) {
	if t.OriginalTransactionID != "" {
		return []string{t.OriginalTransactionID}, nil
	}
	if t.OrderID != "" {
		return nil, nil
	}
	var subs []*ledger.Subscription
	var err error
	if t.AppAccountToken != "" {
		subs, err = l.SubscriptionsByAppAccountToken(ctx, t.AppAccountToken)
	} else {
		subs, err = l.SubscriptionsByCustomerID(ctx, t.CustomerID)
	}
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(subs))
	for _, s := range subs {
		ids = append(ids, s.OriginalTransactionID)
	}
	return ids, nil
}

// resyncAccount re-reads the Apple account of otid: statuses (every
// subscription of the account), the transaction history of each of those
// subscriptions since its stored revision, and the account's notification
// history over Apple's whole look-back. It returns the subscriptions the
// statuses answer covered.
func (d *Deps) resyncAccount(ctx context.Context, client *river.Client[pgx.Tx], otid string, res *ResyncResult) ([]string, error) {
	changes, env, err := d.syncStatuses(ctx, otid)
	if err != nil {
		return nil, err
	}
	covered := []string{otid}
	for _, c := range changes {
		if c.After != nil && !containsString(covered, c.After.OriginalTransactionID) {
			covered = append(covered, c.After.OriginalTransactionID)
		}
	}
	for _, id := range covered {
		group := ""
		if s, err := d.Ledger.Subscription(ctx, id); err == nil {
			group = s.SubscriptionGroupIdentifier
		}
		rev, err := d.Ledger.HistoryRevision(ctx, id)
		if err != nil {
			return covered, err
		}
		h, err := d.syncHistory(ctx, id, env, group, rev, nil)
		res.HistoryPages += h.Pages
		if err != nil {
			return covered, err
		}
	}
	seen, stored, err := d.customerNotificationHistory(ctx, client, env, otid)
	res.NotificationsSeen += seen
	res.NotificationsStored += stored
	return covered, err
}

// customerNotificationHistory pages the notification history of one
// customer (transactionId filter) over Apple's whole look-back, storing the
// notifications the ledger misses and enqueueing their processing.
func (d *Deps) customerNotificationHistory(ctx context.Context, client *river.Client[pgx.Tx], env appstore.Environment, otid string) (seen, stored int, err error) {
	apple, err := d.Apple.InEnvironment(env)
	if err != nil {
		return 0, 0, err
	}
	now := d.now()
	req := appstore.NotificationHistoryRequest{
		StartDate:     appstore.MillisOf(now.Add(-notificationLookback(env))),
		EndDate:       appstore.MillisOf(now),
		TransactionID: otid,
	}
	token := ""
	for restarted := false; ; {
		page, err := retryTransient(ctx, d, func(ctx context.Context) (*appstore.NotificationHistoryResponse, error) {
			p, err := apple.GetNotificationHistory(ctx, req, token)
			d.Metrics.appleCall(appstore.EndpointNotificationHistory, err)
			return p, err
		})
		if isPaginationExpired(err) && token != "" && !restarted {
			token, restarted = "", true
			continue
		}
		if err != nil {
			return seen, stored, err
		}
		err = pgx.BeginFunc(ctx, d.Ledger.Pool(), func(tx pgx.Tx) error {
			s, n, err := d.storeHistoryItems(ctx, tx, client, env, page.NotificationHistory, ledger.SourceResync, PriorityLive)
			seen, stored = seen+s, stored+n
			return err
		})
		if err != nil {
			return seen, stored, err
		}
		if !page.HasMore {
			return seen, stored, nil
		}
		if page.PaginationToken == "" || page.PaginationToken == token {
			return seen, stored, fmt.Errorf("notification history of %s: Apple said hasMore without a new paginationToken", otid)
		}
		token = page.PaginationToken
	}
}

// fieldChanges lists the show fields (and auto-renew product) that differ
// between before (nil: not in the ledger) and after.
func fieldChanges(before, after *ledger.Subscription) []FieldChange {
	b, a := showFields(before), showFields(after)
	keys := make([]string, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var out []FieldChange
	for _, k := range keys {
		if b[k] != a[k] {
			out = append(out, FieldChange{OriginalTransactionID: after.OriginalTransactionID, Field: k, Before: b[k], After: a[k]})
		}
	}
	return out
}

// showFields flattens a subscription's show JSON to strings, without the
// bookkeeping lastSignedDate and the id itself.
func showFields(s *ledger.Subscription) map[string]string {
	out := map[string]string{}
	if s == nil {
		return out
	}
	raw, _ := json.Marshal(s)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	for k, v := range m {
		if k == "lastSignedDate" || k == "originalTransactionId" {
			continue
		}
		out[k] = fmt.Sprint(v)
	}
	if s.AutoRenewProductID != "" {
		out["autoRenewProductId"] = s.AutoRenewProductID
	}
	return out
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// ResyncStatus is a re-sync job as `storesync resync --wait` and the admin
// API show it.
type ResyncStatus struct {
	JobID int64 `json:"jobId"`
	// State is River's: available, scheduled, running, retryable,
	// completed, cancelled, discarded.
	State     string        `json:"state"`
	Attempt   int           `json:"attempt"`
	Duplicate bool          `json:"duplicate,omitempty"` // an identical re-sync was already pending
	Target    ResyncTarget  `json:"target"`
	Result    *ResyncResult `json:"result,omitempty"`
	// Errors are the errors of failed attempts, oldest first.
	Errors []string `json:"errors,omitempty"`
}

// Finished reports whether the job reached a final state.
func (s *ResyncStatus) Finished() bool {
	switch rivertype.JobState(s.State) {
	case rivertype.JobStateCompleted, rivertype.JobStateCancelled, rivertype.JobStateDiscarded:
		return true
	}
	return false
}

// ErrNotResync is returned for a job id that is not a re-sync job.
var ErrNotResync = errors.New("jobs: no re-sync job with that id")

// EnqueueResync inserts a re-sync of target, or finds the identical one
// already pending, and returns its status.
func EnqueueResync(ctx context.Context, client *river.Client[pgx.Tx], target ResyncTarget) (*ResyncStatus, error) {
	if err := target.Validate(); err != nil {
		return nil, err
	}
	r, err := client.Insert(ctx, ResyncArgs{ResyncTarget: target}, nil)
	if err != nil {
		return nil, err
	}
	st := resyncStatus(r.Job)
	st.Duplicate = r.UniqueSkippedAsDuplicate
	return st, nil
}

// ResyncStatusOf reads a re-sync job's status (ErrNotResync when the id is
// not one).
func ResyncStatusOf(ctx context.Context, client *river.Client[pgx.Tx], jobID int64) (*ResyncStatus, error) {
	job, err := client.JobGet(ctx, jobID)
	if errors.Is(err, rivertype.ErrNotFound) {
		return nil, ErrNotResync
	}
	if err != nil {
		return nil, err
	}
	if job.Kind != (ResyncArgs{}).Kind() {
		return nil, ErrNotResync
	}
	return resyncStatus(job), nil
}

// WaitResync polls a re-sync job every poll until it is finished or ctx
// ends; it returns the last status read, with ctx's error if unfinished.
func WaitResync(ctx context.Context, client *river.Client[pgx.Tx], jobID int64, poll time.Duration) (*ResyncStatus, error) {
	var last *ResyncStatus
	for {
		st, err := ResyncStatusOf(ctx, client, jobID)
		if err != nil {
			return last, err
		}
		last = st
		if st.Finished() {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(poll):
		}
	}
}

func resyncStatus(job *rivertype.JobRow) *ResyncStatus {
	st := &ResyncStatus{JobID: job.ID, State: string(job.State), Attempt: job.Attempt}
	var args ResyncArgs
	if json.Unmarshal(job.EncodedArgs, &args) == nil {
		st.Target = args.ResyncTarget
	}
	if out := job.Output(); len(out) > 0 {
		var r ResyncResult
		if json.Unmarshal(out, &r) == nil {
			st.Result = &r
		}
	}
	for _, e := range job.Errors {
		st.Errors = append(st.Errors, e.Error)
	}
	return st
}
