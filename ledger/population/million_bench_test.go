package population_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/config"
	"github.com/storesync/storesync/jobs"
	"github.com/storesync/storesync/jobs/httpapi"
	"github.com/storesync/storesync/jobs/opsui"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/ledger/population"
	"github.com/storesync/storesync/ledger/population/populationtest"
)

const (
	benchReadToken  = "bench-read-token-0123456789abcdef"
	benchAdminToken = "bench-admin-token-0123456789abcdef"
	// lookupClients is issue 16's concurrency for entitlement lookups.
	lookupClients = 64
)

// benchEntitlements grants "pro" for the monthly products and "pro" and
// "premium" for premium, in every environment.
const benchEntitlements = `{"products": [
	{"productId": "com.example.monthly", "entitlements": ["pro"]},
	{"productId": "com.example.monthly.premium", "entitlements": ["pro", "premium"]},
	{"productId": "com.example.yearly", "entitlements": ["pro"]}]}`

// BenchmarkMillion builds a ledger of STORESYNC_BENCH_SUBSCRIBERS
// subscriptions (default 1,000,000) with ledger/population and prints the
// figures of issues 16–18 on it, one sub-benchmark each: generation,
// bytes per subscriber/transaction/notification, `storesync status` and
// `storesync show` (the built binary, as an operator runs it), the
// reconcile selection, entitlement lookups at 64 clients over HTTP against
// their ceilings in the same run, and the ops console's pages. Each
// request-path measure also reports seq-scans: full scans of the ledger's
// big tables it caused (it should be 0).
//
//	make bench-million    (or, smaller:)
//	STORESYNC_BENCH_SUBSCRIBERS=20000 .ci/with-postgres go test -run '^$' -bench Million -benchtime 1x -timeout 0 ./ledger/population/
func BenchmarkMillion(b *testing.B) {
	n := populationtest.Size(b)
	rules, err := config.ParseEntitlements("bench", []byte(benchEntitlements))
	if err != nil {
		b.Fatal(err)
	}
	built := populationtest.Build(b, n, rules)
	res := built.Result
	l := ledger.New(built.Pool).WithEntitlements(rules)
	rng := rand.New(rand.NewPCG(1, 2))
	// customers returns k customer ids of the ledger, at random.
	customers := func(k int) []string {
		out := make([]string, 0, k)
		for len(out) < k {
			if c, ok := population.CustomerOf(populationtest.Seed, rng.IntN(n)); ok {
				out = append(out, population.CustomerID(c))
			}
		}
		return out
	}

	b.Run("generate", func(b *testing.B) {
		b.ReportMetric(res.Elapsed.Seconds(), "s")
		b.ReportMetric(float64(res.Subscriptions)/res.Elapsed.Seconds(), "subscriptions/s")
		b.ReportMetric(float64(res.Signatures)/res.Elapsed.Seconds(), "signatures/s")
		b.ReportMetric(float64(res.Transactions)/float64(res.Subscriptions), "transactions/subscription")
		b.ReportMetric(float64(res.Notifications)/float64(res.Subscriptions), "notifications/subscription")
	})

	b.Run("bytes", func(b *testing.B) {
		sizes := tableSizes(b, built.Pool)
		var all int64
		for _, s := range sizes {
			all += s.total
		}
		per := func(table string, rows int64) float64 {
			for _, s := range sizes {
				if s.name == table {
					return float64(s.total) / float64(rows)
				}
			}
			return 0
		}
		for _, s := range sizes {
			if s.total >= 1<<20 {
				b.Logf("%-28s %8.1f MiB (heap %.1f, TOAST %.1f, indexes %.1f)", s.name, mib(s.total), mib(s.heap), mib(s.toast), mib(s.index))
			}
		}
		b.ReportMetric(float64(all)/float64(n), "B/subscriber")
		b.ReportMetric(per("transactions", res.Transactions), "B/transaction")
		b.ReportMetric(per("notifications", res.Notifications), "B/notification")
		b.ReportMetric(per("subscriptions", res.Subscriptions), "B/subscription-row")
		b.ReportMetric(float64(all)/(1<<30), "GiB")
	})

	bin := filepath.Join(b.TempDir(), "storesync")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/storesync/storesync/cmd/storesync").CombinedOutput(); err != nil {
		b.Fatalf("building storesync: %v\n%s", err, out)
	}
	cli := func(b *testing.B, args ...string) time.Duration {
		cmd := exec.Command(bin, args...)
		cmd.Env = []string{"DATABASE_URL=" + built.URL, "PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("storesync %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return time.Since(start)
	}
	b.Run("status", func(b *testing.B) {
		scans := watchScans(b, built.Pool)
		lat := make([]time.Duration, 0, 5)
		for range 5 {
			lat = append(lat, cli(b, "status"))
		}
		reportLatency(b, lat)
		scans.report(b)
	})
	b.Run("show", func(b *testing.B) {
		scans := watchScans(b, built.Pool)
		var lat []time.Duration
		for _, c := range customers(5) {
			lat = append(lat, cli(b, "show", "--customer-id", c))
		}
		for range 5 {
			lat = append(lat, cli(b, "show", "--original-transaction-id", population.OriginalTransactionID(rng.IntN(n))))
		}
		reportLatency(b, lat)
		scans.report(b)
	})

	b.Run("reconcile-selection", func(b *testing.B) {
		callCap := jobs.ReconcileCallCap(appstore.DefaultRateLimit(appstore.EndpointStatuses, appstore.Production), jobs.DefaultReconcileShare, 0)
		s := populationtest.MeasureSelection(b, l, callCap, jobs.DefaultReconcileFullCycle, jobs.DefaultReconcileBatch)
		b.ReportMetric(s.Elapsed.Seconds(), "selection-s")
		b.ReportMetric(float64(s.Targeted+s.Rolling), "calls/night")
		b.ReportMetric(float64(s.PeakHeap)/(1<<20), "peak-heap-MiB")
	})

	deps := &jobs.Deps{Ledger: l, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	client, err := jobs.NewRiverClient(deps, jobs.ClientOptions{})
	if err != nil {
		b.Fatal(err)
	}
	api := httpapi.NewHandler(deps, client, httpapi.Options{AdminToken: benchAdminToken, APITokens: []string{benchReadToken}})
	b.Run("entitlements", func(b *testing.B) {
		// The same server answers the two ceilings: a canned answer (HTTP
		// and JSON alone) and one after SELECT 1 (plus a pool round trip).
		var canned []byte
		if e, err := l.EntitlementsByCustomerID(context.Background(), customers(1)[0]); err != nil {
			b.Fatal(err)
		} else if canned, err = json.Marshal(e); err != nil {
			b.Fatal(err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("GET /ceiling/static", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(canned)
		})
		mux.HandleFunc("GET /ceiling/select1", func(w http.ResponseWriter, r *http.Request) {
			var one int
			if err := built.Pool.QueryRow(r.Context(), "SELECT 1").Scan(&one); err != nil {
				http.Error(w, err.Error(), 503)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(canned)
		})
		mux.Handle("/", api)
		// Server time (from the handler's start to its return) separates
		// what a lookup costs from the wait of 64 clients for 2 cores.
		var serverMu sync.Mutex
		var serverTimes []time.Duration
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			t := time.Now()
			mux.ServeHTTP(w, r)
			d := time.Since(t)
			serverMu.Lock()
			serverTimes = append(serverTimes, d)
			serverMu.Unlock()
		}))
		defer srv.Close()
		const lookups = 20000
		ids := customers(lookups)
		tokens := make([]string, 0, lookups)
		for len(tokens) < lookups {
			if c, ok := population.CustomerOf(populationtest.Seed, rng.IntN(n)); ok {
				tokens = append(tokens, population.AppAccountToken(populationtest.Seed, c))
			}
		}
		for _, m := range []struct {
			name string
			path func(i int) string
		}{
			{"static", func(int) string { return "/ceiling/static" }},
			{"select1", func(int) string { return "/ceiling/select1" }},
			{"by-customer", func(i int) string { return "/v1/customers/" + ids[i] + "/entitlements" }},
			{"by-token", func(i int) string { return "/v1/app-account-tokens/" + tokens[i] + "/entitlements" }},
			{"by-subscription", func(i int) string {
				return "/v1/subscriptions/" + population.OriginalTransactionID(i*7919%n) + "/entitlements"
			}},
		} {
			b.Run(m.name, func(b *testing.B) {
				scans := watchScans(b, built.Pool)
				serverMu.Lock()
				serverTimes = serverTimes[:0]
				serverMu.Unlock()
				lat, rate := hammer(b, srv.URL, lookups, lookupClients, m.path)
				reportLatency(b, lat)
				b.ReportMetric(rate, "lookups/s")
				serverMu.Lock()
				server := slices.Clone(serverTimes)
				serverMu.Unlock()
				sort.Slice(server, func(i, j int) bool { return server[i] < server[j] })
				b.ReportMetric(float64(server[len(server)/2].Microseconds())/1000, "server-p50-ms")
				b.ReportMetric(float64(server[len(server)*99/100].Microseconds())/1000, "server-p99-ms")
				// One client alone: a lookup's latency when nothing queues.
				alone, _ := hammer(b, srv.URL, 2000, 1, m.path)
				sort.Slice(alone, func(i, j int) bool { return alone[i] < alone[j] })
				b.ReportMetric(float64(alone[len(alone)*99/100].Microseconds())/1000, "1-client-p99-ms")
				scans.report(b)
			})
		}
	})

	b.Run("ops", func(b *testing.B) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		console, err := opsui.New(ctx, deps, client, opsui.Options{AdminToken: benchAdminToken, NoRiverUI: true})
		if err != nil {
			b.Fatal(err)
		}
		srv := httptest.NewServer(console.Wrap(api))
		defer srv.Close()
		hc := login(b, srv.URL)
		i := rng.IntN(n)
		c, ok := population.CustomerOf(populationtest.Seed, i)
		for !ok {
			i = rng.IntN(n)
			c, ok = population.CustomerOf(populationtest.Seed, i)
		}
		for _, p := range []struct{ name, path string }{
			{"overview", "/ops/"},
			{"customer-by-id", "/ops/customer?q=" + population.CustomerID(c)},
			{"customer-by-token", "/ops/customer?q=" + population.AppAccountToken(populationtest.Seed, c)},
			{"customer-by-otid", "/ops/customer?q=" + population.OriginalTransactionID(i)},
		} {
			b.Run(p.name, func(b *testing.B) {
				scans := watchScans(b, built.Pool)
				var lat []time.Duration
				var size int
				for range 10 {
					start := time.Now()
					size = len(fetch(b, hc, srv.URL+p.path))
					lat = append(lat, time.Since(start))
				}
				reportLatency(b, lat)
				b.ReportMetric(float64(size), "B/page")
				scans.report(b)
			})
		}
	})
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

