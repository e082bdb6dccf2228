package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/robfig/cron/v3"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/ledger"
)

// Reconciliation finds and repairs drift between the ledger and Apple.
//
// A run is one River job (ReconcileArgs) keyed by its run key, whose state
// lives in reconcile_runs. Work proceeds in phases, in this order, within
// the run's call cap:
//
//  1. sweep: backfill jobs (BackfillArgs, one per environment and day) page
//     Apple's notification history from the previous run's start; every
//     notification they store that the ledger lacked becomes
//     missing_notification drift.
//  2. targeted: statuses checks of subscriptions due to change or uncertain
//     (ledger.TargetedReasons).
//  3. rolling: every other subscription, least recently checked first
//     (never checked before all), until the walk reaches the subscriptions
//     this run already checked or the call cap binds.
//
// A run thus checks everything it can afford every night: drift Apple never
// told us about (a silent refund, a renewal) is found by the next run, not
// within a full cycle. The full cycle (STORESYNC_RECONCILE_FULL_CYCLE) is
// the promise kept when the cap binds: since each run starts with the least
// recently checked, no subscription goes unchecked longer than the cycle as
// long as the cap covers a 1/cycle slice a night (ReconcileRun.RollingQuota;
// status warns when it cannot). A run the cap stopped says so in its summary
// (ReconcileRun.CapBound) and the next one starts where it stopped.
//
// A check is one Get All Subscription Statuses call. Every difference
// between the ledger's view and Apple's is recorded as drift before the
// answer is applied, in the same database transaction, then marked repaired
// once the ledger agrees. A latest transaction the ledger lacked also pages
// the transaction history since the stored revision (missing_transaction).
// One answer covers every subscription of the account: all are marked
// checked and none is asked about again in the run.
//
// Long runs and River's JobTimeout: the job works for one slice
// (ReconcileSettings.SliceDuration, well inside the timeout), saving its
// phase and cursor in reconcile_runs after every batch of checks, and then
// snoozes (which costs no attempt) to continue in the next slice, on any
// process. A check is one transaction that also marks the subscription
// checked and counts it, so a slice cut short repeats no work: the
// selection skips what this run already checked. We chose one
// self-continuing job over fanned-out batch jobs because the run's order
// (sweep, targeted, rolling) and its call cap need one place that decides
// what comes next; concurrency comes from the checks run in parallel
// inside each slice.

// Defaults of ReconcileSettings.
const (
	DefaultReconcileFullCycle   = 7 * 24 * time.Hour
	DefaultReconcileShare       = 0.25
	DefaultReconcileConcurrency = 8
	DefaultReconcileBatch       = 32
	DefaultReconcileSlice       = 30 * time.Second
	// reconcileMaxSweep is Apple's notification-history look-back.
	reconcileMaxSweep = 180 * 24 * time.Hour
	// reconcileSweepPoll is how often a run waiting for its sweep looks;
	// after reconcileSweepMaxWait it goes on without the unfinished windows
	// (Apple down for an hour should not hold the whole night's checks).
	reconcileSweepPoll    = 2 * time.Second
	reconcileSweepMaxWait = time.Hour
	// reconcileSliceGap is the snooze between slices: just long enough to
	// let other maintenance jobs in.
	reconcileSliceGap = 100 * time.Millisecond
)

// ReconcileSettings tunes reconciliation. Zero fields take the defaults.
type ReconcileSettings struct {
	// CallCap is the most calls to Apple one run may make
	// (STORESYNC_RECONCILE_BUDGET, reported with the calls used). Zero
	// means DefaultReconcileShare of a day's statuses budget at Apple's
	// default limit for the client's environment; set it from the
	// configuration so the rate share and overrides count (ReconcileCallCap).
	CallCap int64
	// FullCycle is the longest a subscription goes unchecked when the call
	// cap binds (STORESYNC_RECONCILE_FULL_CYCLE): a run that can afford it
	// checks every subscription whatever the cycle, and one that cannot
	// checks the least recently checked first. Default 7 days.
	FullCycle time.Duration
	// RecentWindow: subscriptions refunded, and conflicts found, within it
	// are checked by every run (a refund may be reversed). Default 7 days.
	RecentWindow time.Duration
	// FirstSweep is how far back the very first run sweeps notification
	// history (later runs start at the previous run). Default 24h.
	FirstSweep time.Duration
	// Concurrency is how many checks are in flight at once. Default 8.
	Concurrency int
	// BatchSize is how many subscriptions are chosen at a time; progress is
	// saved after each batch. Default 32.
	BatchSize int
	// SliceDuration is how long one job run works before it snoozes and
	// continues; it is cut further to end 15s before the job's timeout.
	// Default 40s.
	SliceDuration time.Duration
}

