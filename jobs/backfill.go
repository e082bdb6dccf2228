package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/robfig/cron/v3"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/ledger"
)

// Backfill timing.
const (
	// BackfillOverlap is how far each scheduled sweep reaches back before
	// the previous sweep's end, so a notification Apple lists late is not
	// missed at a window's edge.
	BackfillOverlap = time.Hour
	// BackfillInitialLookback is the first sweep's reach in an environment
	// with no sweep yet: older state came with the import (statuses and
	// history); `storesync backfill` reads further back on demand.
	BackfillInitialLookback = 24 * time.Hour
	// BackfillWindowSize is the span of each window of a manual backfill:
	// Apple restarts a window on an expired token (4000017), so smaller
	// windows lose less.
	BackfillWindowSize = 24 * time.Hour
	// lookbackMargin keeps a window's start this far inside Apple's
	// look-back, so a job that runs a little late is not refused with
	// StartDateTooFarInPast.
	lookbackMargin = time.Hour
	// maxWindowRestarts bounds restarts on expired tokens within one run.
	maxWindowRestarts = 3
	// pageStopMargin is how long before the job's timeout paging stops.
	pageStopMargin = 10 * time.Second
)

// notificationLookback is how far back Get Notification History reaches:
// 180 days in production, 30 in the sandbox (docs/appstore-api.md §2.5).
func notificationLookback(env appstore.Environment) time.Duration {
	if env == appstore.Sandbox {
		return 30 * 24 * time.Hour
	}
	return 180 * 24 * time.Hour
}

// earliestStart is the earliest window start Apple accepts in env at now.
func earliestStart(env appstore.Environment, now time.Time) time.Time {
	return now.Add(-notificationLookback(env) + lookbackMargin).Truncate(time.Millisecond)
}

// BackfillArgs pages Get Notification History for one window of one
// environment, stores the notifications the ledger misses and enqueues
// their processing. A manual window has Start and End; a scheduled sweep
// (Sweep) has only End and starts where the previous sweep ended, minus
// BackfillOverlap. Jobs are unique by their arguments, so a window is
// never paged twice at once and a restarted scheduler does not double one.
type BackfillArgs struct {
	Environment  appstore.Environment `json:"environment"`
	Start        time.Time            `json:"start,omitzero"`
	End          time.Time            `json:"end"`
	OnlyFailures bool                 `json:"only_failures,omitempty"`
	Sweep        bool                 `json:"sweep,omitempty"`
}

// Kind is the River job kind.
func (BackfillArgs) Kind() string { return "backfill" }

// InsertOpts: maintenance queue, unique by arguments in every state but
// cancelled and discarded, so a restarted scheduler never doubles a sweep
// window (EnqueueBackfill lets a finished manual window be read again).
func (BackfillArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, Priority: PriorityBulk, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// SweptEnvironments returns the environments the App Store client reaches:
// its own and, when it falls back from production, the sandbox (whose
// notifications are never retried, so only the sweep recovers them).
func (d *Deps) SweptEnvironments() []appstore.Environment {
	if d.Apple == nil {
		return nil
	}
	envs := []appstore.Environment{d.Apple.Environment()}
	if d.Apple.Environment() == appstore.Production {
		if _, err := d.Apple.InEnvironment(appstore.Sandbox); err == nil {
			envs = append(envs, appstore.Sandbox)
		}
	}
	return envs
}

// backfillSweep is the periodic sweep of env on the cron spec (UTC), or nil
// when the spec is empty or the client does not reach env.
func (d *Deps) backfillSweep(env appstore.Environment, spec string) (*river.PeriodicJob, error) {
	if spec == "" || !containsEnv(d.SweptEnvironments(), env) {
		return nil, nil
	}
	sched, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, fmt.Errorf("jobs: ClientOptions.BackfillCron %q does not parse (%v): use a 5-field cron spec such as \"0 * * * *\"", spec, err)
	}
	return river.NewPeriodicJob(utcSchedule{sched}, func() (river.JobArgs, *river.InsertOpts) {
		// The tick names the window: a restart within the same minute
		// inserts the same arguments, which uniqueness skips.
		return BackfillArgs{Environment: env, End: d.now().UTC().Truncate(time.Minute), Sweep: true}, nil
	}, &river.PeriodicJobOpts{ID: "backfill_sweep_" + strings.ToLower(string(env)), RunOnStart: true}), nil
}

// utcSchedule evaluates a cron schedule in UTC whatever the local zone.
type utcSchedule struct{ cron.Schedule }

func (s utcSchedule) Next(t time.Time) time.Time { return s.Schedule.Next(t.UTC()) }

func containsEnv(list []appstore.Environment, e appstore.Environment) bool {
	for _, v := range list {
		if v == e {
			return true
		}
	}
	return false
}

