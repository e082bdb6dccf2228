package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/config"
	"github.com/storesync/storesync/jobs"
	"github.com/storesync/storesync/jobs/httpapi"
	"github.com/storesync/storesync/jobs/opsui"
)

// serveCommand is `storesync serve`; main.go lists it in commands.
func serveCommand() *command {
	return &command{
		name:    "serve",
		summary: "run the workers, periodic jobs, webhook, admin API, /metrics and /healthz",
		usage: `storesync serve [--bulk-workers N] [--history-workers N] [--receipt-workers N] [--token-workers N] [--stop-timeout D] [--job-timeout D] [--rescue-after D] [--no-schedules] [--cpu-profile FILE] [--verbose]

Works every job (imports, notifications, re-syncs, backfills, reconciliation)
with River, runs the periodic jobs (only the elected leader enqueues them),
and serves on STORESYNC_LISTEN: POST /webhooks/appstore, /admin/* (with
STORESYNC_ADMIN_TOKEN), GET /metrics and GET /healthz. Any number of serve
processes may share one database: they share Apple's rate budget through it,
and the jobs of a process that dies are worked again by the others within
90 s.

SIGTERM or Ctrl-C stops gracefully: no new jobs are started, jobs in flight
get --stop-timeout to finish, then are cancelled at their last checkpoint
and returned to the queue without using an attempt.

Database connections: at most STORESYNC_DB_MAX_CONNS (default 16): one for
River's LISTEN, the rest a pool shared by jobs, River, the budget leases and
up to 2 webhook committers. Behind PgBouncer in transaction mode set
STORESYNC_DB_POOLER=pgbouncer-transaction (River polls, no prepared
statements).

  --bulk-workers N   concurrent bulk jobs (imports: current state) in this
                     process (default 120: they mostly wait for the budget,
                     and enough of them must wait that a slow round of
                     Apple, Postgres and CPU on a busy host leaves no token
                     unused)
  --history-workers N
                     concurrent import history jobs in this process (default
                     120); they page histories at the history endpoint's limit
                     while the bulk jobs fetch statuses at theirs
  --receipt-workers N
                     concurrent receipt resolutions of an import (Get
                     Transaction Info) in this process (default 120), apart
                     from the bulk workers so that both endpoints run at once
  --token-workers N  concurrent appAccountToken updates in this process
                     (default 40; the endpoint's limit is 20/s)
  --stop-timeout D   how long jobs in flight may take to finish on stop (default 20s)
  --job-timeout D    longest run of one job (default 45s); long work checkpoints
                     and continues in a new run
  --rescue-after D   when a job whose process died is worked again (default 55s;
                     must exceed --job-timeout)
  --no-schedules     enqueue no periodic jobs (nightly reconciliation, backfill
                     sweep) from this process: for extra worker processes,
                     e.g. during a migration; at least one process should
                     keep them
  --cpu-profile FILE write a Go CPU profile of this process to FILE until it
                     stops (read it with go tool pprof; see CONTRIBUTING.md)
  --verbose          log River's informational messages too`,
		run: runServe,
	}
}