func (d *Deps) reconcileSettings() ReconcileSettings {
	s := d.Settings.Reconcile
	if s.FullCycle <= 0 {
		s.FullCycle = DefaultReconcileFullCycle
	}
	if s.RecentWindow <= 0 {
		s.RecentWindow = 7 * 24 * time.Hour
	}
	if s.FirstSweep <= 0 {
		s.FirstSweep = 24 * time.Hour
	}
	if s.Concurrency <= 0 {
		s.Concurrency = DefaultReconcileConcurrency
	}
	if s.BatchSize <= 0 {
		s.BatchSize = DefaultReconcileBatch
	}
	if s.SliceDuration <= 0 {
		s.SliceDuration = DefaultReconcileSlice
	}
	if s.CallCap <= 0 {
		env := appstore.Production
		if d.Apple != nil {
			env = d.Apple.Environment()
		}
		s.CallCap = ReconcileCallCap(appstore.DefaultRateLimit(appstore.EndpointStatuses, env), DefaultReconcileShare, 0)
	}
	return s
}

// ReconcileCallCap is a run's call cap: calls when positive, else share of
// a day's statuses budget at statusesPerSecond (86400 × limit × share).
func ReconcileCallCap(statusesPerSecond, share float64, calls int64) int64 {
	if calls > 0 {
		return calls
	}
	return int64(86400 * statusesPerSecond * share)
}

// ReconcileArgs runs one reconciliation. RunKey names the run: the nightly
// schedule uses "nightly <tick>" (NightlyRunKey), `storesync reconcile`
// "manual <minute>" (ManualRunKey). Jobs are unique by RunKey for a day,
// and a run key that already ran is not run again (reconcile_runs), so a
// deploy or a leader change never doubles or skips a night.
type ReconcileArgs struct {
	RunKey string `json:"run_key" river:"unique"`
	// CallCap and FullCycle override the worker's ReconcileSettings when
	// set, so `storesync reconcile` runs with its own configuration.
	CallCap   int64         `json:"call_cap,omitempty"`
	FullCycle time.Duration `json:"full_cycle,omitempty"`
}

// Kind is the River job kind.
func (ReconcileArgs) Kind() string { return "reconcile" }

// InsertOpts: the maintenance queue; unique by run key within a day.
func (ReconcileArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue: QueueMaintenance, Priority: PriorityMaintenance,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByPeriod: 24 * time.Hour},
	}
}

// NightlyRunKey names the scheduled run due at now: the latest tick of
// sched at or before now (UTC), looking back at most 8 days. A process
// started before tonight's tick (RunOnStart) thus names last night's run,
// which already ran, rather than stealing tonight's.
func NightlyRunKey(sched river.PeriodicSchedule, now time.Time) string {
	now = now.UTC()
	var last time.Time
	for t := sched.Next(now.Add(-8 * 24 * time.Hour)); !t.After(now) && !t.IsZero(); t = sched.Next(t) {
		last = t
	}
	if last.IsZero() {
		last = now.Truncate(24 * time.Hour)
	}
	return "nightly " + last.UTC().Format(time.RFC3339)
}

// ManualRunKey names a run asked for at now: one per minute, so pressing
// twice runs once.
func ManualRunKey(now time.Time) string {
	return "manual " + now.UTC().Truncate(time.Minute).Format(time.RFC3339)
}

// reconcilePeriodic is the nightly run on spec (UTC), or nil without one.
func reconcilePeriodic(spec string) (*river.PeriodicJob, error) {
	if spec == "" {
		return nil, nil
	}
	sched, err := parseUTCSchedule(spec)
	if err != nil {
		return nil, fmt.Errorf("jobs: ClientOptions.ReconcileCron %q does not parse (%v): use a 5-field cron spec such as \"0 3 * * *\"", spec, err)
	}
	return river.NewPeriodicJob(sched, func() (river.JobArgs, *river.InsertOpts) {
		// River's scheduler runs on the wall clock, so the key does too.
		return ReconcileArgs{RunKey: NightlyRunKey(sched, time.Now())}, nil
	}, &river.PeriodicJobOpts{ID: "reconcile", RunOnStart: true}), nil
}

// parseUTCSchedule parses a standard 5-field cron spec evaluated in UTC.
func parseUTCSchedule(spec string) (river.PeriodicSchedule, error) {
	parsed, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, err
	}
	return utcSchedule{parsed}, nil
}

type reconcileWorker struct {
	river.WorkerDefaults[ReconcileArgs]
	d *Deps
}

// errSliceOver ends a slice: the run continues in the next job run.
var errSliceOver = errors.New("reconcile: slice over")

