package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
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
	"github.com/storesync/storesync/migrations/localpg"
)

func init() {
	register(&command{
		name:    "demo",
		summary: "run the whole product against the App Store simulator and print a report (the default)",
		usage: `storesync demo [--subscribers N] [--seed S] [--days D] [--drop-share F] [--silent-changes N] [--keep]

Starts what it needs — a Postgres (DATABASE_URL's server, else the local
one, else a private throwaway cluster), the App Store simulator with N
subscribers, the workers and the webhook — then, with live progress:
  1. migrates every subscriber (import of a generated file, one job each);
  2. lets the simulated clock run D days while notifications arrive by
     webhook, dropping a share of the deliveries as the sandbox would;
  3. backfills the dropped notifications from Apple's notification history;
  4. changes some subscriptions silently and runs a reconciliation;
  5. prints a report, including whether the ledger equals the simulator's
     truth, and stops everything it started (the demo database is dropped
     unless --keep).

  --subscribers N     simulated customers (default 2000)
  --seed S            simulator seed (default 1)
  --days D            simulated days of live notifications (default 3)
  --drop-share F      share of webhook deliveries dropped (default 0.3)
  --silent-changes N  subscriptions changed without a notification (default 30)
  --keep              keep the demo database and print its URL`,
		run: runDemo,
	})
}

// demoRun is what the demo's phases share.
type demoRun struct {
	out       io.Writer
	started   time.Time
	pool      *pgxpool.Pool
	deps      *jobs.Deps
	river     *river.Client[pgx.Tx]
	simulator *sim.Simulator
}

func (d *demoRun) logf(format string, args ...any) {
	fmt.Fprintf(d.out, "[%5.1fs] %s\n", time.Since(d.started).Seconds(), fmt.Sprintf(format, args...))
}

func runDemo(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	subscribers := fs.Int("subscribers", 2000, "")
	seed := fs.Int64("seed", 1, "")
	days := fs.Int("days", 3, "")
	dropShare := fs.Float64("drop-share", 0.3, "")
	silent := fs.Int("silent-changes", 30, "")
	keep := fs.Bool("keep", false, "")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(rest) > 0:
		return usagef("unexpected argument %q", rest[0])
	case *subscribers < 10 || *subscribers > 200_000:
		return usagef("--subscribers %d: use 10..200000", *subscribers)
	case *days < 1 || *days > 60:
		return usagef("--days %d: use 1..60", *days)
	case *dropShare < 0 || *dropShare > 1:
		return usagef("--drop-share %g: use a share in [0, 1]", *dropShare)
	case *silent < 0:
		return usagef("--silent-changes %d: use 0 or more", *silent)
	}
	d := &demoRun{out: c.stdout, started: time.Now()}

	// 1. Postgres and a fresh demo database.
	dbURL, stopDB, err := demoDatabase(ctx, c, d)
	if err != nil {
		return err
	}
	defer func() {
		if *keep {
			d.logf("kept the demo database: DATABASE_URL=%s", dbURL)
		}
		stopDB(*keep)
	}()
	if _, err := migrations.Migrate(ctx, dbURL); err != nil {
		return err
	}

	// 2. The simulator, with its files for the configuration.
	simulator, err := sim.New(sim.Options{Seed: *seed, Subscribers: *subscribers})
	if err != nil {
		return err
	}
	d.simulator = simulator
	if _, err := simulator.Start("127.0.0.1:0"); err != nil {
		return err
	}
	defer simulator.Close()
	dir, err := os.MkdirTemp("", "storesync-demo.")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if _, err := simulator.WriteFiles(dir); err != nil {
		return err
	}
	env := simulator.Env()
	env["DATABASE_URL"] = dbURL
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		return err
	}
	d.logf("simulator: %d customers at %s (Apple's production limits: statuses %g/s, history %g/s)",
		*subscribers, simulator.BaseURL(), appstore.DefaultRateLimit(appstore.EndpointStatuses, appstore.Production),
		appstore.DefaultRateLimit(appstore.EndpointHistory, appstore.Production))

	// 3. Workers and the webhook, in this process.
	pool, err := openPoolSized(ctx, cfg, 40)
	if err != nil {
		return err
	}
	defer pool.Close()
	d.pool = pool
	deps, err := buildDeps(ctx, cfg, pool)
	if err != nil {
		return err
	}
	deps.Now = simulator.Now
	deps.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	d.deps = deps
	client, err := jobs.NewRiverClient(deps, jobs.ClientOptions{Work: true})
	if err != nil {
		return err
	}
	d.river = client
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: jobs.NewHTTPHandler(deps, client, jobs.HTTPOptions{}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // Close below ends it
	defer srv.Close()
	if err := client.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = client.StopAndCancel(stopCtx)
	}()
	if err := simulator.SetWebhookURL("http://" + ln.Addr().String() + "/webhooks/appstore"); err != nil {
		return err
	}

	report := &demoReport{subscribers: *subscribers, silentByKind: map[string]int{}}
	steps := []func(context.Context) error{
		func(ctx context.Context) error { return d.migrate(ctx, report) },
		func(ctx context.Context) error { return d.live(ctx, report, *days, *dropShare) },
		func(ctx context.Context) error { return d.backfill(ctx, report) },
		func(ctx context.Context) error { return d.reconcile(ctx, report, *silent, cfg) },
	}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
	}
	mismatches, err := truthcheck.Compare(ctx, deps.Ledger, simulator.Truth())
	if err != nil {
		return err
	}
	report.mismatches = mismatches
	report.stats = simulator.Stats()
	report.elapsed = time.Since(d.started)
	report.write(c.stdout)
	if len(mismatches) > 0 {
		return fmt.Errorf("the ledger differs from the simulator's truth in %d places", len(mismatches))
	}
	return nil
}