// backfillCursor is the durable position of a backfill job: its window and
// the paginationToken of the next page, saved in the transaction that
// stored the previous page.
type backfillCursor struct {
	WindowID int64  `json:"window_id"`
	Token    string `json:"token,omitempty"`
}

type backfillWorker struct {
	river.WorkerDefaults[BackfillArgs]
	d *Deps
}

func (w *backfillWorker) Work(ctx context.Context, job *river.Job[BackfillArgs]) error {
	var win *ledger.BackfillWindow
	var err error
	river.ResumableStepCursor(ctx, "pages", nil, func(ctx context.Context, cur backfillCursor) error {
		win, err = w.d.backfill(ctx, job, cur)
		return err
	})
	attrs := []slog.Attr{slog.String("environment", string(job.Args.Environment)), slog.Bool("sweep", job.Args.Sweep)}
	if win != nil {
		attrs = append(attrs, slog.Int64("window_id", win.ID), slog.Time("start", win.Start), slog.Time("end", win.End),
			slog.Int("pages", win.Pages), slog.Int("seen", win.Seen), slog.Int("new", win.New))
	}
	return w.d.jobDone(ctx, job.JobRow, err, attrs...)
}

// backfill pages one window from cur (a fresh job: cur is zero).
func (d *Deps) backfill(ctx context.Context, job *river.Job[BackfillArgs], cur backfillCursor) (*ledger.BackfillWindow, error) {
	args := job.Args
	if !args.Environment.HasServer() {
		return nil, river.JobCancel(fmt.Errorf("backfill: environment %q has no App Store server", args.Environment))
	}
	if d.Apple == nil {
		return nil, errors.New("jobs: no App Store client configured")
	}
	apple, err := d.Apple.InEnvironment(args.Environment)
	if err != nil {
		return nil, river.JobCancel(err)
	}
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return nil, ErrNoRiverClient
	}
	var win *ledger.BackfillWindow
	if cur.WindowID != 0 {
		if win, err = d.Ledger.BackfillWindowByID(ctx, cur.WindowID); err != nil {
			return nil, err
		}
		if win.FinishedAt != nil {
			return win, nil // the last page was stored; only the job's completion was lost
		}
	} else {
		win, err = d.openWindow(ctx, job)
		if err != nil || win == nil {
			return win, err
		}
		cur = backfillCursor{WindowID: win.ID, Token: win.PaginationToken}
		err = pgx.BeginFunc(ctx, d.Ledger.Pool(), func(tx pgx.Tx) error {
			_, err := river.ResumableSetStepCursorTx[*riverpgxv5.Driver](ctx, tx, job, cur)
			return err
		})
		if err != nil {
			return win, err
		}
	}
	req := appstore.NotificationHistoryRequest{
		StartDate: appstore.MillisOf(win.Start), EndDate: appstore.MillisOf(win.End), OnlyFailures: win.OnlyFailures,
	}
	stopAt := pageStopTime(ctx)
	restarts, pages := 0, 0
	for {
		if pages > 0 && time.Now().After(stopAt) {
			// Near the job's timeout: stop between pages (the cursor is
			// saved) and go on in a fresh run, which costs no attempt.
			return win, river.JobSnooze(100 * time.Millisecond)
		}
		pages++
		token := cur.Token
		readAt := d.now() // Apple's clock before asking: the page lists nothing signed later
		page, err := retryTransient(ctx, d, func(ctx context.Context) (*appstore.NotificationHistoryResponse, error) {
			p, err := apple.GetNotificationHistory(ctx, req, token)
			d.Metrics.appleCall(appstore.EndpointNotificationHistory, err)
			return p, err
		})
		if err == nil && page.HasMore && (page.PaginationToken == "" || page.PaginationToken == token) {
			err = river.JobCancel(fmt.Errorf("notification history: Apple said hasMore without a new paginationToken (%q)", page.PaginationToken))
		}
		if isPaginationExpired(err) && token != "" && restarts < maxWindowRestarts {
			// The token expired (or Apple no longer knows it): the window
			// starts over; notifications already stored dedupe.
			restarts++
			cur.Token = ""
			err = pgx.BeginFunc(ctx, d.Ledger.Pool(), func(tx pgx.Tx) error {
				if err := d.Ledger.WithTx(tx).RestartBackfillWindow(ctx, win.ID); err != nil {
					return err
				}
				_, err := river.ResumableSetStepCursorTx[*riverpgxv5.Driver](ctx, tx, job, cur)
				return err
			})
			if err != nil {
				return win, err
			}
			win.Pages, win.Seen = 0, 0
			continue
		}
		if err != nil {
			if isPermanentAppleError(err) || isJobCancel(err) {
				_ = d.Ledger.FailBackfillWindow(ctx, win.ID, err.Error())
			}
			return win, appleOutcome(err)
		}
		next := ""
		if page.HasMore {
			next = page.PaginationToken
		}
		var seen, fresh int
		err = pgx.BeginFunc(ctx, d.Ledger.Pool(), func(tx pgx.Tx) error {
			var err error
			seen, fresh, err = d.storeHistoryItems(ctx, tx, client, win.Environment, page.NotificationHistory, ledger.SourceBackfill, PriorityBulk)
			if err != nil {
				return err
			}
			if err := d.Ledger.WithTx(tx).SaveBackfillPage(ctx, win.ID, next, seen, fresh); err != nil {
				return err
			}
			if !page.HasMore {
				// readAt: Apple lists nothing signed after it, so a window
				// ending later is complete only until then.
				if _, err := d.Ledger.WithTx(tx).FinishBackfillWindow(ctx, win.ID, readAt); err != nil {
					return err
				}
			}
			_, err = river.ResumableSetStepCursorTx[*riverpgxv5.Driver](ctx, tx, job, backfillCursor{WindowID: win.ID, Token: next})
			return err
		})
		if err != nil {
			return win, err
		}
		d.Metrics.backfillNotifications(win.Environment, fresh, seen-fresh)
		win.Pages, win.Seen, win.New = win.Pages+1, win.Seen+seen, win.New+fresh
		if !page.HasMore {
			now := d.now()
			win.FinishedAt = &now
			return win, nil
		}
		cur.Token = next
	}
}