func (w *reconcileWorker) Work(ctx context.Context, job *river.Job[ReconcileArgs]) error {
	d := w.d
	run, err := d.reconcileSlice(ctx, job)
	attrs := []slog.Attr{slog.String("run_key", job.Args.RunKey)}
	if run != nil {
		attrs = append(attrs, slog.Int64("run_id", run.ID), slog.String("phase", run.Phase),
			slog.Int64("checked", run.CheckedTotal()), slog.Int64("drifted_subscriptions", run.DriftedSubscriptions),
			slog.Int64("calls_used", run.CallsUsed), slog.Int64("call_cap", run.CallCap))
	}
	return d.jobDone(ctx, job.JobRow, err, attrs...)
}

// reconcileSlice works one slice of the run and returns the job's outcome.
func (d *Deps) reconcileSlice(ctx context.Context, job *river.Job[ReconcileArgs]) (*ledger.ReconcileRun, error) {
	if job.Args.RunKey == "" {
		return nil, river.JobCancel(errors.New("reconcile: RunKey is empty"))
	}
	if d.Apple == nil {
		return nil, river.JobCancel(errors.New("reconcile: no App Store client configured"))
	}
	s := d.reconcileSettings()
	if job.Args.CallCap > 0 {
		s.CallCap = job.Args.CallCap
	}
	if job.Args.FullCycle > 0 {
		s.FullCycle = job.Args.FullCycle
	}
	run, _, err := d.Ledger.StartReconcileRun(ctx, ledger.NewReconcileRun{
		Key: job.Args.RunKey, AsOf: d.now(), CallCap: s.CallCap, FullCycle: s.FullCycle,
		FirstSweep: s.FirstSweep, MaxSweep: reconcileMaxSweep,
	})
	if err != nil {
		return nil, err
	}
	if run.FinishedAt != nil {
		return run, nil
	}
	deadline := time.Now().Add(s.SliceDuration)
	if dl, ok := ctx.Deadline(); ok && dl.Add(-15*time.Second).Before(deadline) {
		deadline = dl.Add(-15 * time.Second)
	}
	// Checks in flight when the slice ends may finish until hard; the job's
	// own timeout comes 5s later.
	hard := deadline.Add(30 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Add(-5*time.Second).Before(hard) {
		hard = dl.Add(-5 * time.Second)
	}
	r := &reconciler{d: d, s: s, run: run, deadline: deadline, hard: hard, covered: map[string]bool{}}
	err = r.work(ctx)
	if latest, lerr := d.Ledger.ReconcileRunByID(context.WithoutCancel(ctx), run.ID); lerr == nil {
		run = latest
	}
	switch {
	case err == nil:
		d.reconcileFinished(ctx, run)
		return run, nil
	case errors.Is(err, errSliceOver):
		return run, river.JobSnooze(r.snooze)
	}
	// Retry-After is a wall-clock time, whatever clock Apple's data runs on.
	out := appleOutcome(err)
	var snooze *rivertype.JobSnoozeError
	if !errors.As(out, &snooze) && (isJobCancel(out) || job.Attempt >= job.MaxAttempts) {
		// The run ends here: record why, so status shows it.
		_ = d.Ledger.FinishReconcileRun(context.WithoutCancel(ctx), run.ID, "failed", err.Error())
	}
	return run, out
}

func (d *Deps) reconcileFinished(ctx context.Context, run *ledger.ReconcileRun) {
	if d.Metrics != nil {
		for class, n := range run.Drifted {
			d.Metrics.DriftFound.WithLabelValues(class).Add(float64(n))
		}
	}
	d.logger().LogAttrs(ctx, slog.LevelInfo, "reconcile: run finished", slog.String("run_key", run.Key),
		slog.Int64("checked", run.CheckedTotal()), slog.Int64("drifted_subscriptions", run.DriftedSubscriptions),
		slog.Int64("repaired", run.Repaired), slog.Int64("calls_used", run.CallsUsed), slog.Int64("call_cap", run.CallCap),
		slog.String("stopped", run.StoppedReason))
}

// reconciler works one slice of one run.
type reconciler struct {
	d        *Deps
	s        ReconcileSettings
	run      *ledger.ReconcileRun
	deadline time.Time // no new step after it
	hard     time.Time // checks still in flight are abandoned at it
	snooze   time.Duration

	mu      sync.Mutex
	covered map[string]bool // subscriptions an answer of this slice covered
	calls   int64           // calls made in this slice, not yet in run.CallsUsed
}

func (r *reconciler) window() ledger.SelectWindow {
	return ledger.SelectWindow{
		AsOf: r.run.AsOf, RunStart: r.run.StartedAt,
		RefundsSince: r.run.AsOf.Add(-r.s.RecentWindow), ConflictsSince: r.run.StartedAt.Add(-r.s.RecentWindow),
	}
}

// work advances the run until it is done (nil), the slice is over
// (errSliceOver) or an error stops it. Every slice makes progress: the
// deadline is looked at after each step.
func (r *reconciler) work(ctx context.Context) error {
	d := r.d
	for {
		if r.run.Phase == ledger.PhaseDone {
			return nil
		}
		var err error
		switch {
		case r.run.Phase != ledger.PhaseSweep && r.run.CallsUsed >= r.run.CallCap:
			err = r.finish(ctx, ledger.StoppedCallCap)
		case r.run.Phase == ledger.PhaseSweep:
			err = r.sweep(ctx)
		case r.run.Phase == ledger.PhaseTargeted:
			err = r.targeted(ctx)
		case r.run.Phase == ledger.PhaseRolling:
			err = r.rolling(ctx)
		default:
			err = fmt.Errorf("reconcile: run %d has unknown phase %q", r.run.ID, r.run.Phase)
		}
		if err != nil {
			return err
		}
		run, err := d.Ledger.ReconcileRunByID(ctx, r.run.ID)
		if err != nil {
			return err
		}
		r.run = run
		r.mu.Lock()
		r.calls = 0
		r.mu.Unlock()
		if run.Phase != ledger.PhaseDone && time.Now().After(r.deadline) {
			r.snooze = reconcileSliceGap
			return errSliceOver
		}
	}
}

func (r *reconciler) finish(ctx context.Context, stopped string) error {
	if err := r.d.Ledger.FinishReconcileRun(ctx, r.run.ID, stopped, ""); err != nil {
		return err
	}
	r.run.Phase = ledger.PhaseDone
	return nil
}

// sweep enqueues the backfill of the sweep's window (once), waits for it,
// then records what it found.
func (r *reconciler) sweep(ctx context.Context) error {
	d := r.d
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return ErrNoRiverClient
	}
	if len(r.run.SweepJobs) == 0 {
		req := BackfillRequest{Environments: d.SweptEnvironments(), Until: r.run.AsOf, Now: d.now()}
		if r.run.SweepSince != nil {
			req.Since = *r.run.SweepSince
		}
		windows, _, werr := req.Windows()
		if werr != nil || len(windows) == 0 {
			// Nothing Apple still keeps lies in the window.
			return r.closeSweep(ctx)
		}
		params := make([]river.InsertManyParams, len(windows))
		for i, w := range windows {
			params[i] = river.InsertManyParams{Args: w}
		}
		return pgx.BeginFunc(ctx, d.Ledger.Pool(), func(tx pgx.Tx) error {
			res, err := client.InsertManyTx(ctx, tx, params)
			if err != nil {
				return fmt.Errorf("reconcile: enqueueing the notification sweep: %w", err)
			}
			ids := make([]int64, len(res))
			for i, j := range res {
				ids[i] = j.Job.ID
			}
			return d.Ledger.WithTx(tx).SetReconcileSweepJobs(ctx, r.run.ID, ids)
		})
	}
	for _, id := range r.run.SweepJobs {
		job, err := client.JobGet(ctx, id)
		if err != nil {
			if errors.Is(err, river.ErrNotFound) {
				continue // cleaned up long after it finished
			}
			return err
		}
		switch job.State {
		case rivertype.JobStateCompleted, rivertype.JobStateCancelled, rivertype.JobStateDiscarded:
		default:
			if time.Since(r.run.StartedAt) > reconcileSweepMaxWait {
				d.logger().Warn("reconcile: going on without an unfinished sweep window",
					"run_key", r.run.Key, "backfill_job", id, "state", string(job.State))
				continue
			}
			r.snooze = reconcileSweepPoll
			return errSliceOver
		}
	}
	return r.closeSweep(ctx)
}

