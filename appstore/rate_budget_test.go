package appstore

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"
)

// fakeClock is a budgetClock moved only by the test.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at time.Time
	c  chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1700000000, 0)} }

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{at: f.now.Add(d), c: make(chan time.Time, 1)}
	if d <= 0 {
		t.c <- f.now
		return t.c, func() bool { return false }
	}
	f.timers = append(f.timers, t)
	return t.c, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		for i, x := range f.timers {
			if x == t {
				f.timers = append(f.timers[:i], f.timers[i+1:]...)
				return true
			}
		}
		return false
	}
}

// Advance moves the clock and fires every timer now due, the most recent
// first: Go tends to run the goroutine woken last first, so callers that
// queued early get the first chance, which makes priority tests adversarial.
func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	var kept []*fakeTimer
	for i := len(f.timers) - 1; i >= 0; i-- {
		if t := f.timers[i]; !t.at.After(f.now) {
			t.c <- f.now
		} else {
			kept = append([]*fakeTimer{t}, kept...)
		}
	}
	f.timers = kept
}

// pending returns the due times of the pending timers, earliest first.
func (f *fakeClock) pending() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	var at []time.Time
	for _, t := range f.timers {
		at = append(at, t.at)
	}
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	return at
}

// waitTimers blocks until exactly n timers are pending: the waiters have
// gone to sleep. It polls (no timing is asserted) and fails after a
// generous deadline.
func (f *fakeClock) waitTimers(t *testing.T, n int) []time.Time {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p := f.pending()
		if len(p) == n {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d timers pending, want %d", len(p), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitAsync runs Wait in a goroutine; the channel gets its result.
func waitAsync(ctx context.Context, b *RateBudget, env Environment, ep Endpoint) <-chan error {
	done := make(chan error, 1)
	go func() { done <- b.Wait(ctx, env, ep) }()
	return done
}

func mustReceive(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return")
		return nil
	}
}

func notYet(t *testing.T, ch <-chan error, what string) {
	t.Helper()
	select {
	case err := <-ch:
		t.Fatalf("%s returned early (%v)", what, err)
	default:
	}
}

func TestRateBudgetRate(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	b := newRateBudget(map[Endpoint]float64{EndpointHistory: 5}, 2, clk)
	start := clk.Now()
	var admitted []time.Duration
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 6 {
			if err := b.Wait(context.Background(), Production, EndpointHistory); err != nil {
				t.Error(err)
				return
			}
			admitted = append(admitted, clk.Now().Sub(start))
		}
	}()
	// Each time the caller sleeps, jump to its timer.
	for {
		select {
		case <-done:
			want := []time.Duration{0, 0, 200 * time.Millisecond, 400 * time.Millisecond, 600 * time.Millisecond, 800 * time.Millisecond}
			if len(admitted) != len(want) {
				t.Fatalf("admitted at %v", admitted)
			}
			for i := range want {
				if admitted[i] != want[i] {
					t.Errorf("request %d admitted at %v, want %v (burst 2, then 5/s)", i, admitted[i], want[i])
				}
			}
			return
		default:
		}
		if p := clk.pending(); len(p) == 1 {
			clk.Advance(p[0].Sub(clk.Now()))
		} else {
			time.Sleep(time.Millisecond)
		}
	}
}

func TestRateBudgetKeysAreIndependent(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	b := newRateBudget(map[Endpoint]float64{EndpointHistory: 1, EndpointStatuses: 1}, 1, clk)
	ctx := context.Background()
	for _, k := range []budgetKey{{Production, EndpointHistory}, {Production, EndpointStatuses}, {Sandbox, EndpointHistory}} {
		if err := mustReceive(t, waitAsync(ctx, b, k.env, k.ep)); err != nil {
			t.Fatal(err)
		}
	}
	// Each bucket is now empty: a second call to any of them sleeps.
	ch := waitAsync(ctx, b, Sandbox, EndpointHistory)
	clk.waitTimers(t, 1)
	notYet(t, ch, "second sandbox history Wait")
	clk.Advance(time.Second)
	if err := mustReceive(t, ch); err != nil {
		t.Fatal(err)
	}
}