// pageStopTime is when a paging job should stop asking for more pages: a
// margin before its context's deadline (River's job timeout), so a long
// window goes on in a new run instead of being killed mid-page.
func pageStopTime(ctx context.Context) time.Time {
	deadline, ok := ctx.Deadline()
	if !ok {
		return time.Now().Add(100 * 365 * 24 * time.Hour)
	}
	return deadline.Add(-min(pageStopMargin, time.Until(deadline)/4))
}

// openWindow resolves and records the window of a fresh backfill job: the
// given bounds, or for a sweep the previous sweep's end minus the overlap;
// either clamped to Apple's look-back. It returns nil when nothing of the
// window is still inside the look-back.
func (d *Deps) openWindow(ctx context.Context, job *river.Job[BackfillArgs]) (*ledger.BackfillWindow, error) {
	args := job.Args
	env := args.Environment
	start, end := args.Start.UTC(), args.End.UTC()
	kind := ledger.BackfillManual
	if args.Sweep {
		kind = ledger.BackfillSweep
		last, ok, err := d.Ledger.LastSweepEnd(ctx, env)
		if err != nil {
			return nil, err
		}
		if ok {
			start = last.Add(-BackfillOverlap)
		} else {
			start = end.Add(-BackfillInitialLookback)
		}
	}
	if earliest := earliestStart(env, d.now()); start.Before(earliest) {
		start = earliest
	}
	start, end = start.Truncate(time.Millisecond), end.Truncate(time.Millisecond)
	if !start.Before(end) {
		d.logger().Info("backfill: window outside Apple's look-back, nothing to read",
			"environment", env, "start", args.Start, "end", args.End)
		return nil, nil
	}
	return d.Ledger.OpenBackfillWindow(ctx, ledger.BackfillWindow{
		Environment: env, Kind: kind, Start: start, End: end, OnlyFailures: args.OnlyFailures,
	})
}

// storeHistoryItems verifies notification-history items of env and stores,
// in tx, those the ledger misses, each with its processing job at priority.
// It returns how many items it saw and how many were new. Items that fail
// verification are logged and skipped (never stored); a retryable failure
// (online check unreachable) fails the page so it is read again.
func (d *Deps) storeHistoryItems(ctx context.Context, tx pgx.Tx, client *river.Client[pgx.Tx], env appstore.Environment,
	items []appstore.NotificationHistoryResponseItem, source string, priority int) (seen, fresh int, err error) {
	v, err := d.verifierFor(env)
	if err != nil {
		return 0, 0, err
	}
	var params []river.InsertManyParams
	for _, item := range items {
		seen++
		vn, err := v.VerifyNotificationDeep(item.SignedPayload)
		if err != nil {
			d.Metrics.VerifyFailure(err)
			var verr *appstore.VerificationError
			if errors.As(err, &verr) && verr.Retryable() {
				return seen, fresh, err
			}
			d.logger().Warn("backfill: notification from history not verified, skipped",
				"environment", env, "source", source, "error", err.Error())
			continue
		}
		n := NotificationRecord(vn.Payload, env, item.SignedPayload, source, item.SendAttempts)
		if !ledger.IsUUID(n.UUID) {
			d.logger().Warn("backfill: notification without a UUID, skipped", "environment", env, "source", source)
			continue
		}
		inserted, err := d.Ledger.WithTx(tx).RecordNotification(ctx, n)
		if err != nil {
			return seen, fresh, err
		}
		if inserted {
			fresh++
			params = append(params, river.InsertManyParams{
				Args:       ProcessNotificationArgs{NotificationUUID: n.UUID},
				InsertOpts: &river.InsertOpts{Priority: priority},
			})
		}
	}
	if len(params) > 0 {
		if _, err := client.InsertManyFastTx(ctx, tx, params); err != nil {
			return seen, fresh, err
		}
	}
	return seen, fresh, nil
}