func (r *reconciler) closeSweep(ctx context.Context) error {
	return pgx.BeginFunc(ctx, r.d.Ledger.Pool(), func(tx pgx.Tx) error {
		_, err := r.d.Ledger.WithTx(tx).FinishReconcileSweep(ctx, r.run)
		return err
	})
}

func (r *reconciler) targeted(ctx context.Context) error {
	d := r.d
	cands, next, done, err := d.Ledger.SelectTargeted(ctx, r.window(), r.run.Cursor, r.s.BatchSize)
	if err != nil {
		return err
	}
	capped, err := r.checkAll(ctx, cands)
	if err != nil {
		return err
	}
	if capped {
		return r.finish(ctx, ledger.StoppedCallCap)
	}
	phase := ledger.PhaseTargeted
	if done {
		phase, next = ledger.PhaseRolling, ledger.SelectCursor{}
	}
	return d.Ledger.SetReconcileProgress(ctx, r.run.ID, phase, next)
}

func (r *reconciler) rolling(ctx context.Context) error {
	d := r.d
	// No quota: the walk goes on until it meets this run's own checks or
	// the cap binds (RollingQuota is the least the cap must allow, not the
	// most a run checks).
	cands, next, done, err := d.Ledger.SelectRolling(ctx, r.window(), r.run.Cursor, r.s.BatchSize)
	if err != nil {
		return err
	}
	capped, err := r.checkAll(ctx, cands)
	if err != nil {
		return err
	}
	if capped {
		return r.finish(ctx, ledger.StoppedCallCap)
	}
	if done {
		return r.finish(ctx, "")
	}
	return d.Ledger.SetReconcileProgress(ctx, r.run.ID, ledger.PhaseRolling, next)
}

