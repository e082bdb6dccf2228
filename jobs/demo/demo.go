// Package demo runs the whole product against the App Store simulator, as
// `storesync demo` shows it: a fresh database, the simulator, the workers
// and the webhook in this process; then a migration of every simulated
// subscriber, live notifications with some deliveries dropped, a backfill
// that recovers them, silent changes at Apple and a reconciliation that
// finds them, and a comparison of the ledger with the simulator's truth.
// It gathers what it measured in a Report; printing is the command's.
//
// It ships in the binary, so it never imports testing.
package demo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/config"
	"github.com/storesync/storesync/jobs"
	"github.com/storesync/storesync/jobs/truthcheck"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations"
)

// idleTimeout bounds each wait for the queue to drain: far more than the
// default demo needs, short enough that a stuck job ends the demo.
const idleTimeout = 10 * time.Minute

// runner is what the demo's steps share.
type runner struct {
	opts      Options
	started   time.Time
	pool      *pgxpool.Pool
	deps      *jobs.Deps
	river     *river.Client[pgx.Tx]
	simulator *sim.Simulator
	cfg       *config.Config
	baseURL   string // of the HTTP server, once serve started it
}

func (r *runner) logf(format string, args ...any) {
	if r.opts.Log != nil {
		r.opts.Log(time.Since(r.started), fmt.Sprintf(format, args...))
	}
}

// Run runs the demo and returns its report; it stops everything it
// started before returning, and drops the demo database unless
// opts.Keep. The report's Mismatches are not an error: the caller decides
// what a ledger differing from the truth means.
//
// The returned Report is never nil: after a failure it holds what the
// finished steps measured (DatabaseURL once the database is named). Errors
// are invalid options (every problem at once), no Postgres to use, or the
// first failing step's error; the end of ctx stops the demo.
func Run(ctx context.Context, opts Options) (*Report, error) {
	rep := &Report{Subscribers: opts.Subscribers, SilentByKind: map[string]int{}}
	if err := opts.validate(); err != nil {
		return rep, err
	}
	r := &runner{opts: opts, started: time.Now()}

	// A fresh demo database.
	dbURL, stopDB, err := r.newDatabase(ctx, opts.ServerURL)
	if err != nil {
		return rep, err
	}
	rep.DatabaseURL = dbURL
	defer stopDB(opts.Keep)
	if _, err := migrations.Migrate(ctx, dbURL); err != nil {
		return rep, err
	}

	// The simulator, with its files for the configuration.
	simulator, err := sim.New(sim.Options{Seed: opts.Seed, Subscribers: opts.Subscribers})
	if err != nil {
		return rep, err
	}
	r.simulator = simulator
	if _, err := simulator.Start("127.0.0.1:0"); err != nil {
		return rep, err
	}
	defer simulator.Close()
	dir, err := os.MkdirTemp("", "storesync-demo.")
	if err != nil {
		return rep, err
	}
	defer os.RemoveAll(dir)
	if _, err := simulator.WriteFiles(dir); err != nil {
		return rep, err
	}
	env := simulator.Env()
	env["DATABASE_URL"] = dbURL
	if r.cfg, err = config.Load(func(k string) string { return env[k] }); err != nil {
		return rep, err
	}
	r.logf("simulator: %d customers at %s (Apple's production limits: statuses %g/s, history %g/s)",
		opts.Subscribers, simulator.BaseURL(), appstore.DefaultRateLimit(appstore.EndpointStatuses, appstore.Production),
		appstore.DefaultRateLimit(appstore.EndpointHistory, appstore.Production))

	// Workers and the webhook, in this process.
	stop, err := r.serve(ctx)
	if err != nil {
		return rep, err
	}
	defer stop()

	for _, step := range []func(context.Context, *Report) error{r.migrate, r.live, r.backfill, r.reconcile} {
		if err := step(ctx, rep); err != nil {
			return rep, err
		}
	}
	if rep.ByType, err = r.deps.Ledger.CountNotificationsByType(ctx); err != nil {
		return rep, err
	}
	if rep.Mismatches, err = truthcheck.Compare(ctx, r.deps.Ledger, simulator.Truth()); err != nil {
		return rep, err
	}
	rep.Stats = simulator.Stats()
	rep.Elapsed = time.Since(r.started)
	if opts.Hold != nil {
		opts.Hold(ctx, r.baseURL, rep)
	}
	return rep, nil
}

// serve opens the pool, builds the workers and starts them with the HTTP
// API the simulator's webhook posts to; stop stops all of it.
func (r *runner) serve(ctx context.Context) (stop func(), err error) {
	var stops []func()
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	pool, deps, err := r.opts.Wiring.Open(ctx, r.cfg, 40)
	if err != nil {
		return stop, err
	}
	stops = append(stops, pool.Close)
	r.pool, r.deps = pool, deps
	deps.Now = r.simulator.Now
	deps.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	client, err := jobs.NewRiverClient(deps, jobs.ClientOptions{Work: true})
	if err != nil {
		return stop, err
	}
	r.river = client
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return stop, err
	}
	srv := &http.Server{Handler: r.opts.Wiring.Handler(deps, client), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // Close below ends it
	r.baseURL = "http://" + ln.Addr().String()
	r.logf("HTTP API and ops console on %s (ops pages at %s/ops/)", r.baseURL, r.baseURL)
	stops = append(stops, func() { _ = srv.Close() })
	if err := client.Start(context.WithoutCancel(ctx)); err != nil {
		return stop, err
	}
	stops = append(stops, func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = client.StopAndCancel(stopCtx)
	})
	if err := r.simulator.SetWebhookURL("http://" + ln.Addr().String() + "/webhooks/appstore"); err != nil {
		return stop, err
	}
	return stop, nil
}