// isPaginationExpired reports Apple's PaginationTokenExpiredError (4000017)
// or InvalidPaginationTokenError (4000014): restart the window.
func isPaginationExpired(err error) bool {
	var apiErr *appstore.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.Code == appstore.ErrorCodePaginationTokenExpired || apiErr.Code == appstore.ErrorCodeInvalidPaginationToken)
}

func isJobCancel(err error) bool {
	var c *rivertype.JobCancelError
	return errors.As(err, &c)
}

// BackfillRequest is a manual backfill (`storesync backfill`).
type BackfillRequest struct {
	// Environments to read; each window is enqueued once per environment.
	Environments []appstore.Environment
	// Since and Until bound the backfill (Until is clamped to Now).
	Since, Until time.Time
	// OnlyFailures asks Apple only for notifications that never reached us.
	OnlyFailures bool
	// WindowSize splits the span; zero means BackfillWindowSize.
	WindowSize time.Duration
	// Now is the current time (Apple's look-back is relative to it).
	Now time.Time
}

// Windows splits r into the jobs to enqueue: per environment, windows of
// WindowSize from Since (the last one ending at Until), starting no earlier
// than Apple's look-back allows. notes say what was clamped or dropped.
func (r BackfillRequest) Windows() (windows []BackfillArgs, notes []string, err error) {
	if r.Since.IsZero() || r.Until.IsZero() {
		return nil, nil, errors.New("backfill: both since and until are required (RFC 3339 times)")
	}
	if len(r.Environments) == 0 {
		return nil, nil, errors.New("backfill: no environment to read")
	}
	size := orDuration(r.WindowSize, BackfillWindowSize)
	until := r.Until.UTC()
	if until.After(r.Now) {
		until = r.Now.UTC()
	}
	since := r.Since.UTC()
	if !since.Before(until) {
		return nil, nil, fmt.Errorf("backfill: since (%s) must be before until (%s, or now)", r.Since.Format(time.RFC3339), until.Format(time.RFC3339))
	}
	for _, env := range r.Environments {
		start := since
		if earliest := earliestStart(env, r.Now); start.Before(earliest) {
			if !earliest.Before(until) {
				notes = append(notes, fmt.Sprintf("%s: the whole span is older than Apple's %d-day look-back: skipped",
					env, int(notificationLookback(env).Hours()/24)))
				continue
			}
			notes = append(notes, fmt.Sprintf("%s: starts at %s, the limit of Apple's %d-day look-back",
				env, earliest.Format(time.RFC3339), int(notificationLookback(env).Hours()/24)))
			start = earliest
		}
		start = start.Truncate(time.Millisecond)
		for s := start; s.Before(until); s = s.Add(size) {
			e := s.Add(size)
			if e.After(until) {
				e = until
			}
			windows = append(windows, BackfillArgs{Environment: env, Start: s, End: e.Truncate(time.Millisecond), OnlyFailures: r.OnlyFailures})
		}
	}
	return windows, notes, nil
}

// EnqueueBackfill enqueues the windows of r and returns their jobs. A
// window already waiting or running is not enqueued again (its job is
// returned); one done before is read again, since asking means someone
// suspects a gap.
func EnqueueBackfill(ctx context.Context, client *river.Client[pgx.Tx], r BackfillRequest) ([]*rivertype.JobRow, []string, error) {
	windows, notes, err := r.Windows()
	if err != nil {
		return nil, notes, err
	}
	opts := &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
		rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
		rivertype.JobStateScheduled, rivertype.JobStateRetryable,
	}}}
	params := make([]river.InsertManyParams, len(windows))
	for i, w := range windows {
		params[i] = river.InsertManyParams{Args: w, InsertOpts: opts}
	}
	var jobs []*rivertype.JobRow
	if len(params) > 0 {
		res, err := client.InsertMany(ctx, params)
		if err != nil {
			return nil, notes, err
		}
		for _, r := range res {
			jobs = append(jobs, r.Job)
		}
	}
	return jobs, notes, nil
}