func TestRateBudgetInteractiveFirst(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	b := newRateBudget(map[Endpoint]float64{EndpointStatuses: 1}, 1, clk)
	bulk := context.Background()
	interactive := WithPriority(context.Background(), PriorityInteractive)
	if err := b.Wait(bulk, Production, EndpointStatuses); err != nil { // empties the bucket
		t.Fatal(err)
	}
	var bulkDone []<-chan error
	for range 3 {
		bulkDone = append(bulkDone, waitAsync(bulk, b, Production, EndpointStatuses))
	}
	clk.waitTimers(t, 3)
	inter := waitAsync(interactive, b, Production, EndpointStatuses)
	clk.waitTimers(t, 4) // the interactive caller is queued too

	// One token: it goes to the interactive caller, who came last.
	clk.Advance(time.Second)
	if err := mustReceive(t, inter); err != nil {
		t.Fatal(err)
	}
	clk.waitTimers(t, 3) // the bulk callers went back to sleep
	for i, ch := range bulkDone {
		notYet(t, ch, "bulk caller "+string(rune('0'+i)))
	}
	// Then one bulk caller per token.
	for left := 3; left > 0; left-- {
		clk.Advance(time.Second)
		finished := 0
		for finished == 0 {
			for i, ch := range bulkDone {
				if ch == nil {
					continue
				}
				select {
				case err := <-ch:
					if err != nil {
						t.Fatal(err)
					}
					bulkDone[i] = nil
					finished++
				default:
				}
			}
			time.Sleep(time.Millisecond)
		}
		clk.waitTimers(t, left-1)
		for _, ch := range bulkDone {
			if ch != nil {
				notYet(t, ch, "bulk caller without a token")
			}
		}
		if finished != 1 {
			t.Fatalf("%d bulk callers served by one token", finished)
		}
	}
}

// A bulk caller arriving while an interactive one waits yields to it even
// when the bulk caller would find a token first.
func TestRateBudgetBulkYieldsWhileInteractiveQueued(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	b := newRateBudget(map[Endpoint]float64{EndpointStatuses: 1}, 1, clk)
	interactive := WithPriority(context.Background(), PriorityInteractive)
	// The interactive caller waits behind a throttle...
	b.Throttle(Production, EndpointStatuses, clk.Now().Add(10*time.Second))
	inter := waitAsync(interactive, b, Production, EndpointStatuses)
	clk.waitTimers(t, 1)
	// ...and a bulk caller arriving now must not take the token later.
	bulk := waitAsync(context.Background(), b, Production, EndpointStatuses)
	clk.waitTimers(t, 2)
	clk.Advance(10 * time.Second)
	if err := mustReceive(t, inter); err != nil {
		t.Fatal(err)
	}
	clk.waitTimers(t, 1)
	notYet(t, bulk, "bulk caller")
	clk.Advance(time.Second)
	if err := mustReceive(t, bulk); err != nil {
		t.Fatal(err)
	}
}

func TestRateBudgetThrottle(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	b := newRateBudget(map[Endpoint]float64{EndpointHistory: 10}, 1, clk)
	ctx := context.Background()
	until := clk.Now().Add(10 * time.Second)
	b.Throttle(Production, EndpointHistory, until)
	b.Throttle(Production, EndpointHistory, until.Add(-5*time.Second)) // earlier: ignored
	ch := waitAsync(ctx, b, Production, EndpointHistory)
	if p := clk.waitTimers(t, 1); !p[0].Equal(until) {
		t.Errorf("waiter sleeps until %v, want the throttle end %v", p[0], until)
	}
	// Other endpoints and environments are not throttled.
	if err := mustReceive(t, waitAsync(ctx, b, Sandbox, EndpointHistory)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(9 * time.Second)
	notYet(t, ch, "throttled Wait")
	clk.Advance(time.Second)
	if err := mustReceive(t, ch); err != nil {
		t.Fatal(err)
	}

	// A throttle arriving while a caller sleeps for a token extends its sleep.
	ch = waitAsync(ctx, b, Production, EndpointHistory)
	clk.waitTimers(t, 1)
	later := clk.Now().Add(30 * time.Second)
	b.Throttle(Production, EndpointHistory, later)
	deadline := time.Now().Add(10 * time.Second)
	for p := clk.pending(); len(p) != 1 || !p[0].Equal(later); p = clk.pending() {
		if time.Now().After(deadline) {
			t.Fatalf("pending timers %v, want one at %v", p, later)
		}
		time.Sleep(time.Millisecond)
	}
	clk.Advance(29 * time.Second)
	notYet(t, ch, "Wait throttled while sleeping")
	clk.Advance(time.Second)
	if err := mustReceive(t, ch); err != nil {
		t.Fatal(err)
	}
}

func TestRateBudgetCancel(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	b := newRateBudget(map[Endpoint]float64{EndpointStatuses: 1}, 1, clk)
	if err := b.Wait(context.Background(), Production, EndpointStatuses); err != nil {
		t.Fatal(err)
	}
	// A cancelled interactive waiter stops holding bulk callers back.
	bulk := waitAsync(context.Background(), b, Production, EndpointStatuses)
	clk.waitTimers(t, 1)
	ictx, cancel := context.WithCancel(WithPriority(context.Background(), PriorityInteractive))
	inter := waitAsync(ictx, b, Production, EndpointStatuses)
	clk.waitTimers(t, 2)
	cancel()
	if err := mustReceive(t, inter); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Wait returned %v", err)
	}
	clk.waitTimers(t, 1)
	clk.Advance(time.Second) // the token the cancelled caller did not take
	if err := mustReceive(t, bulk); err != nil {
		t.Fatal(err)
	}
	// An already-ended context fails at once.
	if err := b.Wait(ictx, Production, EndpointStatuses); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait with a cancelled ctx: %v", err)
	}
}

