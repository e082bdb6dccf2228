package jobs

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/jobs/jobstest"
)

// fakeClock is a clock a test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// acquireInBackground calls g.Acquire in a goroutine; the channel gets
// its release once it returns.
func acquireInBackground(g *IngestGovernor, ctx context.Context) <-chan func() {
	got := make(chan func(), 1)
	go func() {
		release, _, _ := g.Acquire(ctx)
		got <- release
	}()
	return got
}

func TestIngestGovernorOptionsValidated(t *testing.T) {
	t.Parallel()
	for _, o := range []IngestGovernorOptions{{BusyRate: -1}, {YieldWorkers: -1}, {YieldRate: -1}, {MaxWait: -time.Second}} {
		if _, err := NewIngestGovernor(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	g, err := NewIngestGovernor(IngestGovernorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if g.opts.BusyRate != DefaultIngestBusyRate || g.opts.YieldWorkers != DefaultIngestYieldWorkers || g.opts.YieldRate != DefaultIngestYieldRate {
		t.Fatalf("defaults not taken: %+v", g.opts)
	}
	var none *IngestGovernor // a nil governor never holds anyone back
	none.Arrived(1000)
	if release, _, ok := none.Acquire(context.Background()); !ok || none.Busy() {
		t.Fatal("a nil governor made a job wait")
	} else {
		release()
	}
}

// While the webhook is busy only YieldWorkers jobs run; the others wait and
// run as soon as a slot frees or the burst ends.
func TestIngestGovernorYieldsThenDrains(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	g, err := NewIngestGovernor(IngestGovernorOptions{BusyRate: 10, YieldWorkers: 1, MaxWait: time.Hour, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Quiet: every job runs at once, however many.
	var releases []func()
	for range 3 {
		release, waited, ok := g.Acquire(ctx)
		if !ok || waited != 0 {
			t.Fatalf("quiet: ok %t, waited %s", ok, waited)
		}
		releases = append(releases, release)
	}
	// A burst: 20 requests within the last second.
	g.Arrived(20)
	if !g.Busy() || g.Rate() != 20 {
		t.Fatalf("busy %t at rate %g, want busy at 20/s", g.Busy(), g.Rate())
	}
	got := acquireInBackground(g, ctx)
	select {
	case <-got:
		t.Fatal("a fourth job ran while ingest was busy and 3 held slots (yield workers 1)")
	case <-time.After(100 * time.Millisecond):
	}
	releases[0]()
	releases[0]() // a release is idempotent: it never frees a slot twice
	releases[1]()
	select {
	case <-got:
		t.Fatal("ran with 1 slot held (yield workers 1)")
	case <-time.After(100 * time.Millisecond):
	}
	releases[2]()
	var fourth func()
	select {
	case fourth = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting job did not run once a slot freed")
	}
	// Still busy and the one slot taken: a fifth waits until the burst ages
	// out of the window.
	got = acquireInBackground(g, ctx)
	select {
	case <-got:
		t.Fatal("a fifth job ran while busy with the slot taken")
	case <-time.After(100 * time.Millisecond):
	}
	clock.Advance(1100 * time.Millisecond)
	select {
	case fifth := <-got:
		fifth()
	case <-time.After(5 * time.Second):
		t.Fatal("the backlog did not drain after the burst")
	}
	if g.Busy() {
		t.Fatalf("still busy at %g/s a second after the burst", g.Rate())
	}
	fourth()
}

// While busy, jobs start no faster than YieldRate even with slots free;
// once the burst ends they start at once.
func TestIngestGovernorPacesStartsWhileBusy(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	g, err := NewIngestGovernor(IngestGovernorOptions{BusyRate: 10, YieldWorkers: 5, YieldRate: 2, MaxWait: time.Hour, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	g.Arrived(20)
	first, _, ok := g.Acquire(ctx)
	if !ok {
		t.Fatal("the first job while busy did not start")
	}
	first()
	got := acquireInBackground(g, ctx)
	select {
	case <-got:
		t.Fatal("a second job started at once while busy, with 4 slots free: want it paced at 2/s")
	case <-time.After(150 * time.Millisecond):
	}
	clock.Advance(500 * time.Millisecond) // one start's worth at 2/s; still busy
	select {
	case second := <-got:
		second()
	case <-time.After(5 * time.Second):
		t.Fatal("the second job did not start half a second later (2/s)")
	}
	clock.Advance(2 * time.Second) // the burst is over
	for range 5 {
		release, waited, ok := g.Acquire(ctx)
		if !ok || waited != 0 {
			t.Fatalf("after the burst: ok %t, waited %s; want every job at once", ok, waited)
		}
		defer release()
	}
}

// A job that cannot get a slot within MaxWait gives up (the worker
// snoozes), and a cancelled one returns at once.
func TestIngestGovernorGivesUpAfterMaxWait(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	g, err := NewIngestGovernor(IngestGovernorOptions{BusyRate: 1, YieldWorkers: 1, MaxWait: 2 * time.Second, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	g.Arrived(5)
	hold, _, _ := g.Acquire(context.Background())
	defer hold()
	done := make(chan bool, 1)
	go func() {
		_, _, ok := g.Acquire(context.Background())
		done <- ok
	}()
	for i := 0; i < 10; i++ { // keep the burst going while time passes
		clock.Advance(300 * time.Millisecond)
		g.Arrived(5)
		time.Sleep(30 * time.Millisecond)
	}
	select {
	case ok := <-done:
		if ok {
			t.Fatal("got a slot while busy with the only slot held")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("did not give up after MaxWait")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, ok := g.Acquire(ctx); ok {
		t.Fatal("a cancelled job got a slot while busy")
	}
}

// End to end: a burst through the webhook makes processing yield (the
// metric counts it), and every notification is processed afterwards.
func TestWebhookBurstProcessingYieldsThenDrains(t *testing.T) {
	t.Parallel()
	g, err := NewIngestGovernor(IngestGovernorOptions{BusyRate: 2, YieldWorkers: 1})
	if err != nil {
		t.Fatal(err)
	}
	e := newHookEnv(t, hookEnvOptions{Work: true, Ingest: g})
	const n = 40
	signed := make([]string, n)
	for i := range signed {
		signed[i] = jobstest.NewNote(appstore.Production, time.Now()).Sign(t, e.ca)
	}
	var failed atomic.Int32
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				if code := e.postSigned(signed[i]); code != 200 {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d of %d webhooks not answered 200", failed.Load(), n)
	}
	e.waitIdle(2*time.Minute, ProcessNotificationArgs{}.Kind())
	if left := e.count(`SELECT count(*) FROM notifications WHERE processed_at IS NULL`); left != 0 {
		t.Fatalf("%d notifications left unprocessed after the burst", left)
	}
	if yielded := counterValue(e.deps.Metrics.ProcessingYielded); yielded == 0 {
		t.Fatal("no processing job yielded to a burst of 40 webhooks at a busy rate of 2/s")
	}
}
