package jobs

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/jobs/truthcheck"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

// BenchmarkMigrateServeProcesses is the budget measurement: a
// `storesync sim` process with 2,000 customers and Apple's default limits
// (L = 50 requests/s per endpoint in production), and 1, 2 or 4
// `storesync serve` processes on one database migrating all of them after
// `storesync import`. It reports the busiest endpoint's use as a share of
// L in the steady state — after the first 5% of its requests, while jobs
// were still waiting in the queue — (goal ≥ 97%), the share of
// requests answered 429 (goal ≤ 0.1%), and the calls made against the
// minimum (statuses answers per account, history pages per
// Σ ceil(transactions/20)), then checks the ledger equals the truth.
// Run it with `make bench-migrate` (a few minutes).
func BenchmarkMigrateServeProcesses(b *testing.B) {
	bin := buildStoresync(b)
	for _, procs := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("procs=%d", procs), func(b *testing.B) {
			for range b.N {
				m := measureMigration(b, bin, procs, 2000)
				b.ReportMetric(m.utilization*100, "%L-busiest")
				b.ReportMetric(m.share429*100, "%429")
				b.ReportMetric(m.statusesPerAccount, "statuses/account")
				b.ReportMetric(m.statusesPerSubscriber, "statuses/subscriber")
				b.ReportMetric(m.callsPerSubscriber, "calls/subscriber")
				b.ReportMetric(m.pagesPerNeeded, "pages/needed")
				b.ReportMetric(m.seconds, "s")
				b.ReportMetric(float64(m.maxGranted10s)/(10*m.limit)*100, "%L-max-10s-granted")
				b.ReportMetric(m.endpointUse[appstore.EndpointStatuses]*100, "%L-statuses")
				b.ReportMetric(m.endpointUse[appstore.EndpointHistory]*100, "%L-history")
				b.ReportMetric(m.currentStateSeconds, "s-current-state")
				b.Logf("%d serve processes: statuses at %.1f%% and history at %.1f%% of L while each had work; current state after %.0fs, full history after %.0fs",
					procs, m.endpointUse[appstore.EndpointStatuses]*100, m.endpointUse[appstore.EndpointHistory]*100, m.currentStateSeconds, m.seconds)
				b.Logf("%d serve processes: busiest %s at %.1f%% of %g/s over %.0fs (budget granted at most %d in 10 s); %d of %d requests answered 429 %v; %d statuses answers for %d accounts; %d history pages for %d needed",
					procs, m.busiest, m.utilization*100, m.limit, m.window, m.maxGranted10s, m.throttled, m.requests, m.throttledBy, m.okStatuses, m.accounts, m.pages, m.neededPages)
				b.Logf("%d serve processes: %.3f statuses answers and %.3f Apple calls per subscriber", procs, m.statusesPerSubscriber, m.callsPerSubscriber)
			}
		})
	}
}

type migrationMeasure struct {
	busiest                string
	limit, window, seconds float64
	utilization, share429  float64
	requests, throttled    int64
	okStatuses, pages      int64
	accounts, neededPages  int
	statusesPerAccount     float64
	// Apple calls (statuses answers; every request) per subscription of
	// the file: the import's cost per subscriber.
	statusesPerSubscriber, callsPerSubscriber float64
	pagesPerNeeded                            float64
	throttledBy                               []string // per endpoint with 429s
	maxGranted10s                             int64    // the budget's grants to the busiest endpoint in its busiest 10 s
	// Per production endpoint with work (statuses, history): its use of L
	// between 5% and 95% of its own requests, i.e. while it had work.
	endpointUse map[appstore.Endpoint]float64
	// currentStateSeconds is when the last statuses answer came (every
	// subscription's current state known); seconds is the full history.
	currentStateSeconds float64
}