func TestRateBudgetLimits(t *testing.T) {
	t.Parallel()
	b := NewRateBudget(map[Endpoint]float64{EndpointHistory: 50, EndpointStatuses: 0}, 0)
	if err := b.Wait(context.Background(), Production, EndpointStatuses); err == nil {
		t.Error("a zero limit is not an error")
	}
	if err := b.Wait(context.Background(), Production, EndpointOrderLookup); err == nil {
		t.Error("a missing limit is not an error")
	}
	b.Throttle(Production, EndpointOrderLookup, time.Now().Add(time.Hour)) // ignored, no panic
	if got := b.Limit(Sandbox, EndpointHistory); got != 50 {
		t.Errorf("limits apply to every environment: sandbox history %v", got)
	}
	b.SetLimits(Sandbox, map[Endpoint]float64{EndpointHistory: 5})
	if b.Limit(Sandbox, EndpointHistory) != 5 || b.Limit(Production, EndpointHistory) != 50 || b.Limit(Sandbox, EndpointStatuses) != 0 {
		t.Errorf("SetLimits: sandbox %v, production %v", b.Limit(Sandbox, EndpointHistory), b.Limit(Production, EndpointHistory))
	}
	// The real clock works: a burst of 1 at 1000/s admits 3 calls quickly.
	fast := NewRateBudget(map[Endpoint]float64{EndpointHistory: 1000}, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 3 {
		if err := fast.Wait(ctx, Production, EndpointHistory); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRateBudgetSetLimitsUpdatesBuckets(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	b := newRateBudget(map[Endpoint]float64{EndpointHistory: 1}, 1, clk)
	ctx := context.Background()
	if err := b.Wait(ctx, Production, EndpointHistory); err != nil {
		t.Fatal(err)
	}
	b.SetLimits(Production, map[Endpoint]float64{EndpointHistory: 10})
	ch := waitAsync(ctx, b, Production, EndpointHistory)
	if p := clk.waitTimers(t, 1); p[0].Sub(clk.Now()) != 100*time.Millisecond {
		t.Errorf("after raising the limit to 10/s the next token is %v away", p[0].Sub(clk.Now()))
	}
	clk.Advance(100 * time.Millisecond)
	if err := mustReceive(t, ch); err != nil {
		t.Fatal(err)
	}
}

func TestDefaultRateLimits(t *testing.T) {
	t.Parallel()
	prod := DefaultRateLimits(Production, 1, nil)
	for _, e := range Endpoints {
		if prod[e] != ProductionRateLimit(e) || prod[e] <= 0 {
			t.Errorf("production %s = %v", e, prod[e])
		}
	}
	for e, v := range extraProductionRateLimits {
		if prod[e] != v {
			t.Errorf("production %s = %v, want %v", e, prod[e], v)
		}
	}
	sb := DefaultRateLimits(Sandbox, 0.5, map[Endpoint]float64{EndpointHistory: 20, "custom": 4})
	for e, want := range map[Endpoint]float64{
		EndpointStatuses:         2.5, // 50 × 10% × 0.5
		EndpointHistory:          1,   // override 20 (production figure) × 10% × 0.5
		"custom":                 0.2, // unknown keys kept, same rule
		EndpointRefundHistory:    0.5,
		EndpointTestNotification: 0.05,
	} {
		if got := sb[e]; !closeTo(got, want) {
			t.Errorf("sandbox share 0.5 %s = %v, want %v", e, got, want)
		}
	}
	for _, share := range []float64{0, -1, 2} {
		if got := DefaultRateLimits(Production, share, nil)[EndpointStatuses]; got != 50 {
			t.Errorf("share %v gives statuses %v, want 50 (share counts as 1)", share, got)
		}
	}
	if got := DefaultRateLimits(Production, 0.2, map[Endpoint]float64{EndpointOrderLookup: 5})[EndpointOrderLookup]; !closeTo(got, 1) {
		t.Errorf("production override 5 × share 0.2 = %v, want 1", got)
	}
}

func closeTo(a, b float64) bool { d := a - b; return d < 1e-9 && d > -1e-9 }
