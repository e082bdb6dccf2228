package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Reconciliation run phases, in order.
const (
	PhaseSweep    = "sweep"
	PhaseTargeted = "targeted"
	PhaseRolling  = "rolling"
	PhaseDone     = "done"
)

// ReconcileRun is one reconciliation run: its progress while it runs and
// its summary once finished.
type ReconcileRun struct {
	ID  int64  `json:"id"`
	Key string `json:"key"`
	// StartedAt is on the database clock (what last_checked_at compares
	// with); AsOf is Apple's clock at the start (what expiresDate and
	// notification dates compare with). They differ only under a simulator.
	StartedAt  time.Time    `json:"startedAt"`
	AsOf       time.Time    `json:"asOf"`
	FinishedAt *time.Time   `json:"finishedAt,omitempty"`
	Phase      string       `json:"phase"`
	Cursor     SelectCursor `json:"-"`
	// The notification-history sweep: its window and how many
	// notifications it found that the ledger lacked.
	SweepSince *time.Time `json:"sweepSince,omitempty"`
	SweepUntil *time.Time `json:"sweepUntil,omitempty"`
	SweepNew   int64      `json:"sweepNew"`
	SweepJobs  []int64    `json:"-"`
	// CallCap is the most calls to Apple the run may make; CallsUsed what
	// it made (every attempt, retries included).
	CallCap   int64 `json:"callCap"`
	CallsUsed int64 `json:"callsUsed"`
	// Checked counts subscriptions checked, by the CheckReason of the check
	// that covered them (an answer covers the whole account); Failed counts
	// checks Apple could not answer (unknown id, unverifiable answer).
	Checked map[string]int64 `json:"checked"`
	Failed  int64            `json:"failed"`
	// RollingQuota is the least the rolling phase must check for every
	// subscription to be checked once per full cycle (RollingSliceSize of
	// TotalSubscriptions, the ledger's size at the start). It does not
	// limit the run: a run checks all it can within its cap. A cap below it
	// cannot keep the cycle (CapBelowCycle).
	RollingQuota       int64 `json:"rollingQuota"`
	TotalSubscriptions int64 `json:"totalSubscriptions"`
	// Drifted counts drifted subscriptions by class; DriftedSubscriptions
	// counts distinct subscriptions (one may drift in several classes).
	Drifted              map[string]int64 `json:"drifted"`
	DriftedSubscriptions int64            `json:"driftedSubscriptions"`
	// Repaired counts subscriptions whose drift the run repaired.
	Repaired      int64  `json:"repaired"`
	StoppedReason string `json:"stoppedReason,omitempty"`
	Error         string `json:"error,omitempty"`
}

// CheckedTotal is the number of subscriptions checked, all reasons.
func (r *ReconcileRun) CheckedTotal() int64 {
	var n int64
	for _, v := range r.Checked {
		n += v
	}
	return n
}

// StoppedCallCap is ReconcileRun.StoppedReason of a run its call cap
// stopped before it had checked every subscription.
const StoppedCallCap = "call cap reached"

// CapBound reports that the call cap stopped the run before it had checked
// every subscription: the next run starts with the LeftForNextRun least
// recently checked. A failed run is not cap bound.
func (r *ReconcileRun) CapBound() bool {
	return r.StoppedReason == StoppedCallCap && r.Error == ""
}

// LeftForNextRun is how many subscriptions the run did not check
// (TotalSubscriptions less CheckedTotal, never negative): when the run is
// CapBound, the next run checks them first, least recently checked first.
// Subscriptions added during the run are not counted.
func (r *ReconcileRun) LeftForNextRun() int64 {
	return max(0, r.TotalSubscriptions-r.CheckedTotal())
}

// CapBelowCycle reports that the run's cap cannot keep the full cycle: the
// cap is below RollingQuota, or the cap stopped the run before its rolling
// phase had checked RollingQuota subscriptions (the targeted checks took
// the rest). Some subscriptions then go unchecked longer than
// STORESYNC_RECONCILE_FULL_CYCLE until the cap is raised.
func (r *ReconcileRun) CapBelowCycle() bool {
	if r.CallCap < r.RollingQuota {
		return true
	}
	return r.CapBound() && r.Checked[string(ReasonRolling)] < r.RollingQuota
}