type tableSize struct {
	name                      string
	total, heap, toast, index int64
}

// tableSizes lists the ledger's tables (River's excluded) by total size:
// table, TOAST and indexes.
func tableSizes(tb testing.TB, pool *pgxpool.Pool) []tableSize {
	rows, err := pool.Query(context.Background(), `SELECT c.relname, pg_total_relation_size(c.oid),
			pg_relation_size(c.oid), COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0), pg_indexes_size(c.oid)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'r' AND n.nspname = current_schema() AND c.relname NOT LIKE 'river%'
		ORDER BY 2 DESC`)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	var out []tableSize
	for rows.Next() {
		var s tableSize
		if err := rows.Scan(&s.name, &s.total, &s.heap, &s.toast, &s.index); err != nil {
			tb.Fatal(err)
		}
		out = append(out, s)
	}
	if rows.Err() != nil {
		tb.Fatal(rows.Err())
	}
	return out
}

// bigTables are the tables that grow with the population: a sequential
// scan of one on a request path reads the whole ledger.
var bigTables = []string{"subscriptions", "transactions", "notifications", "renewal_infos", "customers",
	"subscription_events", "import_rows", "drift", "conflicts"}

// scanWatch counts sequential scans of the big tables between its start
// and report, from pg_stat_user_tables.
type scanWatch struct {
	pool   *pgxpool.Pool
	before map[string]int64
}