// measureMigration runs one migration of subscribers customers with procs
// serve processes.
func measureMigration(b *testing.B, bin string, procs, subscribers int) migrationMeasure {
	ctx := context.Background()
	const limit = 50.0 // Apple's production limit: the simulator's and storesync's default
	base, env := startSimProcess(b, bin, subscribers)
	dbURL := migrationstest.NewDatabaseURL(b)
	env = append(env, "DATABASE_URL="+dbURL, "STORESYNC_LISTEN=127.0.0.1:0")

	var truths []sim.SubscriptionTruth
	for _, e := range []string{"production", "sandbox"} {
		var part []sim.SubscriptionTruth
		getJSON(b, base+"/sim/truth?env="+e, &part)
		truths = append(truths, part...)
	}
	accounts := map[string]bool{}
	needed := 0
	var csv strings.Builder
	csv.WriteString("original_transaction_id,app_account_token,customer_id\n")
	for _, t := range truths {
		accounts[t.AccountID] = true
		needed += (t.TransactionCount + 19) / 20
		fmt.Fprintf(&csv, "%s,%s,%s\n", t.OriginalTransactionID, t.AppAccountToken, t.AccountID)
	}
	file := filepath.Join(b.TempDir(), "subscribers.csv")
	if err := os.WriteFile(file, []byte(csv.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	runCmd(b, bin, env, "import", file)

	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	start := time.Now()
	var serves []*exec.Cmd
	for i := range procs {
		args := []string{"serve", "--bulk-workers", "60", "--history-workers", "60", "--no-schedules"}
		if dir := os.Getenv("STORESYNC_BENCH_PROFILE_DIR"); dir != "" {
			args = append(args, "--cpu-profile", filepath.Join(dir, fmt.Sprintf("migrate-procs%d-serve%d.pprof", procs, i)))
		}
		serves = append(serves, startProcess(b, bin, env, args...))
	}

	type sample struct {
		at        time.Time
		stats     sim.Stats
		available int64
	}
	var samples []sample
	deadline := time.Now().Add(15 * time.Minute)
	for {
		var s sample
		getJSON(b, base+"/sim/stats", &s.stats)
		s.at = time.Now()
		var pending int64
		if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM river_job WHERE kind = 'import' AND state = 'available'),
			(SELECT count(*) FROM import_rows WHERE state = 'pending')`).Scan(&s.available, &pending); err != nil {
			b.Fatal(err)
		}
		samples = append(samples, s)
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("migration unfinished after 15 minutes: %d rows pending", pending)
		}
		time.Sleep(250 * time.Millisecond)
	}
	m := migrationMeasure{limit: limit, accounts: len(accounts), neededPages: needed, seconds: time.Since(start).Seconds()}
	for _, cmd := range serves {
		_ = cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, cmd := range serves {
		_ = cmd.Wait()
	}

	final := samples[len(samples)-1].stats
	var busiest sim.EndpointStats
	for _, e := range final.Endpoints {
		if e.Environment == appstore.Production && e.Requests > busiest.Requests {
			busiest = e
		}
	}
	m.busiest = string(busiest.Endpoint)
	count := func(s sim.Stats) int64 { return s.Endpoint(appstore.Production, busiest.Endpoint).Requests }
	// Steady state: from when 5% of the busiest endpoint's requests were
	// sent (the jobs have passed their statuses step) until no job waited in
	// the queue any more (the rest is the tail of the last jobs).
	from, to := -1, -1
	for i, s := range samples {
		if from < 0 && count(s.stats) >= busiest.Requests/20 {
			from = i
		}
		if from >= 0 && s.available == 0 && i > from {
			to = i
			break
		}
	}
	m.window = samples[to].at.Sub(samples[from].at).Seconds()
	m.utilization = float64(count(samples[to].stats)-count(samples[from].stats)) / (limit * m.window)
	m.endpointUse = map[appstore.Endpoint]float64{}
	for _, ep := range []appstore.Endpoint{appstore.EndpointStatuses, appstore.EndpointHistory} {
		n := func(s sample) int64 { return s.stats.Endpoint(appstore.Production, ep).Requests }
		total := n(samples[len(samples)-1])
		lo, hi := -1, -1
		for i, s := range samples {
			if lo < 0 && n(s) >= total/20 {
				lo = i
			}
			if hi < 0 && n(s) >= total*19/20 {
				hi = i
			}
			if n(s) == total && ep == appstore.EndpointStatuses && m.currentStateSeconds == 0 {
				m.currentStateSeconds = s.at.Sub(start).Seconds()
			}
		}
		if lo >= 0 && hi > lo {
			m.endpointUse[ep] = float64(n(samples[hi])-n(samples[lo])) / (limit * samples[hi].at.Sub(samples[lo].at).Seconds())
		}
	}
	for _, e := range final.Endpoints {
		if e.RateLimited > 0 {
			m.throttledBy = append(m.throttledBy, fmt.Sprintf("%s %s: %d of %d", e.Environment, e.Endpoint, e.RateLimited, e.Requests))
		}
	}
	total := final.Total()
	m.requests, m.throttled = total.Requests, total.RateLimited
	m.share429 = float64(total.RateLimited) / float64(max(total.Requests, 1))
	m.okStatuses = final.Endpoint(appstore.Production, appstore.EndpointStatuses).ByStatus[200] +
		final.Endpoint(appstore.Sandbox, appstore.EndpointStatuses).ByStatus[200]
	m.pages = final.Endpoint(appstore.Production, appstore.EndpointHistory).Requests +
		final.Endpoint(appstore.Sandbox, appstore.EndpointHistory).Requests
	m.statusesPerAccount = float64(m.okStatuses) / float64(m.accounts)
	m.statusesPerSubscriber = float64(m.okStatuses) / float64(len(truths))
	m.callsPerSubscriber = float64(total.Requests) / float64(len(truths))
	m.pagesPerNeeded = float64(m.pages) / float64(m.neededPages)

	// What the shared budget granted, per second, in its busiest 10 s.
	if err := pool.QueryRow(ctx, `SELECT COALESCE(max(w), 0) FROM (
			SELECT sum(granted) OVER (ORDER BY second RANGE BETWEEN 9 PRECEDING AND CURRENT ROW) AS w
			FROM apple_budget_usage WHERE environment = 'Production' AND endpoint = $1) x`, m.busiest).Scan(&m.maxGranted10s); err != nil {
		b.Fatal(err)
	}

	diffs, err := truthcheck.Compare(ctx, ledger.New(pool), truths)
	if err != nil {
		b.Fatal(err)
	}
	if len(diffs) > 0 {
		b.Fatalf("ledger differs from the truth in %d fields, first: %s", len(diffs), diffs[0])
	}
	return m
}

// startSimProcess runs `storesync sim` and returns its base URL and the
// environment it prints for storesync.
func startSimProcess(b *testing.B, bin string, subscribers int) (string, []string) {
	cmd := exec.Command(bin, "sim", "--subscribers", fmt.Sprint(subscribers), "--listen", "127.0.0.1:0", "--dir", b.TempDir())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	var base string
	var env []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "base URL:"); ok {
			base = strings.TrimSpace(v)
		}
		if kv, ok := strings.CutPrefix(line, "export "); ok {
			k, v, _ := strings.Cut(kv, "=")
			env = append(env, k+"="+strings.Trim(v, "'"))
		}
		if strings.HasPrefix(line, "Serving until interrupted") {
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	if base == "" {
		b.Fatal("storesync sim printed no base URL")
	}
	return base, env
}

func startProcess(b *testing.B, bin string, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

func runCmd(b *testing.B, bin string, env []string, args ...string) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("storesync %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func getJSON(b *testing.B, url string, v any) {
	resp, err := http.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		b.Fatalf("GET %s: %v", url, err)
	}
}
