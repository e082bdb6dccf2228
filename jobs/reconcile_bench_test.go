package jobs

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/appstore/sim/simtest"
	"github.com/storesync/storesync/jobs/jobstest"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

// benchSubscriptions is the size of the generated ledger:
// STORESYNC_BENCH_SUBSCRIPTIONS, default the spec's 1,000,000.
func benchSubscriptions(b *testing.B) int {
	if v := os.Getenv("STORESYNC_BENCH_SUBSCRIPTIONS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("STORESYNC_BENCH_SUBSCRIPTIONS=%q is not a positive number", v)
		}
		return n
	}
	return 1_000_000
}

// BenchmarkReconcileSelection generates a ledger of a million
// subscriptions with SQL (states and check times as a ledger a week into
// nightly runs has them) and times choosing what one night checks: every
// targeted subscription, then every other one least recently checked first
// until the cap binds, in the batches the run job uses. It reports the
// selection's time and peak Go memory, the calls the night would use (one
// per subscription: an upper bound, as one answer covers an account)
// against the cap at Apple's production limit, 25% of a day's statuses
// budget (86400 × 50/s × 0.25 = 1,080,000), and whether that cap covers
// every subscription nightly (covers-all 1) or binds.
//
//	go test -run '^$' -bench ReconcileSelection -benchtime 1x ./jobs/
func BenchmarkReconcileSelection(b *testing.B) {
	n := benchSubscriptions(b)
	_, pool := migrationstest.NewDatabase(b)
	ctx := context.Background()
	genStart := time.Now()
	// now: Apple's now and the run's start. Status mix: 60% active (1% of
	// all past their expiresDate: due), 30% expired, 2% billing retry, 1%
	// grace, 3% revoked (a tenth of them in the last week), 4% never
	// checked, the rest checked uniformly over the last 7 days.
	if _, err := pool.Exec(ctx, `
		INSERT INTO subscriptions (original_transaction_id, environment, product_id, subscription_group_identifier,
			status, expires_date, revocation_date, last_checked_at, latest_transaction_id, transaction_count)
		SELECT (2000000000000000 + g)::text, 'Production', 'com.example.monthly', '2157',
			CASE WHEN r < 0.60 THEN 1 WHEN r < 0.90 THEN 2 WHEN r < 0.92 THEN 3 WHEN r < 0.93 THEN 4 WHEN r < 0.96 THEN 5 ELSE 1 END,
			CASE WHEN r < 0.01 THEN now() - interval '2 hours'
			     WHEN r < 0.60 OR r >= 0.96 THEN now() + (r * 30) * interval '1 day'
			     ELSE now() - (r * 90) * interval '1 day' END,
			CASE WHEN r >= 0.93 AND r < 0.96 THEN now() - ((r - 0.93) * 6000) * interval '1 day' END,
			CASE WHEN (g % 25) = 0 THEN NULL ELSE now() - ((g * 7919) % 604800) * interval '1 second' END,
			(3000000000000000 + g)::text, 1 + (g % 24)
		FROM (SELECT g, ((g * 2654435761) % 1000003) / 1000003.0 AS r FROM generate_series(1::bigint, $1::bigint) g) x`, n); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO conflicts (original_transaction_id, field, our_value, apple_value, source, found_at)
		SELECT (2000000000000000 + g * 397)::text, 'app_account_token', 'ours-' || g, 'apple-' || g, 'import',
			now() - (g % 30) * interval '1 day'
		FROM generate_series(1, $1::int / 500) g`, n); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE`); err != nil {
		b.Fatal(err)
	}
	b.Logf("generated %d subscriptions in %s", n, time.Since(genStart).Round(time.Second))

	l := ledger.New(pool)
	cap := ReconcileCallCap(appstore.DefaultRateLimit(appstore.EndpointStatuses, appstore.Production), DefaultReconcileShare, 0)
	if cap != 1_080_000 {
		b.Fatalf("the default cap at Apple's production 50/s is %d, want 25%% of 86400 × 50 = 1,080,000", cap)
	}
	var peak, peakSys atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			if ms.Sys > peakSys.Load() {
				peakSys.Store(ms.Sys) // all memory the Go runtime took from the OS
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	var targeted, rolling, quota, total int64
	var selection time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		var runStart time.Time
		if err := pool.QueryRow(ctx, "SELECT now()").Scan(&runStart); err != nil {
			b.Fatal(err)
		}
		w := ledger.SelectWindow{AsOf: runStart, RunStart: runStart,
			RefundsSince: runStart.Add(-DefaultReconcileFullCycle), ConflictsSince: runStart.Add(-DefaultReconcileFullCycle)}
		var err error
		total, err = l.CountSubscriptions(ctx)
		if err != nil {
			b.Fatal(err)
		}
		quota = ledger.RollingSliceSize(total, DefaultReconcileFullCycle)
		targeted, rolling = 0, 0
		// The run marks what it checks, so its rolling walk skips the
		// targeted subscriptions; this selection marks nothing, so it
		// remembers them (a few MiB of the peak heap the run does not use).
		seen := map[string]struct{}{}
		cursor := ledger.SelectCursor{}
		for targeted < cap {
			page, next, done, err := l.SelectTargeted(ctx, w, cursor, DefaultReconcileBatch)
			if err != nil {
				b.Fatal(err)
			}
			for _, c := range page {
				// A subscription due for two reasons is checked once.
				if _, dup := seen[c.OriginalTransactionID]; !dup {
					seen[c.OriginalTransactionID] = struct{}{}
					targeted++
				}
			}
			cursor = next
			if done {
				break
			}
		}
		// The rolling walk, as the run does it: everything the cap allows.
		cursor = ledger.SelectCursor{}
		for targeted+rolling < cap {
			page, next, done, err := l.SelectRolling(ctx, w, cursor, int(min(int64(DefaultReconcileBatch), cap-targeted-rolling)))
			if err != nil {
				b.Fatal(err)
			}
			for _, c := range page {
				if _, dup := seen[c.OriginalTransactionID]; !dup {
					rolling++
				}
			}
			cursor = next
			if done {
				break
			}
		}
		selection += time.Since(start)
	}
	b.StopTimer()
	close(stop)
	<-sampled
	calls := targeted + rolling
	coversAll := 0.0
	if calls >= total {
		coversAll = 1
	}
	b.ReportMetric(selection.Seconds()/float64(b.N), "selection-s")
	b.ReportMetric(float64(total), "subscriptions")
	b.ReportMetric(float64(targeted), "targeted")
	b.ReportMetric(float64(rolling), "rolling")
	b.ReportMetric(float64(quota), "cycle-slice")
	b.ReportMetric(float64(calls), "calls/night")
	b.ReportMetric(float64(cap), "cap")
	b.ReportMetric(coversAll, "covers-all")
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(peakSys.Load())/(1<<20), "peak-sys-MiB")
	b.Logf("%d subscriptions: selection %s; %d targeted + %d rolling = at most %d statuses calls a night (fewer: one answer covers an account), cap %d at 50/s × 25%% (%.1f%%), covers all: %v; 1/7 slice %d; peak Go heap %.1f MiB, runtime total %.1f MiB",
		n, (selection / time.Duration(b.N)).Round(time.Millisecond), targeted, rolling, calls, cap, 100*float64(calls)/float64(cap), coversAll == 1, quota,
		float64(peak.Load())/(1<<20), float64(peakSys.Load())/(1<<20))
}