// checkAll checks cands with bounded concurrency. Candidates of one
// account (as far as the ledger knows) are checked one after the other, so
// the first answer covers the others instead of racing them to Apple.
// capped reports that the call cap stopped it before every candidate was
// checked. The first error stops it.
func (r *reconciler) checkAll(parent context.Context, cands []ledger.CheckCandidate) (capped bool, err error) {
	ctx, cancel := context.WithDeadline(parent, r.hard)
	defer cancel()
	defer func() {
		// Cut short by the slice's end (Apple slow, the budget busy): what
		// was checked is saved; the rest comes in the next slice.
		if err != nil && parent.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			r.snooze = reconcileSliceGap
			err = errSliceOver
		}
	}()
	var groups [][]ledger.CheckCandidate
	index := map[string]int{}
	for _, c := range cands {
		if i, ok := index[c.Account]; ok && c.Account != "" {
			groups[i] = append(groups[i], c)
			continue
		}
		index[c.Account] = len(groups)
		groups = append(groups, []ledger.CheckCandidate{c})
	}
	sem := make(chan struct{}, r.s.Concurrency)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	var cappedFlag atomic.Bool
	var stopped atomic.Bool
	for _, g := range groups {
		if ctx.Err() != nil || cappedFlag.Load() || stopped.Load() {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(g []ledger.CheckCandidate) {
			defer func() { <-sem; wg.Done() }()
			for _, c := range g {
				if ctx.Err() != nil || stopped.Load() {
					return
				}
				if r.isCovered(c.OriginalTransactionID) {
					continue
				}
				// Reserve one call: a check makes at least one.
				if !r.reserve() {
					cappedFlag.Store(true)
					return
				}
				if err := r.check(ctx, c); err != nil {
					// Checks in flight finish (their calls are made and
					// must be counted); nothing new starts.
					once.Do(func() { first = err; stopped.Store(true) })
					return
				}
			}
		}(g)
	}
	wg.Wait()
	return cappedFlag.Load(), first
}

func (r *reconciler) reserve() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.run.CallsUsed+r.calls >= r.run.CallCap {
		return false
	}
	r.calls++
	return true
}

// spent adds calls beyond the one reserved.
func (r *reconciler) spent(extra int64) {
	r.mu.Lock()
	r.calls += extra
	r.mu.Unlock()
}

func (r *reconciler) isCovered(otid string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.covered[otid]
}

func (r *reconciler) cover(ids []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		r.covered[id] = true
	}
}

// appleView is Apple's statement about one subscription in a statuses
// answer.
type appleView struct {
	status int
	tx     *appstore.TransactionPayload
	ri     *appstore.RenewalInfoPayload // nil when Apple sent none
}

