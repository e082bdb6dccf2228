package budget

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/migrations/migrationstest"
)

func newTestBudget(t *testing.T, pool *pgxpool.Pool, limit float64) *Postgres {
	t.Helper()
	b, err := NewPostgres(PostgresOptions{
		Pool: pool, App: "com.example.test",
		Limits: map[appstore.Environment]map[appstore.Endpoint]float64{
			appstore.Production: {appstore.EndpointHistory: limit, appstore.EndpointStatuses: limit},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPostgresBudgetOptionsNameTheField(t *testing.T) {
	t.Parallel()
	_, err := NewPostgres(PostgresOptions{LeaseSize: -1,
		Limits: map[appstore.Environment]map[appstore.Endpoint]float64{appstore.Production: {appstore.EndpointHistory: -5}}})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"Pool", "App", "Limits[Production][history]", "LeaseSize"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

// Two processes' budgets on one database share the limit: together they
// never get more than the limit (plus the bucket's burst) over a window.
func TestPostgresBudgetSharedLimitAcrossProcesses(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	const limit = 20.0
	a, b := newTestBudget(t, pool, limit), newTestBudget(t, pool, limit)

	const window = 2 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	start := time.Now()
	var grants [2]atomic.Int64
	var wg sync.WaitGroup
	for i, budget := range []*Postgres{a, b} {
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for budget.Wait(ctx, appstore.Production, appstore.EndpointHistory) == nil {
					grants[i].Add(1)
				}
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	total := grants[0].Load() + grants[1].Load()
	// The shared bucket starts full (a quarter second's worth) and refills
	// at the limit; allow one extra lease per process for rounding.
	upper := int64(limit*0.25 + limit*elapsed + 2*2 + 1)
	if total > upper {
		t.Fatalf("two processes got %d tokens in %.2fs; the shared limit allows at most %d", total, elapsed, upper)
	}
	if total < int64(limit*elapsed/2) {
		t.Fatalf("two processes got only %d tokens in %.2fs at %v/s: the budget starves its callers", total, elapsed, limit)
	}
	if grants[0].Load() == 0 || grants[1].Load() == 0 {
		t.Fatalf("one process got nothing: %d / %d", grants[0].Load(), grants[1].Load())
	}

	use, err := Usage(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(use) != 1 || use[0].Endpoint != appstore.EndpointHistory || use[0].Limit != limit {
		t.Fatalf("usage %+v", use)
	}
	// Leases are only taken for waiting callers, so what was granted is
	// what was used, give or take the leases of callers whose ctx ended.
	if use[0].LastMinute < total || use[0].LastMinute > total+2*2 || use[0].LastHour != use[0].LastMinute {
		t.Fatalf("usage counted %d/%d grants, callers got %d", use[0].LastMinute, use[0].LastHour, total)
	}
}

// A 429 seen by one process stops the other until Retry-After.
func TestPostgresBudgetThrottleReachesOtherProcesses(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	a, b := newTestBudget(t, pool, 50), newTestBudget(t, pool, 50)
	ctx := context.Background()
	// Both have used the bucket already, so b holds no state of its own
	// that could let it through.
	for _, budget := range []*Postgres{a, b} {
		if err := budget.Wait(ctx, appstore.Production, appstore.EndpointStatuses); err != nil {
			t.Fatal(err)
		}
	}
	until := time.Now().Add(1200 * time.Millisecond)
	a.Throttle(appstore.Production, appstore.EndpointStatuses, until)
	for _, budget := range []*Postgres{b, a} {
		if err := budget.Wait(ctx, appstore.Production, appstore.EndpointStatuses); err != nil {
			t.Fatal(err)
		}
		// Database and process share this machine's clock; allow a little
		// for timestamp rounding only.
		if early := until.Sub(time.Now()); early > 20*time.Millisecond {
			t.Fatalf("Wait returned %s before the Retry-After", early)
		}
	}
	// The other endpoint is not affected.
	other, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := b.Wait(other, appstore.Production, appstore.EndpointHistory); err != nil {
		t.Fatalf("history blocked by a statuses 429: %v", err)
	}
	n, err := ThrottledSince(ctx, pool, time.Now().Add(-time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("429s recorded: %d, %v", n, err)
	}
}

// Interactive callers of a process are served before its bulk callers,
// even those that came first.
func TestPostgresBudgetServesInteractiveFirst(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	b := newTestBudget(t, pool, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Drain the bucket's initial burst so the waiters below queue up.
	for range 3 {
		if err := b.Wait(ctx, appstore.Production, appstore.EndpointHistory); err != nil {
			t.Fatal(err)
		}
	}
	var order atomic.Int64
	const bulk = 8
	var wg sync.WaitGroup
	for range bulk {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if b.Wait(ctx, appstore.Production, appstore.EndpointHistory) == nil {
				order.Add(1)
			}
		}()
	}
	waitFor(t, func() bool { return b.queued(appstore.Production, appstore.EndpointHistory) == bulk })
	before := order.Load()
	if err := b.Wait(appstore.WithPriority(ctx, appstore.PriorityInteractive), appstore.Production, appstore.EndpointHistory); err != nil {
		t.Fatal(err)
	}
	// At most the token already being handed out may go to a bulk caller.
	if got := order.Load() - before; got > 1 {
		t.Fatalf("%d bulk callers were served while an interactive caller waited", got)
	}
	if order.Load() == bulk {
		t.Fatal("every bulk caller was served before the interactive one")
	}
	cancel()
	wg.Wait()
}

func TestPostgresBudgetRefusesUnknownEndpointAndHonoursContext(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	b := newTestBudget(t, pool, 1)
	if err := b.Wait(context.Background(), appstore.Sandbox, appstore.EndpointHistory); err == nil || !strings.Contains(err.Error(), "no limit") {
		t.Fatalf("unknown endpoint: %v", err)
	}
	ctx := context.Background()
	if err := b.Wait(ctx, appstore.Production, appstore.EndpointHistory); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := b.Wait(short, appstore.Production, appstore.EndpointHistory); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with an ending context: %v", err)
	}
	if n := b.queued(appstore.Production, appstore.EndpointHistory); n != 0 {
		t.Fatalf("%d waiters left behind", n)
	}
}

// queued counts the callers waiting for env/ep (tests only).
func (b *Postgres) queued(env appstore.Environment, ep appstore.Endpoint) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	bk := b.buckets[budgetKey{env, ep}]
	if bk == nil {
		return 0
	}
	return len(bk.waiters[0]) + len(bk.waiters[1])
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The shared bucket's arithmetic holds under contention: callers that
// wait for the bucket's row lock never count the same refill twice.
func TestBudgetLeaseFunctionNeverOvergrantsUnderContention(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	const rate, capacity = 40.0, 5.0
	ctx := context.Background()
	lease := func() (int64, error) {
		var n int64
		err := pool.QueryRow(ctx, `SELECT granted FROM storesync_budget_lease('app', 'Production', 'history', $1, $2, 1)`,
			rate, capacity).Scan(&n)
		return n, err
	}
	if _, err := lease(); err != nil { // creates the bucket, full
		t.Fatal(err)
	}
	start := time.Now()
	var total atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < 1500*time.Millisecond {
				n, err := lease()
				if err != nil {
					errs <- err
					return
				}
				total.Add(n)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	elapsed := time.Since(start).Seconds()
	// At most what was left after the first lease plus the refill since.
	if upper := int64(capacity + rate*elapsed); total.Load() > upper {
		t.Fatalf("16 concurrent callers were granted %d tokens in %.2fs; the bucket allows at most %d", total.Load(), elapsed, upper)
	}
}

// A process whose dispatcher is held up while it holds leased tokens (CPU
// contention, a slow lease round trip) catches up afterwards instead of
// losing that time: stalled for half of the run, in stalls shorter than one
// lease's worth, it still gets close to the limit (with burst 1 it lost
// about 2 of every 3 tokens each stall was worth); and in no window does it
// get more than the limit plus the shared bucket's burst.
func TestPostgresBudgetCatchesUpAStalledDispatcher(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	const limit = 50.0 // leases of 5 tokens (100 ms), a bucket of 12.5 (250 ms)
	b := newTestBudget(t, pool, limit)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var grants []time.Time
	var wg sync.WaitGroup
	start := time.Now()
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b.Wait(ctx, appstore.Production, appstore.EndpointHistory) == nil {
				at := time.Now()
				mu.Lock()
				grants = append(grants, at)
				mu.Unlock()
			}
		}()
	}
	// Holding the budget's lock stops the dispatcher between two hand-outs,
	// as a starved CPU does, while the shared bucket keeps refilling.
	const stall, stalls = 60 * time.Millisecond, 20 // 3 tokens' worth each
	for range stalls {
		time.Sleep(stall)
		b.mu.Lock()
		time.Sleep(stall)
		b.mu.Unlock()
	}
	time.Sleep(stall)
	cancel()
	wg.Wait()
	elapsed := time.Since(start).Seconds()

	mu.Lock()
	defer mu.Unlock()
	slices.SortFunc(grants, time.Time.Compare)
	total := len(grants)
	t.Logf("%d tokens in %.2fs, stalled half of it: %.0f%% of %v/s", total, elapsed, 100*float64(total)/(limit*elapsed), limit)
	if float64(total) < 0.85*limit*elapsed {
		t.Fatalf("%d tokens in %.2fs at %v/s (%.0f%%): the stalls were lost, not caught up", total, elapsed, limit, 100*float64(total)/(limit*elapsed))
	}
	// The bucket's burst, as the shared limit allows (one process's catch-up
	// is at most one lease, less than that), plus 2 for rounding.
	burst := limit*0.25 + 2
	if float64(total) > limit*elapsed+burst {
		t.Fatalf("%d tokens in %.2fs: more than %v/s plus the bucket's burst", total, elapsed, limit)
	}
	for i := range grants {
		for j := i + 1; j < len(grants); j++ {
			if n, d := j-i+1, grants[j].Sub(grants[i]).Seconds(); float64(n) > limit*d+burst {
				t.Fatalf("%d tokens within %.3fs (from %.3fs): more than %v/s plus the bucket's burst", n, d, grants[i].Sub(start).Seconds(), limit)
			}
		}
	}
}
