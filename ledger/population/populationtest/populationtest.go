// Package populationtest builds generated ledgers for benchmarks and
// measures what several benchmarks measure on them (the reconcile
// selection), so the jobs benchmark and the million-subscriber suite share
// one generator and one measurement.
package populationtest

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/ledger/population"
	"github.com/storesync/storesync/migrations/migrationstest"
)

// Seed is the seed Build fills with, so callers can name its ids
// (population.CustomerOf(Seed, i), ...).
const Seed = 18

// Built is a generated ledger in a database of its own.
type Built struct {
	URL    string
	Pool   *pgxpool.Pool
	CA     *sim.CA
	Now    time.Time
	Result *population.Result
}

// Size returns the benchmark size (population.SizeFromEnv), failing tb on
// a bad value.
func Size(tb testing.TB) int {
	n, err := population.SizeFromEnv()
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// Build creates a migrated database dropped when tb ends and fills it
// with n subscriptions under rules (nil: none), logging what it wrote.
func Build(tb testing.TB, n int, rules ledger.EntitlementRules) *Built {
	tb.Helper()
	url, pool := migrationstest.NewDatabase(tb)
	ca, err := sim.NewCA()
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	res, err := population.Fill(context.Background(), pool, population.Options{Subscriptions: n, CA: ca, Now: now, Seed: Seed, Rules: rules})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Logf("generated %d subscriptions in %s (%.0f/s): %d customers, %d transactions, %d notifications, %d feed events, %d import rows, %d drift rows; %d signatures (%.0f/s)",
		res.Subscriptions, res.Elapsed.Round(time.Second), float64(res.Subscriptions)/res.Elapsed.Seconds(), res.Customers,
		res.Transactions, res.Notifications, res.Events, res.ImportRows, res.Drift, res.Signatures,
		float64(res.Signatures)/res.Elapsed.Seconds())
	return &Built{URL: url, Pool: pool, CA: ca, Now: now, Result: res}
}

// Selection is one night's reconcile selection, as MeasureSelection ran it.
type Selection struct {
	Elapsed                         time.Duration
	Total, Targeted, Rolling, Quota int64
	// PeakHeap and PeakSys are the Go heap in use and the memory the Go
	// runtime held from the OS, at their peaks during the selection.
	PeakHeap, PeakSys uint64
}

// MeasureSelection times choosing what one night's reconciliation checks,
// as the run job does it: every targeted subscription, then every other one
// least recently checked first until the call cap binds, in batches of
// batch. fullCycle is the reconcile full cycle (the refunds and conflicts
// window, and the rolling slice). It marks nothing, so it remembers what it
// chose to skip duplicates (a few MiB the run does not use).
func MeasureSelection(tb testing.TB, l *ledger.Ledger, callCap int64, fullCycle time.Duration, batch int) Selection {
	tb.Helper()
	ctx := context.Background()
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
				peakSys.Store(ms.Sys)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	var s Selection
	start := time.Now()
	var runStart time.Time
	if err := l.Pool().QueryRow(ctx, "SELECT now()").Scan(&runStart); err != nil {
		tb.Fatal(err)
	}
	w := ledger.SelectWindow{AsOf: runStart, RunStart: runStart,
		RefundsSince: runStart.Add(-fullCycle), ConflictsSince: runStart.Add(-fullCycle)}
	var err error
	if s.Total, err = l.CountSubscriptions(ctx); err != nil {
		tb.Fatal(err)
	}
	s.Quota = ledger.RollingSliceSize(s.Total, fullCycle)
	seen := map[string]struct{}{}
	cursor := ledger.SelectCursor{}
	for s.Targeted < callCap {
		page, next, done, err := l.SelectTargeted(ctx, w, cursor, batch)
		if err != nil {
			tb.Fatal(err)
		}
		for _, c := range page {
			if _, dup := seen[c.OriginalTransactionID]; !dup { // due for two reasons: checked once
				seen[c.OriginalTransactionID] = struct{}{}
				s.Targeted++
			}
		}
		cursor = next
		if done {
			break
		}
	}
	cursor = ledger.SelectCursor{}
	for s.Targeted+s.Rolling < callCap {
		page, next, done, err := l.SelectRolling(ctx, w, cursor, int(min(int64(batch), callCap-s.Targeted-s.Rolling)))
		if err != nil {
			tb.Fatal(err)
		}
		for _, c := range page {
			if _, dup := seen[c.OriginalTransactionID]; !dup {
				s.Rolling++
			}
		}
		cursor = next
		if done {
			break
		}
	}
	s.Elapsed = time.Since(start)
	close(stop)
	<-sampled
	s.PeakHeap, s.PeakSys = peak.Load(), peakSys.Load()
	return s
}