// BenchmarkReconcileUnchangedPopulation reconciles the spec's 1,000
// simulated subscribers, synced into the ledger beforehand, with a one-day
// cycle (everyone is checked): the run must find no drift. It reports the
// run's time, subscriptions checked and calls.
//
//	go test -run '^$' -bench ReconcileUnchangedPopulation -benchtime 1x ./jobs/
func BenchmarkReconcileUnchangedPopulation(b *testing.B) {
	for i := range b.N {
		b.StopTimer()
		h := benchHarness(b, 1000)
		b.StartTimer()
		start := time.Now()
		run := reconcileNow(b, h, "bench "+strconv.Itoa(i), 0)
		elapsed := time.Since(start)
		b.StopTimer()
		if run.DriftedSubscriptions != 0 {
			b.Fatalf("unchanged population drifted: %v", run.Drifted)
		}
		jobstest.RequireLedgerEqualsTruth(b, h.deps.Ledger, h.simulator.Truth())
		b.ReportMetric(float64(run.CheckedTotal()), "checked")
		b.ReportMetric(float64(run.CallsUsed), "calls")
		b.Logf("checked %d subscriptions with %d calls in %s, drift 0", run.CheckedTotal(), run.CallsUsed, elapsed.Round(time.Millisecond))
	}
}

