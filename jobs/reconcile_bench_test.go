package jobs

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/appstore/sim/simtest"
	"github.com/storesync/storesync/jobs/jobstest"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/ledger/population/populationtest"
	"github.com/storesync/storesync/migrations/migrationstest"
)

// BenchmarkReconcileSelection generates a ledger of a million
// subscriptions with ledger/population (STORESYNC_BENCH_SUBSCRIBERS varies
// the size: states, check times, refunds and conflicts as a ledger a week
// into nightly runs has them) and times choosing what one night checks:
// every targeted subscription, then every other one least recently checked
// first until the cap binds, in the batches the run job uses. It reports
// the selection's time and peak Go memory, the calls the night would use
// (one per subscription: an upper bound, as one answer covers an account)
// against the cap at Apple's production limit, 25% of a day's statuses
// budget (86400 × 50/s × 0.25 = 1,080,000), and whether that cap covers
// every subscription nightly (covers-all 1) or binds.
//
//	go test -run '^$' -bench ReconcileSelection -benchtime 1x ./jobs/
func BenchmarkReconcileSelection(b *testing.B) {
	n := populationtest.Size(b)
	built := populationtest.Build(b, n, nil)
	l := ledger.New(built.Pool)
	cap := ReconcileCallCap(appstore.DefaultRateLimit(appstore.EndpointStatuses, appstore.Production), DefaultReconcileShare, 0)
	if cap != 1_080_000 {
		b.Fatalf("the default cap at Apple's production 50/s is %d, want 25%% of 86400 × 50 = 1,080,000", cap)
	}
	var s populationtest.Selection
	var selection time.Duration
	b.ResetTimer()
	for range b.N {
		s = populationtest.MeasureSelection(b, l, cap, DefaultReconcileFullCycle, DefaultReconcileBatch)
		selection += s.Elapsed
	}
	b.StopTimer()
	calls := s.Targeted + s.Rolling
	coversAll := 0.0
	if calls >= s.Total {
		coversAll = 1
	}
	b.ReportMetric(selection.Seconds()/float64(b.N), "selection-s")
	b.ReportMetric(float64(s.Total), "subscriptions")
	b.ReportMetric(float64(s.Targeted), "targeted")
	b.ReportMetric(float64(s.Rolling), "rolling")
	b.ReportMetric(float64(s.Quota), "cycle-slice")
	b.ReportMetric(float64(calls), "calls/night")
	b.ReportMetric(float64(cap), "cap")
	b.ReportMetric(coversAll, "covers-all")
	b.ReportMetric(float64(s.PeakHeap)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(s.PeakSys)/(1<<20), "peak-sys-MiB")
	b.Logf("%d subscriptions: selection %s; %d targeted + %d rolling = at most %d statuses calls a night (fewer: one answer covers an account), cap %d at 50/s × 25%% (%.1f%%), covers all: %v; 1/7 slice %d; peak Go heap %.1f MiB, runtime total %.1f MiB",
		n, (selection / time.Duration(b.N)).Round(time.Millisecond), s.Targeted, s.Rolling, calls, cap, 100*float64(calls)/float64(cap), coversAll == 1, s.Quota,
		float64(s.PeakHeap)/(1<<20), float64(s.PeakSys)/(1<<20))
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
