package jobs

import (
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/storesync/storesync/appstore"
)

// ClientOptions configures the River client of one storesync process.
type ClientOptions struct {
	// Work makes the client run workers and periodic jobs (storesync
	// serve). Without it the client only inserts jobs (import, resync).
	Work bool
	// Workers per queue; zero takes the default. Apple-bound workers mostly
	// wait for the budget, so bulk can be wide.
	InteractiveWorkers  int // default 10
	NotificationWorkers int // default 20
	BulkWorkers         int // default 120
	HistoryWorkers      int // bulk_history (import histories); default 120
	ReceiptWorkers      int // bulk_receipts (receipts to resolve); default 120
	TokenWorkers        int // bulk_tokens (appAccountTokens to set); default 40
	MaintenanceWorkers  int // default 4
	// ReconcileCron and BackfillCron are cron specs (UTC) of the periodic
	// jobs; empty disables that schedule.
	ReconcileCron string
	BackfillCron  string
	// EventFanOutEvery is how often new change-feed events are fanned out
	// to the webhook endpoints (`serve`: 1s); zero: never.
	EventFanOutEvery time.Duration
	// JobTimeout bounds one job run; RescueStuckJobsAfter is when a job
	// whose process died is worked again. Defaults 45s and 55s: River's
	// rescuer runs every 30s, so orphans of a killed process run again
	// within 85s (the goal is 90s).
	JobTimeout           time.Duration
	RescueStuckJobsAfter time.Duration
	// ID names this client in River's tables (default: River's).
	ID string
	// PollOnly makes River poll for new jobs and leadership changes instead
	// of holding a LISTEN connection: for a transaction pooler (PgBouncer
	// in transaction mode), where LISTEN is lost with the server
	// connection. New jobs then wait up to River's FetchPollInterval (1s)
	// to be noticed, and a resigned leader's successor up to 5s. River
	// still sends NOTIFY on insert; through a pooler that reaches no one
	// and costs nothing.
	PollOnly bool
}

// Defaults of ClientOptions.JobTimeout and RescueStuckJobsAfter.
const (
	DefaultJobTimeout           = 45 * time.Second
	DefaultRescueStuckJobsAfter = 55 * time.Second
)

// addWorkers adds the worker of every storesync job to workers. It is the
// one list of jobs, explicit so that reading it (not the init order of
// files) says what a client can work: a new job keeps its args, worker and
// schedule in its own file and is added here and, if it has a schedule, to
// periodicJobs.
func addWorkers(workers *river.Workers, d *Deps) {
	river.AddWorker(workers, &backfillWorker{d: d})
	river.AddWorker(workers, &compactCertificatesWorker{d: d})
	river.AddWorker(workers, &eventDeliverWorker{d: d})
	river.AddWorker(workers, &eventFanOutWorker{d: d})
	river.AddWorker(workers, &ImportWorker{d: d})
	river.AddWorker(workers, &ImportHistoryWorker{d: d})
	river.AddWorker(workers, &resolveReceiptWorker{d: d})
	river.AddWorker(workers, &setAppAccountTokenWorker{d: d})
	river.AddWorker(workers, &processNotificationWorker{d: d})
	river.AddWorker(workers, &reconcileWorker{d: d})
	river.AddWorker(workers, &resyncWorker{d: d})
}

// periodicJobs returns every periodic job of opts: the backfill sweep of
// each environment the App Store client reaches, then the nightly
// reconciliation. An empty cron spec leaves its job out; one that does not
// parse is an error naming its option.
func periodicJobs(d *Deps, opts *ClientOptions) ([]*river.PeriodicJob, error) {
	var out []*river.PeriodicJob
	keep := func(pj *river.PeriodicJob) {
		if pj != nil {
			out = append(out, pj)
		}
	}
	for _, env := range []appstore.Environment{appstore.Production, appstore.Sandbox} {
		pj, err := d.backfillSweep(env, opts.BackfillCron)
		if err != nil {
			return nil, err
		}
		keep(pj)
	}
	pj, err := reconcilePeriodic(opts.ReconcileCron)
	if err != nil {
		return nil, err
	}
	keep(pj)
	keep(EventFanOutPeriodic(opts.EventFanOutEvery))
	return out, nil
}

// NewRiverClient returns a River client with every storesync worker,
// queue and periodic job configured.
func NewRiverClient(deps *Deps, opts ClientOptions) (*river.Client[pgx.Tx], error) {
	if err := deps.validate(); err != nil {
		return nil, err
	}
	cfg := &river.Config{
		ID:                   opts.ID,
		Logger:               deps.logger(),
		JobTimeout:           orDuration(opts.JobTimeout, DefaultJobTimeout),
		RescueStuckJobsAfter: orDuration(opts.RescueStuckJobsAfter, DefaultRescueStuckJobsAfter),
		MaxAttempts:          10,
		PollOnly:             opts.PollOnly,
		// Jobs are short and checkpointed; a fetch every 100 ms keeps the
		// bulk queue fed without hammering Postgres.
		FetchCooldown: 50 * time.Millisecond,
		// Change-feed events name their job, and get fanned out once written.
		Middleware: []rivertype.Middleware{&causeMiddleware{feed: &feedNudger{logger: deps.logger()}}},
	}
	if cfg.RescueStuckJobsAfter <= cfg.JobTimeout {
		return nil, fmt.Errorf("jobs: RescueStuckJobsAfter (%s) must exceed JobTimeout (%s)", cfg.RescueStuckJobsAfter, cfg.JobTimeout)
	}
	workers := river.NewWorkers()
	addWorkers(workers, deps)
	cfg.Workers = workers
	if opts.Work {
		cfg.Queues = map[string]river.QueueConfig{
			river.QueueDefault: {MaxWorkers: 2},
			QueueInteractive:   {MaxWorkers: orInt(opts.InteractiveWorkers, 10)},
			QueueNotifications: {MaxWorkers: orInt(opts.NotificationWorkers, 20)},
			QueueBulk:          {MaxWorkers: orInt(opts.BulkWorkers, 120)},
			QueueBulkHistory:   {MaxWorkers: orInt(opts.HistoryWorkers, 120)},
			QueueBulkReceipts:  {MaxWorkers: orInt(opts.ReceiptWorkers, 120)},
			QueueBulkTokens:    {MaxWorkers: orInt(opts.TokenWorkers, 40)},
			QueueMaintenance:   {MaxWorkers: orInt(opts.MaintenanceWorkers, 4)},
		}
		periodic, err := periodicJobs(deps, &opts)
		if err != nil {
			return nil, err
		}
		cfg.PeriodicJobs = periodic
	}
	client, err := river.NewClient(riverpgxv5.New(deps.Ledger.Pool()), cfg)
	if err != nil {
		return nil, fmt.Errorf("jobs: creating the River client: %w", err)
	}
	return client, nil
}

// ErrNoRiverClient is returned by workers that must enqueue follow-up work
// when run without a River client in their context.
var ErrNoRiverClient = errors.New("jobs: no River client in the job context")

func orDuration(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func orInt(n, def int) int {
	if n > 0 {
		return n
	}
	return def
}
