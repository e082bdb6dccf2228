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
	"strconv"
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
// `storesync sim` process with STORESYNC_BENCH_SUBSCRIBERS customers
// (default 2,000) and Apple's default limits (L = 50 requests/s per
// endpoint in production), and 1, 2 or 4 `storesync serve` processes on one
// database migrating all of them after `storesync import`, from either
// import file a company may hold:
//
//   - source=ids: original_transaction_id,app_account_token,customer_id
//     (every subscription of the simulator's truth);
//   - source=receipts: the simulator's GET /sim/receipts
//     (app_receipt,customer_id,app_account_token, one receipt per
//     customer), so each receipt first costs a Get Transaction Info call
//     (the import_receipt job) before the usual import.
//
// Each sub-benchmark (source=S/procs=N) reports, per production endpoint
// with work (statuses, history, and transaction for receipts), its use of
// L between 5% and 95% of its own requests (%L-statuses, %L-history,
// %L-transaction; goal ≥ 97%); the busiest endpoint's use in the steady
// state — after the first 5% of its requests, while import jobs were still
// waiting in the queue — (%L-busiest); the share of requests answered 429
// (goal ≤ 0.1%); Apple calls per subscriber (calls/subscriber,
// statuses/subscriber) and against the minimum (statuses answers per
// account, history pages per Σ ceil(transactions/20)); and the time to
// every subscription's current state (s-current-state) against the time
// to full history (s). It then checks the ledger equals the truth.
// Run it with `make bench-migrate` (several minutes); a quick smoke run:
//
//	STORESYNC_BENCH_SUBSCRIBERS=300 .ci/with-postgres go test -run '^$' -bench 'BenchmarkMigrateServeProcesses/source=receipts/procs=1' -benchtime 1x ./jobs/
func BenchmarkMigrateServeProcesses(b *testing.B) {
	bin := buildStoresync(b)
	subscribers := benchSubscribers(b)
	for _, source := range []migrationSource{sourceIDs, sourceReceipts} {
		b.Run("source="+string(source), func(b *testing.B) {
			for _, procs := range []int{1, 2, 4} {
				b.Run(fmt.Sprintf("procs=%d", procs), func(b *testing.B) {
					for range b.N {
						m := measureMigration(b, bin, source, procs, subscribers)
						m.report(b, source, procs)
					}
				})
			}
		})
	}
}

// migrationSource is the kind of import file a migration starts from.
type migrationSource string

const (
	sourceIDs      migrationSource = "ids"
	sourceReceipts migrationSource = "receipts"
)

// endpointsWithWork are the production endpoints a migration from source
// spends its budget on: the ones whose use of L is reported.
func (s migrationSource) endpointsWithWork() []appstore.Endpoint {
	eps := []appstore.Endpoint{appstore.EndpointStatuses, appstore.EndpointHistory}
	if s == sourceReceipts {
		eps = append(eps, appstore.EndpointTransaction)
	}
	return eps
}

// queuedKinds are the job kinds whose available jobs mean the statuses
// phase still has work waiting (the steady-state window of %L-busiest):
// for ids the import jobs, as the earlier figures were measured; for
// receipts also the import_receipt jobs that enqueue them.
func (s migrationSource) queuedKinds() []string {
	if s == sourceReceipts {
		return []string{"import_receipt", "import"}
	}
	return []string{"import"}
}

// benchSubscribers is STORESYNC_BENCH_SUBSCRIBERS (default 2,000): the
// simulator's customers, smaller for a quick smoke run.
func benchSubscribers(b *testing.B) int {
	const name = "STORESYNC_BENCH_SUBSCRIBERS"
	v := os.Getenv(name)
	if v == "" {
		return 2000
	}
	n, err := strconv.Atoi(strings.ReplaceAll(v, "_", ""))
	if err != nil || n < 1 || n > sim.MaxSubscribers {
		b.Fatalf("%s=%q is not a number of customers from 1 to %d: set it like %s=300 (or unset it for 2,000)", name, v, sim.MaxSubscribers, name)
	}
	return n
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
	// the truth: the import's cost per subscriber.
	statusesPerSubscriber, callsPerSubscriber float64
	pagesPerNeeded                            float64
	throttledBy                               []string // per endpoint with 429s
	maxGranted10s                             int64    // the budget's grants to the busiest endpoint in its busiest 10 s
	// Per production endpoint with work (statuses, history; transaction
	// for receipts): its use of L between 5% and 95% of its own requests,
	// i.e. while it had work, and its requests.
	endpointUse      map[appstore.Endpoint]float64
	endpointRequests map[appstore.Endpoint]int64
	// currentStateSeconds is when the last statuses answer came (every
	// subscription's current state known); seconds is the full history.
	currentStateSeconds float64
}