// check makes one statuses call for c and records, repairs and counts what
// it found.
func (r *reconciler) check(ctx context.Context, c ledger.CheckCandidate) error {
	d := r.d
	client := d.Apple
	if env := appstore.Environment(c.Environment); env.HasServer() && env != d.Apple.Environment() {
		if other, err := d.Apple.InEnvironment(env); err == nil {
			client = other
		}
	}
	var calls int64
	type answer struct {
		resp *appstore.StatusResponse
		env  appstore.Environment
	}
	a, err := retryTransient(ctx, d, func(ctx context.Context) (answer, error) {
		resp, env, err := client.GetAllSubscriptionStatuses(appstore.WithPriority(ctx, appstore.PriorityBulk), c.OriginalTransactionID)
		if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			calls++ // a request Apple saw (one cut short by our deadline mostly was not)
		}
		d.Metrics.appleCall(appstore.EndpointStatuses, err)
		return answer{resp, env}, err
	})
	r.spent(calls - 1) // one was reserved
	var facts ledger.Facts
	if err == nil {
		facts, err = d.statusFacts(a.resp, a.env)
	}
	if err != nil {
		if isPermanentAppleError(err) {
			// Apple cannot answer for it (unknown id, unverifiable answer):
			// checked, and counted as failed; retrying would not help.
			d.logger().Warn("reconcile: check failed", "original_transaction_id", c.OriginalTransactionID, "error", err.Error())
			err := pgx.BeginFunc(ctx, d.Ledger.Pool(), func(tx pgx.Tx) error {
				n, err := d.Ledger.WithTx(tx).MarkChecked(ctx, r.run.StartedAt, []string{c.OriginalTransactionID})
				if err != nil {
					return err
				}
				return d.Ledger.WithTx(tx).CountCheck(ctx, r.run.ID, ledger.CheckOutcome{Reason: c.Reason, Subscriptions: n, Calls: calls, Failed: true})
			})
			if err != nil {
				_ = d.Ledger.AddReconcileCalls(context.WithoutCancel(ctx), r.run.ID, calls)
			}
			return err
		}
		_ = d.Ledger.AddReconcileCalls(context.WithoutCancel(ctx), r.run.ID, calls)
		return err
	}
	views := appleViews(facts)
	ids := []string{c.OriginalTransactionID}
	for otid := range views {
		if otid != c.OriginalTransactionID {
			ids = append(ids, otid)
		}
	}
	slices.Sort(ids)
	r.cover(ids)

	var history []historyWork
	var repairedAny bool
	err = pgx.BeginFunc(ctx, d.Ledger.Pool(), func(tx pgx.Tx) error {
		l := d.Ledger.WithTx(tx)
		history = nil
		before, err := l.LockSubscriptions(ctx, ids)
		if err != nil {
			return err
		}
		latest := make([]string, 0, len(views))
		for _, v := range views {
			latest = append(latest, v.tx.TransactionID)
		}
		known, err := l.KnownTransactions(ctx, latest)
		if err != nil {
			return err
		}
		pending, err := l.PendingHistoryDrift(ctx, ids)
		if err != nil {
			return err
		}
		imported, err := l.ImportedTokens(ctx, ids)
		if err != nil {
			return err
		}
		var findings []ledger.Drift
		for _, otid := range ids {
			v, ok := views[otid]
			if !ok {
				continue
			}
			fs := diffSubscription(before[otid], v, known[v.tx.TransactionID], imported[otid])
			for i := range fs {
				fs[i].OriginalTransactionID = otid
			}
			findings = append(findings, fs...)
		}
		driftIDs, err := l.RecordDrift(ctx, r.run.ID, findings)
		if err != nil {
			return err
		}
		// The company's file and Apple disagree on the customer: kept as a
		// conflict for ops (the run cannot decide who is right), and so
		// re-checked by the runs of the recent window.
		var conflicts []ledger.Conflict
		for _, f := range findings {
			if f.Field == fieldImportedToken {
				conflicts = append(conflicts, ledger.Conflict{OriginalTransactionID: f.OriginalTransactionID,
					Field: fieldAppAccountToken, OurValue: f.LedgerValue, AppleValue: f.AppleValue, Source: "reconcile"})
			}
		}
		if err := l.RecordConflicts(ctx, conflicts); err != nil {
			return err
		}
		changes, err := l.Apply(ctx, facts)
		if err != nil {
			return err
		}
		after := map[string]*ledger.Subscription{}
		for _, ch := range changes {
			after[ch.After.OriginalTransactionID] = ch.After
		}
		var repaired []int64
		repairedSubs := map[string]bool{}
		waiting := map[string][]int64{}
		for i, f := range findings {
			if f.Field == fieldImportedToken {
				continue // nothing the ledger holds can repair it
			}
			if f.Field == fieldTransaction {
				// Repaired once the history before it is paged too.
				waiting[f.OriginalTransactionID] = append(waiting[f.OriginalTransactionID], driftIDs[i])
				continue
			}
			if !stillDiffers(after[f.OriginalTransactionID], views[f.OriginalTransactionID], f.Field) {
				repaired = append(repaired, driftIDs[i])
				repairedSubs[f.OriginalTransactionID] = true
			}
		}
		for otid, pids := range pending {
			if _, ok := views[otid]; ok {
				waiting[otid] = append(waiting[otid], pids...)
			}
		}
		if err := l.MarkDriftRepaired(ctx, repaired); err != nil {
			return err
		}
		repairedAny = len(repairedSubs) > 0
		for _, otid := range ids {
			if w := waiting[otid]; len(w) > 0 {
				rev := ""
				if b := before[otid]; b != nil {
					rev = b.HistoryRevision
				}
				history = append(history, historyWork{otid: otid, env: a.env, group: views[otid].tx.SubscriptionGroupIdentifier,
					revision: rev, driftIDs: w})
			}
		}
		if len(history) > 0 {
			// Checked and counted once the history is paged too, so a job
			// that dies in between checks it again.
			return nil
		}
		n, err := l.MarkChecked(ctx, r.run.StartedAt, ids)
		if err != nil {
			return err
		}
		return l.CountCheck(ctx, r.run.ID, ledger.CheckOutcome{Reason: c.Reason, Subscriptions: n,
			Calls: calls, Repaired: len(repairedSubs) > 0})
	})
	if err != nil {
		// Nothing of the check was stored; its calls still count.
		_ = d.Ledger.AddReconcileCalls(context.WithoutCancel(ctx), r.run.ID, calls)
		return fmt.Errorf("reconcile: checking %s: %w", c.OriginalTransactionID, err)
	}
	if len(history) == 0 {
		return nil
	}
	return r.pageHistory(ctx, c, ids, calls, repairedAny, history)
}