func runServe(ctx context.Context, c *cli, args []string) error {
	fset := flag.NewFlagSet("serve", flag.ContinueOnError)
	bulk := fset.Int("bulk-workers", 120, "")
	history := fset.Int("history-workers", 120, "")
	receipts := fset.Int("receipt-workers", 120, "")
	tokens := fset.Int("token-workers", 40, "")
	stopTimeout := fset.Duration("stop-timeout", 20*time.Second, "")
	verbose := fset.Bool("verbose", false, "")
	noSchedules := fset.Bool("no-schedules", false, "")
	jobTimeout := fset.Duration("job-timeout", jobs.DefaultJobTimeout, "")
	rescueAfter := fset.Duration("rescue-after", jobs.DefaultRescueStuckJobsAfter, "")
	cpuProfile := fset.String("cpu-profile", "", "")
	rest, err := parseFlags(fset, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("unexpected argument %q", rest[0])
	}
	if *bulk < 1 || *bulk > 1000 {
		return usagef("--bulk-workers %d: use 1..1000", *bulk)
	}
	if *history < 1 || *history > 1000 {
		return usagef("--history-workers %d: use 1..1000", *history)
	}
	if *receipts < 1 || *receipts > 1000 {
		return usagef("--receipt-workers %d: use 1..1000", *receipts)
	}
	if *tokens < 1 || *tokens > 1000 {
		return usagef("--token-workers %d: use 1..1000", *tokens)
	}
	if *stopTimeout <= 0 {
		return usagef("--stop-timeout %s: use a positive duration such as 20s", *stopTimeout)
	}
	if *jobTimeout < time.Second || *rescueAfter <= *jobTimeout {
		return usagef("--job-timeout %s, --rescue-after %s: use a job timeout of at least 1s and a longer rescue delay", *jobTimeout, *rescueAfter)
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	if err := cfg.RequireAppStore(); err != nil {
		return err
	}
	// Workers spend their time waiting for Apple, not for Postgres: a few
	// connections serve dozens of them, and several processes must fit in
	// the server's max_connections. STORESYNC_DB_MAX_CONNS bounds them all
	// (serveConnections says how they are split).
	poolSize, committers := serveConnections(cfg)
	pool, err := openPoolMax(ctx, cfg, func(int32) int32 { return poolSize })
	if err != nil {
		return err
	}
	defer pool.Close()
	deps, err := buildDeps(ctx, cfg, pool)
	if err != nil {
		return err
	}
	deps.Settings.Reconcile = reconcileSettings(cfg) // the nightly run's cap and cycle
	deps.Settings.Delivery.DeadAfter = cfg.EventDeadAfter
	// One governor for this process's webhook and its workers: processing
	// yields while webhooks pour in (STORESYNC_INGEST_*).
	if deps.Ingest, err = jobs.NewIngestGovernor(jobs.IngestGovernorOptions{
		BusyRate: cfg.IngestBusyRate, YieldWorkers: cfg.IngestYieldWorkers, YieldRate: cfg.IngestYieldRate,
	}); err != nil {
		return err
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	deps.Logger = slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: level}))
	opts := jobs.ClientOptions{
		Work: true, BulkWorkers: *bulk, HistoryWorkers: *history, ReceiptWorkers: *receipts, TokenWorkers: *tokens, ReconcileCron: cfg.ReconcileCron, BackfillCron: cfg.BackfillCron,
		EventFanOutEvery: time.Second, // change-feed webhooks go out within about a second
		JobTimeout:       *jobTimeout, RescueStuckJobsAfter: *rescueAfter,
		PollOnly: cfg.Pooler.TransactionPooling(), // LISTEN needs a session of its own
	}
	if *noSchedules {
		opts.ReconcileCron, opts.BackfillCron = "", ""
	}
	client, err := jobs.NewRiverClient(deps, opts)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on STORESYNC_LISTEN=%s: %w (pick another address)", cfg.Listen, err)
	}
	// The ops console (/ops, /riverui) sits in front of the API, behind its own login.
	console, err := opsui.New(ctx, deps, client, opsui.Options{AdminToken: cfg.AdminToken})
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("building the ops console: %w", err)
	}
	// The webhook's answer counts go to the ledger, for status and the console.
	deps.WebhookLog = jobs.NewWebhookLog(deps.Ledger, nil)
	logCtx, stopLog := context.WithCancel(context.WithoutCancel(ctx))
	logDone := make(chan struct{})
	go func() { defer close(logDone); deps.WebhookLog.Run(logCtx, 5*time.Second) }()
	defer func() { stopLog(); <-logDone }()
	srv := &http.Server{
		Handler:           console.Wrap(httpapi.NewHandler(deps, client, httpapi.Options{AdminToken: cfg.AdminToken, APITokens: cfg.APITokens, IngestConcurrency: committers})),
		ReadHeaderTimeout: 10 * time.Second,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	// Jobs run under a context of their own: a signal asks for a graceful
	// stop below instead of cancelling every job at once.
	if err := client.Start(context.WithoutCancel(ctx)); err != nil {
		_ = srv.Close()
		return fmt.Errorf("starting the workers: %w", err)
	}
	// A compaction pass interrupted by a stop (or left by the upgrade to
	// migration 011) resumes by itself.
	if job, err := jobs.EnqueueCompaction(ctx, client, deps.Ledger, false); err != nil {
		fmt.Fprintf(c.stderr, "certificate compaction not resumed: %v (`storesync compact` resumes it)\n", err)
	} else if job != nil {
		fmt.Fprintf(c.stdout, "certificate compaction unfinished: resuming it (job %d)\n", job.ID)
	}
	fmt.Fprintf(c.stdout, "storesync serving on http://%s (%s, Apple API at %s, %d bulk workers, %d history workers)\n",
		ln.Addr(), cfg.Environment, appleTarget(cfg), *bulk, *history)
	fmt.Fprintf(c.stdout, "ops console: http://%s/ops/ (log in with STORESYNC_ADMIN_TOKEN)\n", ln.Addr())

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		runErr = fmt.Errorf("HTTP server on %s: %w", ln.Addr(), err)
	}

	fmt.Fprintf(c.stdout, "stopping: letting jobs in flight finish (up to %s)\n", *stopTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	stopCtx, cancelStop := context.WithTimeout(context.Background(), *stopTimeout)
	defer cancelStop()
	if err := client.Stop(stopCtx); err != nil {
		fmt.Fprintf(c.stdout, "jobs still running after %s: cancelling them at their last checkpoint\n", *stopTimeout)
		hardCtx, cancelHard := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancelHard()
		if err := client.StopAndCancel(hardCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			runErr = errors.Join(runErr, fmt.Errorf("stopping the workers: %w", err))
		}
	}
	fmt.Fprintln(c.stdout, "stopped")
	return runErr
}

// appleTarget names where Apple requests go, for the start-up line.
func appleTarget(cfg *config.Config) string {
	switch {
	case cfg.BaseURL != "":
		return cfg.BaseURL
	case cfg.Environment == appstore.Sandbox:
		return appstore.DefaultSandboxBaseURL
	}
	return appstore.DefaultProductionBaseURL
}