// report prints m as the benchmark's metrics and log lines. The metric
// names of source=ids are those of the earlier ids-only benchmark, so its
// figures compare.
func (m migrationMeasure) report(b *testing.B, source migrationSource, procs int) {
	b.ReportMetric(m.utilization*100, "%L-busiest")
	b.ReportMetric(m.share429*100, "%429")
	b.ReportMetric(m.statusesPerAccount, "statuses/account")
	b.ReportMetric(m.statusesPerSubscriber, "statuses/subscriber")
	b.ReportMetric(m.callsPerSubscriber, "calls/subscriber")
	b.ReportMetric(m.pagesPerNeeded, "pages/needed")
	b.ReportMetric(m.seconds, "s")
	b.ReportMetric(float64(m.maxGranted10s)/(10*m.limit)*100, "%L-max-10s-granted")
	var use []string
	for _, ep := range source.endpointsWithWork() {
		b.ReportMetric(m.endpointUse[ep]*100, "%L-"+string(ep))
		use = append(use, fmt.Sprintf("%s at %.1f%% (%d requests)", ep, m.endpointUse[ep]*100, m.endpointRequests[ep]))
	}
	b.ReportMetric(m.currentStateSeconds, "s-current-state")
	// The floors: no migration can be faster than its busiest endpoint's
	// requests at L, for current state (statuses, and the receipts that
	// feed them) and for the full history (every endpoint).
	floor := func(eps ...appstore.Endpoint) float64 {
		var most int64
		for _, ep := range eps {
			most = max(most, m.endpointRequests[ep])
		}
		return float64(most) / m.limit
	}
	b.Logf("%s, %d serve processes: %s of L while each had work; current state after %.0fs (floor %.0fs), full history after %.0fs (floor %.0fs)",
		source, procs, strings.Join(use, ", "), m.currentStateSeconds, floor(appstore.EndpointStatuses, appstore.EndpointTransaction),
		m.seconds, floor(source.endpointsWithWork()...))
	b.Logf("%s, %d serve processes: busiest %s at %.1f%% of %g/s over %.0fs (budget granted at most %d in 10 s); %d of %d requests answered 429 %v; %d statuses answers for %d accounts; %d history pages for %d needed",
		source, procs, m.busiest, m.utilization*100, m.limit, m.window, m.maxGranted10s, m.throttled, m.requests, m.throttledBy, m.okStatuses, m.accounts, m.pages, m.neededPages)
	b.Logf("%s, %d serve processes: %.3f statuses answers and %.3f Apple calls per subscriber", source, procs, m.statusesPerSubscriber, m.callsPerSubscriber)
}

// measureMigration runs one migration of subscribers customers from source
// with procs serve processes.
func measureMigration(b *testing.B, bin string, source migrationSource, procs, subscribers int) migrationMeasure {
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
	importFile := []byte(csv.String())
	if source == sourceReceipts {
		// What a company that used verifyReceipt kept: one app receipt per
		// customer, naming all of its subscriptions.
		importFile = getBody(b, base+"/sim/receipts?env=all")
	}
	file := filepath.Join(b.TempDir(), "subscribers.csv")
	if err := os.WriteFile(file, importFile, 0o600); err != nil {
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
		args := []string{"serve", "--no-schedules"} // the default workers, as an operator runs it
		if dir := os.Getenv("STORESYNC_BENCH_PROFILE_DIR"); dir != "" {
			args = append(args, "--cpu-profile", filepath.Join(dir, fmt.Sprintf("migrate-%s-procs%d-serve%d.pprof", source, procs, i)))
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
		// Done when no import row waits and no job of the migration is left
		// to run: receipts become import rows only once their job has asked
		// Apple, and the history of a subscription found beside an imported
		// one (statuses name the whole account) has a job but no row.
		var pending, unfinished int64
		if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM river_job WHERE kind = ANY($1) AND state = 'available'),
			(SELECT count(*) FROM import_rows WHERE state = 'pending'),
			(SELECT count(*) FROM river_job WHERE kind IN ('import_receipt', 'import', 'import_history')
				AND state NOT IN ('completed', 'cancelled', 'discarded'))`,
			source.queuedKinds()).Scan(&s.available, &pending, &unfinished); err != nil {
			b.Fatal(err)
		}
		samples = append(samples, s)
		if pending == 0 && unfinished == 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("migration unfinished after 15 minutes: %d rows pending, %d jobs unfinished", pending, unfinished)
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
	if from >= 0 && to > from {
		m.window = samples[to].at.Sub(samples[from].at).Seconds()
		m.utilization = float64(count(samples[to].stats)-count(samples[from].stats)) / (limit * m.window)
	}
	m.endpointUse = map[appstore.Endpoint]float64{}
	m.endpointRequests = map[appstore.Endpoint]int64{}
	for _, ep := range source.endpointsWithWork() {
		n := func(s sample) int64 { return s.stats.Endpoint(appstore.Production, ep).Requests }
		total := n(samples[len(samples)-1])
		m.endpointRequests[ep] = total
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

// getBody returns the body of a 200 answer to GET url.
func getBody(b *testing.B, url string) []byte {
	resp, err := http.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("GET %s: %s, %v", url, resp.Status, err)
	}
	return body
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