// historyWork is a subscription whose history must be paged because Apple
// showed a transaction the ledger lacked.
type historyWork struct {
	otid, group, revision string
	env                   appstore.Environment
	driftIDs              []int64
}

// pageHistory pages the history of each subscription of work since its
// stored revision, recording every transaction it brings as
// missing_transaction drift, then marks the check done.
func (r *reconciler) pageHistory(ctx context.Context, c ledger.CheckCandidate, ids []string, calls int64, repairedAny bool, work []historyWork) error {
	d := r.d
	var waiting []int64
	for _, w := range work {
		res, err := d.syncHistory(appstore.WithPriority(ctx, appstore.PriorityBulk), w.otid, w.env, w.group, w.revision,
			func(ctx context.Context, tx pgx.Tx, _ string) error {
				_, err := d.Ledger.WithTx(tx).RecordNewTransactionsAsDrift(ctx, r.run.ID, w.otid)
				return err
			})
		calls += int64(res.Pages)
		r.spent(int64(res.Pages))
		if err != nil {
			_ = d.Ledger.AddReconcileCalls(context.WithoutCancel(ctx), r.run.ID, calls)
			if isPermanentAppleError(err) {
				d.logger().Warn("reconcile: paging history failed", "original_transaction_id", w.otid, "error", err.Error())
				calls = 0
				continue
			}
			return fmt.Errorf("reconcile: paging the history of %s: %w", w.otid, err)
		}
		waiting = append(waiting, w.driftIDs...)
	}
	err := pgx.BeginFunc(ctx, d.Ledger.Pool(), func(tx pgx.Tx) error {
		l := d.Ledger.WithTx(tx)
		if err := l.MarkDriftRepaired(ctx, waiting); err != nil {
			return err
		}
		n, err := l.MarkChecked(ctx, r.run.StartedAt, ids)
		if err != nil {
			return err
		}
		return l.CountCheck(ctx, r.run.ID, ledger.CheckOutcome{Reason: c.Reason, Subscriptions: n,
			Calls: calls, Repaired: len(waiting) > 0 || repairedAny})
	})
	if err != nil {
		_ = d.Ledger.AddReconcileCalls(context.WithoutCancel(ctx), r.run.ID, calls)
	}
	return err
}

// appleViews indexes a statuses answer's facts by subscription.
func appleViews(f ledger.Facts) map[string]appleView {
	out := map[string]appleView{}
	for _, t := range f.Transactions {
		v := out[t.Payload.OriginalTransactionID]
		v.tx = t.Payload
		out[t.Payload.OriginalTransactionID] = v
	}
	for _, ri := range f.RenewalInfos {
		if v, ok := out[ri.Payload.OriginalTransactionID]; ok {
			v.ri = ri.Payload
			out[ri.Payload.OriginalTransactionID] = v
		}
	}
	for _, s := range f.Statuses {
		if v, ok := out[s.OriginalTransactionID]; ok {
			v.status = s.Status
			out[s.OriginalTransactionID] = v
		}
	}
	return out
}

// Drift fields.
const (
	fieldTransaction        = "transaction_id" // a transaction the ledger lacks
	fieldStatus             = "status"
	fieldExpiresDate        = "expires_date"
	fieldLatestTransaction  = "latest_transaction_id"
	fieldProduct            = "product_id"
	fieldRevocationDate     = "revocation_date"
	fieldAutoRenewStatus    = "auto_renew_status"
	fieldAutoRenewProductID = "auto_renew_product_id"
	fieldAppAccountToken    = "app_account_token"
	// fieldImportedToken: the appAccountToken the import row carried
	// differs from Apple's. It stays unrepaired: the ledger keeps Apple's
	// token, and which customer is right is for ops (a conflict).
	fieldImportedToken = "imported_app_account_token"
)