func seqScans(tb testing.TB, pool *pgxpool.Pool) map[string]int64 {
	// Backends flush their counters at most once a second.
	time.Sleep(1100 * time.Millisecond)
	rows, err := pool.Query(context.Background(), `SELECT relname, seq_scan FROM pg_stat_user_tables WHERE relname = ANY($1)`, bigTables)
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]int64{}
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			tb.Fatal(err)
		}
		out[name] = n
	}
	return out
}

func watchScans(tb testing.TB, pool *pgxpool.Pool) *scanWatch {
	return &scanWatch{pool: pool, before: seqScans(tb, pool)}
}

// report logs which big tables were scanned and reports the total.
func (w *scanWatch) report(b *testing.B) {
	after := seqScans(b, w.pool)
	var total int64
	var which []string
	for t, n := range after {
		if d := n - w.before[t]; d > 0 {
			total += d
			which = append(which, fmt.Sprintf("%s×%d", t, d))
		}
	}
	sort.Strings(which)
	if total > 0 {
		b.Logf("sequential scans: %s", strings.Join(which, " "))
	}
	b.ReportMetric(float64(total), "seq-scans")
}

// reportLatency reports p50 and p99 (the max under 100 samples).
func reportLatency(b *testing.B, lat []time.Duration) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds())/1000, "p99-ms")
}

// hammer GETs base+path(i) for i < count with clients concurrent clients,
// and returns every latency and the rate.
func hammer(b *testing.B, base string, count, clients int, path func(int) string) ([]time.Duration, float64) {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	lat := make([]time.Duration, count)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= count {
					return
				}
				req, _ := http.NewRequest("GET", base+path(i), nil)
				req.Header.Set("Authorization", "Bearer "+benchReadToken)
				t := time.Now()
				resp, err := hc.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat[i] = time.Since(t)
				if resp.StatusCode != 200 {
					b.Errorf("GET %s: %d", path(i), resp.StatusCode)
					return
				}
			}
		}()
	}
	wg.Wait()
	return lat, float64(count) / time.Since(start).Seconds()
}

// login signs in to the console and returns a client holding the session.
func login(tb testing.TB, base string) *http.Client {
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	m := regexp.MustCompile(`name="csrf" value="([^"]*)"`).FindSubmatch(fetch(tb, hc, base+"/ops/login"))
	if m == nil {
		tb.Fatal("the login page has no CSRF token")
	}
	resp, err := hc.PostForm(base+"/ops/login", url.Values{"csrf": {string(m[1])}, "token": {benchAdminToken}, "next": {"/ops/"}})
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		tb.Fatalf("login: %d", resp.StatusCode)
	}
	return hc
}

func fetch(tb testing.TB, hc *http.Client, u string) []byte {
	resp, err := hc.Get(u)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		tb.Fatalf("GET %s: %d", u, resp.StatusCode)
	}
	return body
}
