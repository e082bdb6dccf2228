package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/config"
	"github.com/storesync/storesync/jobs"
	"github.com/storesync/storesync/jobs/demo"
	"github.com/storesync/storesync/jobs/httpapi"
	"github.com/storesync/storesync/jobs/opsui"
	"github.com/storesync/storesync/ledger"
)

// demoCommand is `storesync demo`; main.go lists it in commands.
func demoCommand() *command {
	return &command{
		name:    "demo",
		summary: "run the whole product against the App Store simulator and print a report (the default)",
		usage: `storesync demo [--subscribers N] [--seed S] [--days D] [--drop-share F] [--silent-changes N] [--keep] [--serve-for D]

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
  --keep              keep the demo database and print its URL
  --serve-for D       after the report, keep serving the ops console for D
                      (e.g. 10m; Ctrl-C stops early); it prints the URL
                      and a login token made up for this demo`,
		run: runDemo,
	}
}

func runDemo(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	subscribers := fs.Int("subscribers", 2000, "")
	seed := fs.Int64("seed", 1, "")
	days := fs.Int("days", 3, "")
	dropShare := fs.Float64("drop-share", 0.3, "")
	silent := fs.Int("silent-changes", 30, "")
	keep := fs.Bool("keep", false, "")
	serveFor := fs.Duration("serve-for", 0, "")
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
	case *serveFor < 0:
		return usagef("--serve-for %s: use a duration such as 10m", *serveFor)
	}
	// The demo's console login: a token made up for this run and printed,
	// since the demo's database and server exist only for it.
	token := randomDemoToken()
	started := time.Now()
	held := false // the report was printed by Hold
	logf := func(elapsed time.Duration, line string) {
		fmt.Fprintf(c.stdout, "[%5.1fs] %s\n", elapsed.Seconds(), line)
	}
	report, err := demo.Run(ctx, demo.Options{
		Subscribers: *subscribers, Seed: *seed, Days: *days, DropShare: *dropShare, SilentChanges: *silent,
		Keep: *keep, ServerURL: c.getenv("DATABASE_URL"), Log: logf,
		Wiring: demo.Wiring{Open: openWorkers, Handler: func(deps *jobs.Deps, client *river.Client[pgx.Tx]) http.Handler {
			return demoHandler(ctx, deps, client, token)
		}, ReconcileCallCap: reconcileCallCap},
		Hold: func(ctx context.Context, baseURL string, rep *demo.Report) {
			if *serveFor <= 0 {
				fmt.Fprintf(c.stdout, "ops console (while the demo ran): %s/ops/ — `storesync demo --serve-for 10m` keeps it up after the report\n", baseURL)
				return
			}
			writeDemoReport(c.stdout, rep)
			held = true
			fmt.Fprintf(c.stdout, "\nops console: %s/ops/ (log in with token %s); serving for %s, Ctrl-C stops\n", baseURL, token, *serveFor)
			t := time.NewTimer(*serveFor)
			defer t.Stop()
			select {
			case <-ctx.Done():
			case <-t.C:
			}
		},
	})
	if err == nil && !held {
		writeDemoReport(c.stdout, report)
	}
	if *keep && report.DatabaseURL != "" {
		logf(time.Since(started), "kept the demo database: DATABASE_URL="+report.DatabaseURL)
	}
	if err != nil {
		return err
	}
	if len(report.Mismatches) > 0 {
		return fmt.Errorf("the ledger differs from the simulator's truth in %d places", len(report.Mismatches))
	}
	return nil
}

// openWorkers opens a pool of at least minConns connections and builds the
// workers' dependencies over it, as serve does.
func openWorkers(ctx context.Context, cfg *config.Config, minConns int32) (*pgxpool.Pool, *jobs.Deps, error) {
	// The demo runs workers, webhook and simulator in one process against
	// a throwaway database of its own: it keeps its sizing (at least
	// minConns), not serve's STORESYNC_DB_MAX_CONNS split.
	pool, err := openPoolMax(ctx, cfg, func(pgxDefault int32) int32 { return max(pgxDefault, minConns) })
	if err != nil {
		return nil, nil, err
	}
	deps, err := buildDeps(ctx, cfg, pool)
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return pool, deps, nil
}