// diffSubscription lists every difference between the ledger's view l (nil:
// the ledger holds nothing about it) and Apple's a. txKnown says whether
// the ledger holds Apple's latest transaction. importedToken is the
// appAccountToken the subscription's import row carried ("" when none):
// when Apple states a different one, the company's file and Apple name
// different customers, a customer_conflict even when the ledger's own
// token already follows Apple (it takes Apple's, so comparing with it alone
// would never see the file's claim contradicted). Apple stating no token
// is no conflict: Apple was not told the company's token yet.
func diffSubscription(l *ledger.Subscription, a appleView, txKnown bool, importedToken string) []ledger.Drift {
	var out []ledger.Drift
	add := func(class ledger.DriftClass, field, ours, apple string) {
		out = append(out, ledger.Drift{Class: class, Field: field, LedgerValue: ours, AppleValue: apple})
	}
	if !txKnown {
		add(ledger.DriftMissingTransaction, fieldTransaction, "", a.tx.TransactionID)
	}
	if tok := appleToken(a); tok != "" && importedToken != "" && !strings.EqualFold(importedToken, tok) {
		add(ledger.DriftCustomerConflict, fieldImportedToken, importedToken, tok)
	}
	if l == nil {
		return out
	}
	for _, f := range differingFields(l, a) {
		switch f {
		case fieldStatus:
			add(ledger.DriftClassForStatus(a.status), f, l.Status, ledger.StatusName(a.status))
		case fieldExpiresDate:
			add(ledger.DriftRenewalChanged, f, timeText(l.ExpiresDate), millisText(a.tx.ExpiresDate))
		case fieldLatestTransaction:
			add(ledger.DriftRenewalChanged, f, l.LatestTransactionID, a.tx.TransactionID)
		case fieldProduct:
			add(ledger.DriftRenewalChanged, f, l.ProductID, a.tx.ProductID)
		case fieldRevocationDate:
			class := ledger.DriftRevokedAtApple
			if a.tx.RevocationDate == 0 {
				class = ledger.DriftClassForStatus(a.status) // a refund reversed
			}
			add(class, f, timeText(l.RevocationDate), millisText(a.tx.RevocationDate))
		case fieldAutoRenewStatus:
			add(ledger.DriftAutoRenewChanged, f, boolText(l.AutoRenewStatus), strconv.FormatBool(a.ri.AutoRenewStatus == 1))
		case fieldAutoRenewProductID:
			add(ledger.DriftRenewalChanged, f, l.AutoRenewProductID, a.ri.AutoRenewProductID)
		case fieldAppAccountToken:
			add(ledger.DriftCustomerConflict, f, l.AppAccountToken, appleToken(a))
		}
	}
	return out
}

// differingFields lists the fields on which l and a disagree, in a fixed
// order. Fields Apple's answer does not state are not compared.
func differingFields(l *ledger.Subscription, a appleView) []string {
	var out []string
	if a.status != 0 && l.Status != ledger.StatusName(a.status) {
		out = append(out, fieldStatus)
	}
	if !sameTime(l.ExpiresDate, a.tx.ExpiresDate) {
		out = append(out, fieldExpiresDate)
	}
	if l.LatestTransactionID != a.tx.TransactionID {
		out = append(out, fieldLatestTransaction)
	}
	if l.ProductID != a.tx.ProductID {
		out = append(out, fieldProduct)
	}
	if !sameTime(l.RevocationDate, a.tx.RevocationDate) {
		out = append(out, fieldRevocationDate)
	}
	if a.ri != nil {
		if l.AutoRenewStatus == nil || *l.AutoRenewStatus != (a.ri.AutoRenewStatus == 1) {
			out = append(out, fieldAutoRenewStatus)
		}
		if l.AutoRenewProductID != a.ri.AutoRenewProductID {
			out = append(out, fieldAutoRenewProductID)
		}
	}
	if tok := appleToken(a); tok != "" && !strings.EqualFold(l.AppAccountToken, tok) {
		out = append(out, fieldAppAccountToken)
	}
	return out
}

// stillDiffers reports whether the repaired view l still disagrees with
// Apple on field.
func stillDiffers(l *ledger.Subscription, a appleView, field string) bool {
	if l == nil {
		return true
	}
	return slices.Contains(differingFields(l, a), field)
}

// appleToken is the appAccountToken Apple states: the latest transaction's,
// else the renewal info's (as the ledger's projection takes it).
func appleToken(a appleView) string {
	if a.tx.AppAccountToken != "" {
		return a.tx.AppAccountToken
	}
	if a.ri != nil {
		return a.ri.AppAccountToken
	}
	return ""
}

func sameTime(t *time.Time, m appstore.Millis) bool {
	if t == nil || m == 0 {
		return t == nil && m == 0
	}
	return t.Equal(m.Time())
}

func timeText(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func millisText(m appstore.Millis) string {
	if m == 0 {
		return ""
	}
	return m.Time().UTC().Format(time.RFC3339Nano)
}

func boolText(b *bool) string {
	if b == nil {
		return ""
	}
	return strconv.FormatBool(*b)
}