// migrate imports every subscriber of the simulator from a generated file.
func (r *runner) migrate(ctx context.Context, rep *Report) error {
	var file bytes.Buffer
	file.WriteString("original_transaction_id,app_account_token,customer_id\n")
	for i, t := range r.simulator.Truth() {
		fmt.Fprintf(&file, "%s,%s,customer-%d\n", t.OriginalTransactionID, t.AppAccountToken, i+1)
	}
	im, err := jobs.NewImporter(jobs.ImporterOptions{Ledger: r.deps.Ledger, River: r.river})
	if err != nil {
		return err
	}
	runID, counts, err := im.Run(ctx, "demo", &file)
	if err != nil {
		return err
	}
	r.logf("1/4 migration: %d subscriptions enqueued (one import job each)", counts.Enqueued)
	start := time.Now()
	for {
		p, err := r.deps.Ledger.ImportProgressOf(ctx, runID)
		if err != nil {
			return err
		}
		done := p.Done + p.Failed
		rate := float64(done) / time.Since(start).Seconds()
		eta := "?"
		if rate > 0 {
			eta = (time.Duration(float64(p.Pending)/rate) * time.Second).Round(time.Second).String()
		}
		r.logf("    imported %d/%d (%.0f/s, ETA %s, failed %d, Apple 429s %d)", done, p.Total, rate, eta, p.Failed, r.simulator.Stats().Total().RateLimited)
		if p.Finished() {
			rep.Imported, rep.ImportFailed, rep.MigrateTime = p.Done, p.Failed, time.Since(start)
			rep.MigrateStats = r.simulator.Stats()
			break
		}
		if err := sleep(ctx, 2*time.Second); err != nil {
			return err
		}
	}
	return r.waitIdle(ctx, "migration")
}

// live runs the simulated clock while notifications arrive by webhook,
// dropping a share of the deliveries.
func (r *runner) live(ctx context.Context, rep *Report) error {
	if err := r.simulator.SetDropShare(r.opts.DropShare); err != nil {
		return err
	}
	for day := 1; day <= r.opts.Days; day++ {
		adv := r.simulator.Advance(24 * time.Hour)
		if err := r.simulator.Flush(ctx); err != nil {
			return err
		}
		rep.LiveSent += adv.Notifications
		r.logf("2/4 live: simulated day %d (%s): %d notifications sent, %d deliveries dropped so far",
			day, adv.To.Format("2006-01-02"), adv.Notifications, r.simulator.Stats().Webhook.Dropped)
	}
	if err := r.simulator.SetDropShare(0); err != nil {
		return err
	}
	if err := r.waitIdle(ctx, "live notifications"); err != nil {
		return err
	}
	rep.Dropped = r.simulator.Stats().Webhook.Dropped
	n, err := r.deps.Ledger.CountNotifications(ctx, ledger.SourceWebhook)
	rep.Webhook = n
	return err
}

// backfill recovers the dropped notifications from notification history.
func (r *runner) backfill(ctx context.Context, rep *Report) error {
	now := r.simulator.Now()
	_, notes, err := jobs.EnqueueBackfill(ctx, r.river, jobs.BackfillRequest{
		Environments: r.deps.SweptEnvironments(), Since: now.Add(-30 * 24 * time.Hour), Until: now, Now: now,
	})
	if err != nil {
		return err
	}
	for _, n := range notes {
		r.logf("    note: %s", n)
	}
	if err := r.waitIdle(ctx, "backfill"); err != nil {
		return err
	}
	n, err := r.deps.Ledger.CountNotifications(ctx, ledger.SourceBackfill)
	rep.Backfilled = n
	r.logf("3/4 backfill: %d notifications recovered from notification history", n)
	return err
}

// reconcile changes subscriptions silently, then runs a reconciliation.
func (r *runner) reconcile(ctx context.Context, rep *Report) error {
	truth := r.simulator.Truth()
	sort.Slice(truth, func(i, j int) bool { return truth[i].OriginalTransactionID < truth[j].OriginalTransactionID })
	kinds := sim.MutationKinds
	changed := 0
	for i := 0; i < len(truth) && changed < r.opts.SilentChanges; i += 7 {
		kind := kinds[changed%len(kinds)]
		if err := r.simulator.Mutate(truth[i].OriginalTransactionID, kind); err == nil {
			changed++
			rep.SilentByKind[string(kind)]++
		}
	}
	rep.Silent = changed
	r.logf("4/4 reconciliation: %d subscriptions changed silently at Apple; reconciling", changed)
	key := jobs.ManualRunKey(r.simulator.Now())
	args := jobs.ReconcileArgs{RunKey: key, CallCap: r.opts.Wiring.ReconcileCallCap(r.cfg), FullCycle: 24 * time.Hour}
	if _, err := r.river.Insert(ctx, args, nil); err != nil {
		return err
	}
	if err := r.waitIdle(ctx, "reconciliation"); err != nil {
		return err
	}
	run, err := r.deps.Ledger.ReconcileRunByKey(ctx, key)
	if err != nil {
		return err
	}
	rep.Reconcile = run
	return nil
}

// waitIdle waits until no job is queued, running or waiting to retry.
func (r *runner) waitIdle(ctx context.Context, what string) error {
	deadline := time.Now().Add(idleTimeout)
	for {
		pending, err := r.deps.Ledger.UnfinishedJobs(ctx)
		if err != nil {
			return err
		}
		if pending == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %d jobs still pending after 10 minutes", what, pending)
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
