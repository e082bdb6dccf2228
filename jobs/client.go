package jobs

import (
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
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
	BulkWorkers         int // default 60
	MaintenanceWorkers  int // default 4
	// ReconcileCron and BackfillCron are cron specs (UTC) of the periodic
	// jobs; empty disables that schedule.
	ReconcileCron string
	BackfillCron  string
	// JobTimeout bounds one job run; RescueStuckJobsAfter is when a job
	// whose process died is worked again. Defaults 45s and 55s: River's
	// rescuer runs every 30s, so orphans of a killed process run again
	// within 85s (the goal is 90s).
	JobTimeout           time.Duration
	RescueStuckJobsAfter time.Duration
	// ID names this client in River's tables (default: River's).
	ID string
}

// Defaults of ClientOptions.JobTimeout and RescueStuckJobsAfter.
const (
	DefaultJobTimeout           = 45 * time.Second
	DefaultRescueStuckJobsAfter = 55 * time.Second
)

// workerRegistrations and periodicRegistrations are filled by each job's
// init, so a job lives in one file with its args, worker and schedule.
var (
	workerRegistrations   []func(*river.Workers, *Deps)
	periodicRegistrations []func(*Deps, *ClientOptions) (*river.PeriodicJob, error)
)

func registerWorker(f func(*river.Workers, *Deps)) {
	workerRegistrations = append(workerRegistrations, f)
}

func registerPeriodic(f func(*Deps, *ClientOptions) (*river.PeriodicJob, error)) {
	periodicRegistrations = append(periodicRegistrations, f)
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
		// Jobs are short and checkpointed; a fetch every 100 ms keeps the
		// bulk queue fed without hammering Postgres.
		FetchCooldown: 50 * time.Millisecond,
	}
	if cfg.RescueStuckJobsAfter <= cfg.JobTimeout {
		return nil, fmt.Errorf("jobs: RescueStuckJobsAfter (%s) must exceed JobTimeout (%s)", cfg.RescueStuckJobsAfter, cfg.JobTimeout)
	}
	workers := river.NewWorkers()
	for _, reg := range workerRegistrations {
		reg(workers, deps)
	}
	cfg.Workers = workers
	if opts.Work {
		cfg.Queues = map[string]river.QueueConfig{
			river.QueueDefault: {MaxWorkers: 2},
			QueueInteractive:   {MaxWorkers: orInt(opts.InteractiveWorkers, 10)},
			QueueNotifications: {MaxWorkers: orInt(opts.NotificationWorkers, 20)},
			QueueBulk:          {MaxWorkers: orInt(opts.BulkWorkers, 60)},
			QueueMaintenance:   {MaxWorkers: orInt(opts.MaintenanceWorkers, 4)},
		}
		for _, reg := range periodicRegistrations {
			pj, err := reg(deps, &opts)
			if err != nil {
				return nil, err
			}
			if pj != nil {
				cfg.PeriodicJobs = append(cfg.PeriodicJobs, pj)
			}
		}
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