// demoHandler is the HTTP API without the admin endpoints, behind the ops
// console (logged in with token). Without a console (it fails to build)
// the demo still runs, on the API alone.
func demoHandler(ctx context.Context, deps *jobs.Deps, client *river.Client[pgx.Tx], token string) http.Handler {
	api := httpHandler(deps, client)
	console, err := opsui.New(ctx, deps, client, opsui.Options{AdminToken: token})
	if err != nil {
		return api
	}
	return console.Wrap(api)
}

func randomDemoToken() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "demo-" + hex.EncodeToString(b)
}

// httpHandler is the HTTP API without the admin endpoints.
func httpHandler(deps *jobs.Deps, client *river.Client[pgx.Tx]) http.Handler {
	return httpapi.NewHandler(deps, client, httpapi.Options{})
}

// writeDemoReport prints the demo's report.
func writeDemoReport(w io.Writer, r *demo.Report) {
	fmt.Fprintln(w, "\n== storesync demo report")
	fmt.Fprintf(w, "subscribers imported: %d of %d simulated customers' subscriptions (%d failed) in %s\n",
		r.Imported, r.Imported+r.ImportFailed, r.ImportFailed, r.MigrateTime.Round(time.Second))
	total := r.Stats.Total()
	fmt.Fprintf(w, "Apple calls: %d, answered 429: %d (%.2f%%)\n", total.Requests, total.RateLimited, pct(total.RateLimited, total.Requests))
	for _, e := range r.Stats.Endpoints {
		if e.Requests > 0 {
			fmt.Fprintf(w, "  %-10s %-22s %6d calls, %d×429\n", e.Environment, e.Endpoint, e.Requests, e.RateLimited)
		}
	}
	if r.MigrateTime > 0 {
		st := r.MigrateStats.Endpoint(appstore.Production, appstore.EndpointStatuses).Requests
		hi := r.MigrateStats.Endpoint(appstore.Production, appstore.EndpointHistory).Requests
		fmt.Fprintf(w, "budget use during migration: statuses %.1f/s, history %.1f/s (limit %g/s each)\n",
			float64(st)/r.MigrateTime.Seconds(), float64(hi)/r.MigrateTime.Seconds(),
			appstore.DefaultRateLimit(appstore.EndpointHistory, appstore.Production))
	}
	fmt.Fprintf(w, "notifications: %d sent live, %d deliveries dropped, %d received by webhook, %d recovered by backfill\n",
		r.LiveSent, r.Dropped, r.Webhook, r.Backfilled)
	writeNotificationTypes(w, r.ByType)
	fmt.Fprintf(w, "silent changes at Apple: %d (%s)\n", r.Silent, kindsText(r.SilentByKind))
	if r.Reconcile != nil {
		writeReconcileSummary(w, r.Reconcile)
	}
	if len(r.Mismatches) == 0 {
		fmt.Fprintf(w, "ledger equals the simulator's truth: yes (every subscription)\n")
	} else {
		fmt.Fprintf(w, "ledger equals the simulator's truth: NO, %d differences:\n", len(r.Mismatches))
		for i, m := range r.Mismatches {
			if i == 20 {
				fmt.Fprintf(w, "  … %d more\n", len(r.Mismatches)-20)
				break
			}
			fmt.Fprintf(w, "  %s\n", m)
		}
	}
	fmt.Fprintf(w, "demo took %s\n", r.Elapsed.Round(time.Second))
}

// writeNotificationTypes prints the notifications received per type, by
// webhook and by backfill; the other column (the reconciliation's sweep)
// only when some type has one.
func writeNotificationTypes(w io.Writer, counts []ledger.NotificationTypeCount) {
	if len(counts) == 0 {
		fmt.Fprintln(w, "notifications received per type: none")
		return
	}
	other := false
	for _, c := range counts {
		other = other || c.Other > 0
	}
	fmt.Fprintln(w, "notifications received per type:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	header := "  type\twebhook\tbackfill"
	if other {
		header += "\tother"
	}
	fmt.Fprintln(tw, header)
	for _, c := range counts {
		fmt.Fprintf(tw, "  %s\t%d\t%d", c.Type, c.Webhook, c.Backfill)
		if other {
			fmt.Fprintf(tw, "\t%d", c.Other)
		}
		fmt.Fprintln(tw)
	}
	_ = tw.Flush()
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