// benchHarness wires a simulator of n subscribers, a database and a
// working River client as startImportHarness does, and syncs the whole
// population into the ledger with the jobs' own fetch path (statuses, then
// each subscription's history).
func benchHarness(tb testing.TB, n int) *importHarness {
	tb.Helper()
	simulator := simtest.StartTest(tb, sim.Options{Seed: 11, Subscribers: n, DisableRateLimits: true})
	_, pool := migrationstest.NewDatabase(tb)
	key, err := appstore.ParsePrivateKey(simulator.PrivateKeyPEM())
	if err != nil {
		tb.Fatal(err)
	}
	apple, err := appstore.NewClient(appstore.ClientOptions{
		KeyID: simulator.KeyID(), IssuerID: simulator.IssuerID(), BundleID: simulator.BundleID(), PrivateKey: key,
		Environment: appstore.Production, BaseURL: simulator.BaseURL(), SandboxBaseURL: simulator.SandboxURL(), SandboxFallback: true,
		Budget: appstore.NewRateBudget(map[appstore.Endpoint]float64{appstore.EndpointStatuses: 5000,
			appstore.EndpointHistory: 5000, appstore.EndpointNotificationHistory: 5000}, 100),
	})
	if err != nil {
		tb.Fatal(err)
	}
	verifier, err := appstore.NewVerifier(appstore.VerifierOptions{RootCertificates: [][]byte{simulator.RootDER()},
		Environment: appstore.Production, BundleID: simulator.BundleID(), AppAppleID: simulator.AppAppleID()})
	if err != nil {
		tb.Fatal(err)
	}
	deps := &Deps{Ledger: ledger.New(pool), Apple: apple, Verifier: verifier, Now: simulator.Now,
		Settings: Settings{RetryBase: 20 * time.Millisecond, Reconcile: ReconcileSettings{FullCycle: 24 * time.Hour}}}
	ctx := context.Background()
	ids := append(simulator.OriginalTransactionIDs(appstore.Production), simulator.OriginalTransactionIDs(appstore.Sandbox)...)
	work := make(chan string)
	errs := make(chan error, 8)
	synced := sync.Map{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for otid := range work {
				if _, done := synced.Load(otid); done {
					continue
				}
				changes, env, err := deps.syncStatuses(ctx, otid)
				if err != nil {
					errs <- err
					return
				}
				for _, c := range changes {
					if _, dup := synced.LoadOrStore(c.After.OriginalTransactionID, true); dup {
						continue
					}
					if _, err := deps.syncHistory(ctx, c.After.OriginalTransactionID, env, c.After.SubscriptionGroupIdentifier, "", nil); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatalf("syncing the population: %v", err)
	}
	client, err := NewRiverClient(deps, ClientOptions{Work: true})
	if err != nil {
		tb.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := client.Stop(stopCtx); err != nil {
			_ = client.StopAndCancel(context.Background())
		}
	})
	return &importHarness{simulator: simulator, pool: pool, deps: deps, client: client}
}