// NewReconcileRun describes a run to start.
type NewReconcileRun struct {
	// Key names the run; starting a key again returns the existing run.
	Key string
	// AsOf is Apple's now (the simulator's clock in tests).
	AsOf    time.Time
	CallCap int64
	// FullCycle sets the rolling quota (RollingSliceSize), the least a
	// night must check for the cycle to hold.
	FullCycle time.Duration
	// FirstSweep is how far back the sweep of the first run ever looks
	// (later runs start at the previous run's AsOf). MaxSweep bounds any
	// sweep (Apple keeps 180 days of notification history).
	FirstSweep time.Duration
	MaxSweep   time.Duration
}

// StartReconcileRun creates the run n.Key, or returns the existing one
// (created false) so a job that runs again continues where it was. A new run
// sweeps notifications from the previous run's AsOf to n.AsOf and takes its
// rolling quota from the ledger's size now. On a pool-backed ledger the run
// is created in a transaction of its own; on a WithTx ledger, in the
// caller's.
func (l *Ledger) StartReconcileRun(ctx context.Context, n NewReconcileRun) (*ReconcileRun, bool, error) {
	if n.Key == "" {
		return nil, false, errors.New("ledger: StartReconcileRun: Key is empty")
	}
	if run, err := l.ReconcileRunByKey(ctx, n.Key); err == nil {
		return run, false, nil
	} else if !errors.Is(err, ErrNotFound) {
		return nil, false, err
	}
	created := false
	err := l.inTx(ctx, func(l *Ledger) error {
		var prev *time.Time
		err := l.db.QueryRow(ctx, `SELECT as_of FROM reconcile_runs WHERE as_of IS NOT NULL AND as_of < $1
			ORDER BY started_at DESC LIMIT 1`, n.AsOf).Scan(&prev)
		if err != nil && !isNoRows(err) {
			return err
		}
		since := n.AsOf.Add(-n.FirstSweep)
		if prev != nil {
			since = *prev
		}
		if n.MaxSweep > 0 && n.AsOf.Sub(since) > n.MaxSweep {
			since = n.AsOf.Add(-n.MaxSweep)
		}
		total, err := l.CountSubscriptions(ctx)
		if err != nil {
			return err
		}
		tag, err := l.db.Exec(ctx, `INSERT INTO reconcile_runs (run_key, as_of, call_cap, sweep_since, sweep_until,
				total_subscriptions, rolling_quota, phase)
			VALUES ($1, $2, $3, $4, $2, $5, $6, $7) ON CONFLICT (run_key) DO NOTHING`,
			n.Key, n.AsOf, n.CallCap, since, total, RollingSliceSize(total, n.FullCycle), PhaseSweep)
		created = tag.RowsAffected() == 1
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("ledger: starting reconciliation run %q: %w", n.Key, err)
	}
	run, err := l.ReconcileRunByKey(ctx, n.Key)
	return run, created, err
}

const reconcileRunSelect = `SELECT r.id, COALESCE(r.run_key, ''), r.started_at, COALESCE(r.as_of, r.started_at),
	r.finished_at, r.phase, r.cursor, r.sweep_since, r.sweep_until, r.sweep_new, r.sweep_jobs, r.call_cap, r.calls_used,
	r.checked, r.failed, r.rolling_quota, r.total_subscriptions, r.repaired, r.stopped_reason,
	COALESCE(r.error, ''),
	(SELECT count(DISTINCT d.original_transaction_id) FROM drift d WHERE d.run_id = r.id),
	(SELECT COALESCE(jsonb_object_agg(class, n), '{}') FROM (
		SELECT d.class, count(DISTINCT d.original_transaction_id) AS n FROM drift d
		WHERE d.run_id = r.id GROUP BY d.class) c)
	FROM reconcile_runs r`

func (l *Ledger) reconcileRunWhere(ctx context.Context, where string, args ...any) (*ReconcileRun, error) {
	var r ReconcileRun
	var cursor, checked, drifted []byte
	err := l.db.QueryRow(ctx, reconcileRunSelect+" "+where, args...).Scan(&r.ID, &r.Key, &r.StartedAt, &r.AsOf,
		&r.FinishedAt, &r.Phase, &cursor, &r.SweepSince, &r.SweepUntil, &r.SweepNew, &r.SweepJobs, &r.CallCap, &r.CallsUsed,
		&checked, &r.Failed, &r.RollingQuota, &r.TotalSubscriptions, &r.Repaired, &r.StoppedReason, &r.Error,
		&r.DriftedSubscriptions, &drifted)
	if isNoRows(err) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: reading reconciliation run: %w", err)
	}
	for _, j := range []struct {
		b []byte
		v any
	}{{cursor, &r.Cursor}, {checked, &r.Checked}, {drifted, &r.Drifted}} {
		if err := json.Unmarshal(j.b, j.v); err != nil {
			return nil, fmt.Errorf("ledger: reading reconciliation run %d: %w", r.ID, err)
		}
	}
	for _, tp := range []*time.Time{&r.StartedAt, &r.AsOf} {
		*tp = tp.UTC()
	}
	return &r, nil
}