// demoDatabase returns the URL of a new, empty database for the demo on
// DATABASE_URL's server or, when unset, on localpg's, and a function that
// drops it (unless kept) and stops what was started.
func demoDatabase(ctx context.Context, c *cli, d *demoRun) (string, func(keep bool), error) {
	name := fmt.Sprintf("storesync_demo_%d", time.Now().UnixNano()%1e9)
	var serverURL string
	var server *localpg.Server
	if u := c.getenv("DATABASE_URL"); u != "" {
		serverURL = u
	} else {
		var err error
		server, err = localpg.Find(ctx, d.logf)
		if err != nil {
			return "", nil, fmt.Errorf("finding a Postgres for the demo (set DATABASE_URL to use yours): %w", err)
		}
		serverURL = server.URL
	}
	cfg, err := pgx.ParseConfig(serverURL)
	if err != nil {
		return "", nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	dbURL := replaceDatabase(serverURL, name)
	d.logf("database: %s on %s:%d", name, cfg.Host, cfg.Port)
	stop := func(keep bool) {
		if !keep {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_ = migrations.DropDatabase(ctx, dbURL)
		}
		if server != nil && server.Private && !keep {
			_ = server.Stop()
		}
	}
	return dbURL, stop, nil
}

func replaceDatabase(serverURL, name string) string {
	s := &localpg.Server{URL: serverURL}
	return s.DatabaseURL(name)
}

// migrate imports every subscriber of the simulator from a generated file.
func (d *demoRun) migrate(ctx context.Context, r *demoReport) error {
	var file bytes.Buffer
	file.WriteString("original_transaction_id,app_account_token,customer_id\n")
	truth := d.simulator.Truth()
	for i, t := range truth {
		fmt.Fprintf(&file, "%s,%s,customer-%d\n", t.OriginalTransactionID, t.AppAccountToken, i+1)
	}
	im, err := jobs.NewImporter(jobs.ImporterOptions{Pool: d.pool, Ledger: d.deps.Ledger, River: d.river})
	if err != nil {
		return err
	}
	runID, counts, err := im.Run(ctx, "demo", &file)
	if err != nil {
		return err
	}
	d.logf("1/4 migration: %d subscriptions enqueued (one import job each)", counts.Enqueued)
	start := time.Now()
	for {
		p, err := d.deps.Ledger.ImportProgressOf(ctx, d.pool, runID)
		if err != nil {
			return err
		}
		done := p.Done + p.Failed
		rate := float64(done) / time.Since(start).Seconds()
		eta := "?"
		if rate > 0 {
			eta = (time.Duration(float64(p.Pending)/rate) * time.Second).Round(time.Second).String()
		}
		d.logf("    imported %d/%d (%.0f/s, ETA %s, failed %d, Apple 429s %d)", done, p.Total, rate, eta, p.Failed, d.simulator.Stats().Total().RateLimited)
		if p.Finished() {
			r.imported, r.importFailed, r.migrateTime = p.Done, p.Failed, time.Since(start)
			r.migrateStats = d.simulator.Stats()
			break
		}
		if err := sleepCtx(ctx, 2*time.Second); err != nil {
			return err
		}
	}
	return d.waitIdle(ctx, "migration")
}

// live runs the simulated clock while notifications arrive by webhook,
// dropping a share of the deliveries.
func (d *demoRun) live(ctx context.Context, r *demoReport, days int, dropShare float64) error {
	if err := d.simulator.SetDropShare(dropShare); err != nil {
		return err
	}
	for day := 1; day <= days; day++ {
		rep := d.simulator.Advance(24 * time.Hour)
		if err := d.simulator.Flush(ctx); err != nil {
			return err
		}
		r.liveSent += rep.Notifications
		d.logf("2/4 live: simulated day %d (%s): %d notifications sent, %d deliveries dropped so far",
			day, rep.To.Format("2006-01-02"), rep.Notifications, d.simulator.Stats().Webhook.Dropped)
	}
	if err := d.simulator.SetDropShare(0); err != nil {
		return err
	}
	if err := d.waitIdle(ctx, "live notifications"); err != nil {
		return err
	}
	r.dropped = d.simulator.Stats().Webhook.Dropped
	n, err := d.deps.Ledger.CountNotifications(ctx, ledger.SourceWebhook)
	r.webhook = n
	return err
}

// backfill recovers the dropped notifications from notification history.
func (d *demoRun) backfill(ctx context.Context, r *demoReport) error {
	now := d.simulator.Now()
	_, notes, err := jobs.EnqueueBackfill(ctx, d.river, jobs.BackfillRequest{
		Environments: d.deps.SweptEnvironments(), Since: now.Add(-30 * 24 * time.Hour), Until: now, Now: now,
	})
	if err != nil {
		return err
	}
	for _, n := range notes {
		d.logf("    note: %s", n)
	}
	if err := d.waitIdle(ctx, "backfill"); err != nil {
		return err
	}
	n, err := d.deps.Ledger.CountNotifications(ctx, ledger.SourceBackfill)
	r.backfilled = n
	d.logf("3/4 backfill: %d notifications recovered from notification history", n)
	return err
}

// reconcile changes subscriptions silently, then runs a reconciliation.
func (d *demoRun) reconcile(ctx context.Context, r *demoReport, silent int, cfg *config.Config) error {
	truth := d.simulator.Truth()
	sort.Slice(truth, func(i, j int) bool { return truth[i].OriginalTransactionID < truth[j].OriginalTransactionID })
	kinds := sim.MutationKinds
	changed := 0
	for i := 0; i < len(truth) && changed < silent; i += 7 {
		kind := kinds[changed%len(kinds)]
		if err := d.simulator.Mutate(truth[i].OriginalTransactionID, kind); err == nil {
			changed++
			r.silentByKind[string(kind)]++
		}
	}
	r.silent = changed
	d.logf("4/4 reconciliation: %d subscriptions changed silently at Apple; reconciling", changed)
	key := jobs.ManualRunKey(d.simulator.Now())
	args := jobs.ReconcileArgs{RunKey: key, CallCap: reconcileCallCap(cfg), FullCycle: 24 * time.Hour}
	if _, err := d.river.Insert(ctx, args, nil); err != nil {
		return err
	}
	if err := d.waitIdle(ctx, "reconciliation"); err != nil {
		return err
	}
	run, err := d.deps.Ledger.ReconcileRunByKey(ctx, d.pool, key)
	if err != nil {
		return err
	}
	r.run = run
	return nil
}

// waitIdle waits until no job is queued, running or waiting to retry.
func (d *demoRun) waitIdle(ctx context.Context, what string) error {
	deadline := time.Now().Add(10 * time.Minute)
	for {
		pending, err := d.deps.Ledger.UnfinishedJobs(ctx)
		if err != nil {
			return err
		}
		if pending == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %d jobs still pending after 10 minutes", what, pending)
		}
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

type demoReport struct {
	subscribers            int
	imported, importFailed int64
	migrateTime, elapsed   time.Duration
	liveSent               int
	dropped, webhook       int64
	backfilled             int64
	silent                 int
	silentByKind           map[string]int
	run                    *ledger.ReconcileRun
	mismatches             []truthcheck.Mismatch
	stats, migrateStats    sim.Stats
}

func (r *demoReport) write(w io.Writer) {
	fmt.Fprintln(w, "\n== storesync demo report")
	fmt.Fprintf(w, "subscribers imported: %d of %d simulated customers' subscriptions (%d failed) in %s\n",
		r.imported, r.imported+r.importFailed, r.importFailed, r.migrateTime.Round(time.Second))
	total := r.stats.Total()
	fmt.Fprintf(w, "Apple calls: %d, answered 429: %d (%.2f%%)\n", total.Requests, total.RateLimited, pct(total.RateLimited, total.Requests))
	for _, e := range r.stats.Endpoints {
		if e.Requests > 0 {
			fmt.Fprintf(w, "  %-10s %-22s %6d calls, %d×429\n", e.Environment, e.Endpoint, e.Requests, e.RateLimited)
		}
	}
	if r.migrateTime > 0 {
		st := r.migrateStats.Endpoint(appstore.Production, appstore.EndpointStatuses).Requests
		hi := r.migrateStats.Endpoint(appstore.Production, appstore.EndpointHistory).Requests
		fmt.Fprintf(w, "budget use during migration: statuses %.1f/s, history %.1f/s (limit %g/s each)\n",
			float64(st)/r.migrateTime.Seconds(), float64(hi)/r.migrateTime.Seconds(),
			appstore.DefaultRateLimit(appstore.EndpointHistory, appstore.Production))
	}
	fmt.Fprintf(w, "notifications: %d sent live, %d deliveries dropped, %d received by webhook, %d recovered by backfill\n",
		r.liveSent, r.dropped, r.webhook, r.backfilled)
	fmt.Fprintf(w, "silent changes at Apple: %d (%s)\n", r.silent, kindsText(r.silentByKind))
	if r.run != nil {
		writeReconcileSummary(w, r.run)
	}
	if len(r.mismatches) == 0 {
		fmt.Fprintf(w, "ledger equals the simulator's truth: yes (every subscription)\n")
	} else {
		fmt.Fprintf(w, "ledger equals the simulator's truth: NO, %d differences:\n", len(r.mismatches))
		for i, m := range r.mismatches {
			if i == 20 {
				fmt.Fprintf(w, "  … %d more\n", len(r.mismatches)-20)
				break
			}
			fmt.Fprintf(w, "  %s\n", m)
		}
	}
	fmt.Fprintf(w, "demo took %s\n", r.elapsed.Round(time.Second))
}

func kindsText(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func pct(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}