// ReconcileRunByKey returns the run named key, or ErrNotFound.
func (l *Ledger) ReconcileRunByKey(ctx context.Context, key string) (*ReconcileRun, error) {
	return l.reconcileRunWhere(ctx, "WHERE r.run_key = $1", key)
}

// ReconcileRunByID returns run id, or ErrNotFound.
func (l *Ledger) ReconcileRunByID(ctx context.Context, id int64) (*ReconcileRun, error) {
	return l.reconcileRunWhere(ctx, "WHERE r.id = $1", id)
}

// LatestReconcileRun returns the run started last, or ErrNotFound.
func (l *Ledger) LatestReconcileRun(ctx context.Context) (*ReconcileRun, error) {
	return l.reconcileRunWhere(ctx, "ORDER BY r.started_at DESC, r.id DESC LIMIT 1")
}

// ReconcileRuns returns the latest limit runs, newest first.
func (l *Ledger) ReconcileRuns(ctx context.Context, limit int) ([]*ReconcileRun, error) {
	rows, err := l.db.Query(ctx, `SELECT id FROM reconcile_runs ORDER BY started_at DESC, id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, err
	}
	out := make([]*ReconcileRun, 0, len(ids))
	for _, id := range ids {
		r, err := l.ReconcileRunByID(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// SetReconcileProgress moves run runID to phase at cursor.
func (l *Ledger) SetReconcileProgress(ctx context.Context, runID int64, phase string, cursor SelectCursor) error {
	b, err := json.Marshal(cursor)
	if err != nil {
		return err
	}
	_, err = l.db.Exec(ctx, `UPDATE reconcile_runs SET phase = $2, cursor = $3 WHERE id = $1 AND finished_at IS NULL`, runID, phase, b)
	return err
}

// SetReconcileSweepJobs records the backfill jobs that page the sweep's
// window, in the transaction that inserted them.
func (l *Ledger) SetReconcileSweepJobs(ctx context.Context, runID int64, jobIDs []int64) error {
	if jobIDs == nil {
		jobIDs = []int64{}
	}
	_, err := l.db.Exec(ctx, `UPDATE reconcile_runs SET sweep_jobs = $2 WHERE id = $1`, runID, jobIDs)
	return err
}

// FinishReconcileSweep closes the notification-history sweep of run r once
// its backfill jobs are done: every notification the backfill stored since
// the run started whose signedDate lies in the sweep's window is recorded
// as missing_notification drift of its subscription (repaired once
// processed), the backfill's pages count as calls, and the run moves on to
// the targeted checks. It returns how many notifications were missing.
//
// It must run in the caller's transaction (call it on Ledger.WithTx), the one
// that also moves the run on, so the findings and the phase commit together;
// on a pool-backed ledger it returns an error wrapping ErrNotInTransaction.
func (l *Ledger) FinishReconcileSweep(ctx context.Context, r *ReconcileRun) (int64, error) {
	if err := l.requireTx("FinishReconcileSweep"); err != nil {
		return 0, err
	}
	since, until := r.AsOf, r.AsOf
	if r.SweepSince != nil {
		since = *r.SweepSince
	}
	if r.SweepUntil != nil {
		until = *r.SweepUntil
	}
	tag, err := l.db.Exec(ctx, `INSERT INTO drift (run_id, original_transaction_id, class, field, ledger_value, apple_value, repaired_at)
		SELECT $1, n.original_transaction_id, $2, 'notification', '',
			n.notification_type || CASE WHEN n.subtype <> '' THEN '/' || n.subtype ELSE '' END || ' ' || n.notification_uuid,
			n.processed_at
		FROM notifications n
		WHERE n.source = 'backfill' AND n.received_at >= $3 AND n.original_transaction_id IS NOT NULL
		  AND n.signed_date >= $4 AND n.signed_date < $5
		ORDER BY n.signed_date, n.notification_uuid`,
		r.ID, string(DriftMissingNotification), r.StartedAt, since.UnixMilli(), until.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("ledger: recording missing notifications: %w", err)
	}
	found := tag.RowsAffected()
	_, err = l.db.Exec(ctx, `UPDATE reconcile_runs SET sweep_new = $2, phase = $3, cursor = '{}',
			calls_used = calls_used + (SELECT COALESCE(sum(w.pages), 0) FROM backfill_windows w
				WHERE w.started_at >= $4 AND w.start_date < $6 AND w.end_date > $5)
		WHERE id = $1`, r.ID, found, PhaseTargeted, r.StartedAt, since, until)
	if err != nil {
		return 0, fmt.Errorf("ledger: closing the sweep: %w", err)
	}
	return found, nil
}

// AddReconcileCalls adds calls to Apple that no check accounted for (a
// call answered with 429 or a transient error the job gives up on).
func (l *Ledger) AddReconcileCalls(ctx context.Context, runID, calls int64) error {
	if calls == 0 {
		return nil
	}
	_, err := l.db.Exec(ctx, `UPDATE reconcile_runs SET calls_used = calls_used + $2 WHERE id = $1`, runID, calls)
	return err
}

// CheckOutcome is what one check adds to a run's counters.
type CheckOutcome struct {
	Reason CheckReason
	// Subscriptions is how many subscriptions the check covered that no
	// earlier check of the run had (one statuses answer covers the whole
	// account): MarkChecked's count.
	Subscriptions int64
	Calls         int64
	Failed        bool // Apple could not answer for the subscription
	Repaired      bool // drift was found and repaired
}

// CountCheck adds one check to run runID. Call it in the transaction that
// marks the subscription checked, so the counters are exact across crashes.
func (l *Ledger) CountCheck(ctx context.Context, runID int64, o CheckOutcome) error {
	failed, repaired := 0, 0
	if o.Failed {
		failed = 1
	}
	if o.Repaired {
		repaired = 1
	}
	_, err := l.db.Exec(ctx, `UPDATE reconcile_runs SET
			checked = jsonb_set(checked, ARRAY[$2::text], to_jsonb(COALESCE((checked->>$2::text)::bigint, 0) + $6)),
			calls_used = calls_used + $3, failed = failed + $4, repaired = repaired + $5
		WHERE id = $1`, runID, string(o.Reason), o.Calls, failed, repaired, o.Subscriptions)
	return err
}

// FinishReconcileRun ends run runID: phase done, finished now, the drift
// counts by class kept with it, and why it stopped early ("" when it did
// all it set out to do) or the error that ended it.
func (l *Ledger) FinishReconcileRun(ctx context.Context, runID int64, stoppedReason, errText string) error {
	_, err := l.db.Exec(ctx, `UPDATE reconcile_runs r SET phase = 'done', finished_at = now(),
			stopped_reason = $2, error = NULLIF($3, ''),
			drifted = (SELECT COALESCE(jsonb_object_agg(class, n), '{}') FROM (
				SELECT d.class, count(DISTINCT d.original_transaction_id) AS n FROM drift d
				WHERE d.run_id = r.id GROUP BY d.class) c)
		WHERE id = $1 AND finished_at IS NULL`, runID, stoppedReason, errText)
	return err
}

// MarkChecked records that the subscriptions were checked with Apple now
// (database clock), which moves them to the end of the rolling order and
// out of the rest of the run started at runStart. It returns how many of
// them this run had not checked yet; those it had keep their time.
func (l *Ledger) MarkChecked(ctx context.Context, runStart time.Time, originalTransactionIDs []string) (int64, error) {
	if len(originalTransactionIDs) == 0 {
		return 0, nil
	}
	tag, err := l.db.Exec(ctx, `UPDATE subscriptions SET last_checked_at = now()
		WHERE original_transaction_id = ANY($1) AND (last_checked_at IS NULL OR last_checked_at < $2)`,
		originalTransactionIDs, runStart)
	if err != nil {
		return 0, fmt.Errorf("ledger: marking subscriptions checked: %w", err)
	}
	return tag.RowsAffected(), nil
}
