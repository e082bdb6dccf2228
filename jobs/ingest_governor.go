package jobs

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of IngestGovernorOptions.
const (
	DefaultIngestBusyRate     = 100.0
	DefaultIngestYieldWorkers = 1
	DefaultIngestYieldRate    = 10.0
)

// ingestWindow is how far back the governor counts webhook arrivals, in
// ingestBuckets slices: one second reacts within a second to a burst and
// forgets it a second after it ends.
const (
	ingestWindow  = time.Second
	ingestBuckets = 10
)

// ingestPollEvery is how often a processing job waiting for a slot looks
// again. Waiting jobs are few (one per River worker) and the check is a
// mutex and a sum of ten counters.
const ingestPollEvery = 20 * time.Millisecond

// IngestGovernorOptions configures an IngestGovernor. Zero fields take the
// defaults.
type IngestGovernorOptions struct {
	// BusyRate is the webhook arrival rate (requests/s over the last
	// second) from which processing yields. Default DefaultIngestBusyRate:
	// far above a normal app's rate (Apple sends a notification per
	// renewal), reached in a burst such as Apple re-sending a backlog
	// after an outage.
	BusyRate float64
	// YieldWorkers is how many notification-processing jobs of this
	// process may run while ingest is busy. At least 1, so the backlog
	// keeps draining during a long burst. Default DefaultIngestYieldWorkers.
	YieldWorkers int
	// YieldRate is how many notification-processing jobs of this process
	// may start per second while ingest is busy (and no more than
	// YieldWorkers at once). Above zero, so a long burst still drains.
	// Default DefaultIngestYieldRate: one worker alone processes 60–70
	// notifications/s, and on a small host each takes CPU the webhook
	// needs to answer Apple in time (processing one costs serve and
	// Postgres about twice what storing one does).
	YieldRate float64
	// MaxWait bounds how long one processing job waits for a slot before it
	// snoozes (returning its River worker and its job timeout); default 10s.
	MaxWait time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// IngestGovernor lets notification processing yield to webhook ingest in
// one process. Answering Apple quickly matters more than applying what was
// stored a second earlier: the notification is durable once answered, and
// processing it is CPU (three signature verifications) and Postgres work
// on the same cores. The webhook reports each verified notification
// (Arrived; forged posts do not count, so they cannot stall processing); while the
// arrival rate is at least BusyRate, at most YieldWorkers processing jobs
// run and at most YieldRate start per second (Acquire waits), and the
// backlog drains at full width once the rate falls. A nil *IngestGovernor never makes anyone wait.
//
// It governs one process: with several serve processes each counts the
// webhooks it receives and holds back its own workers, which is what a
// load balancer in front of them makes fair.
type IngestGovernor struct {
	opts IngestGovernorOptions

	mu       sync.Mutex
	counts   [ingestBuckets]int
	bucketAt time.Time // start of the bucket counts[index] counts
	index    int
	running  int // processing jobs holding a slot
	// yieldStarts paces the jobs started while busy (YieldRate); its
	// clock is opts.Now, so tests move it by hand.
	yieldStarts *rate.Limiter
}

// NewIngestGovernor validates opts and returns a governor.
func NewIngestGovernor(opts IngestGovernorOptions) (*IngestGovernor, error) {
	switch {
	case opts.BusyRate < 0:
		return nil, fmt.Errorf("jobs: IngestGovernorOptions.BusyRate %g is negative: use a rate in notifications/s such as %g", opts.BusyRate, DefaultIngestBusyRate)
	case opts.YieldWorkers < 0:
		return nil, fmt.Errorf("jobs: IngestGovernorOptions.YieldWorkers %d is negative: use at least 1", opts.YieldWorkers)
	case opts.YieldRate < 0:
		return nil, fmt.Errorf("jobs: IngestGovernorOptions.YieldRate %g is negative: use processing jobs per second such as %g", opts.YieldRate, DefaultIngestYieldRate)
	case opts.MaxWait < 0:
		return nil, fmt.Errorf("jobs: IngestGovernorOptions.MaxWait %s is negative", opts.MaxWait)
	}
	if opts.BusyRate == 0 {
		opts.BusyRate = DefaultIngestBusyRate
	}
	if opts.YieldWorkers == 0 {
		opts.YieldWorkers = DefaultIngestYieldWorkers
	}
	if opts.YieldRate == 0 {
		opts.YieldRate = DefaultIngestYieldRate
	}
	if opts.MaxWait == 0 {
		opts.MaxWait = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &IngestGovernor{opts: opts, yieldStarts: rate.NewLimiter(rate.Limit(opts.YieldRate), 1)}, nil
}

// Arrived records n webhook requests now.
func (g *IngestGovernor) Arrived(n int) {
	if g == nil {
		return
	}
	g.mu.Lock()
	g.advance(g.opts.Now())
	g.counts[g.index] += n
	g.mu.Unlock()
}

// Rate is the webhook arrival rate over the last second, requests/s.
func (g *IngestGovernor) Rate() float64 {
	if g == nil {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.rate(g.opts.Now())
}

// Busy says whether ingest is at or above BusyRate now.
func (g *IngestGovernor) Busy() bool {
	return g != nil && g.Rate() >= g.opts.BusyRate
}

// Acquire waits for a processing slot: at once while ingest is not busy,
// else until fewer than YieldWorkers jobs hold one and YieldRate allows
// one more start, or the rate falls. It
// returns the release to call when processing ends and how long it
// waited; ok is false when it gave up after MaxWait (the caller should
// snooze) or ctx ended.
func (g *IngestGovernor) Acquire(ctx context.Context) (release func(), waited time.Duration, ok bool) {
	if g == nil {
		return func() {}, 0, true
	}
	start := g.opts.Now()
	var tick *time.Ticker
	for {
		g.mu.Lock()
		now := g.opts.Now()
		if g.rate(now) < g.opts.BusyRate || (g.running < g.opts.YieldWorkers && g.yieldStarts.AllowN(now, 1)) {
			g.running++
			g.mu.Unlock()
			if tick != nil {
				tick.Stop()
			}
			var once sync.Once
			return func() {
				once.Do(func() {
					g.mu.Lock()
					g.running--
					g.mu.Unlock()
				})
			}, now.Sub(start), true
		}
		g.mu.Unlock()
		if now.Sub(start) >= g.opts.MaxWait {
			if tick != nil {
				tick.Stop()
			}
			return nil, now.Sub(start), false
		}
		if tick == nil {
			tick = time.NewTicker(ingestPollEvery)
		}
		select {
		case <-ctx.Done():
			tick.Stop()
			return nil, g.opts.Now().Sub(start), false
		case <-tick.C:
		}
	}
}

// advance moves the ring to now, zeroing the buckets of the time that
// passed. g.mu is held.
func (g *IngestGovernor) advance(now time.Time) {
	width := ingestWindow / ingestBuckets
	if g.bucketAt.IsZero() {
		g.bucketAt = now.Truncate(width)
		return
	}
	steps := int(now.Sub(g.bucketAt) / width)
	if steps <= 0 {
		return // same bucket, or a clock that stepped back
	}
	for i := 0; i < min(steps, ingestBuckets); i++ {
		g.index = (g.index + 1) % ingestBuckets
		g.counts[g.index] = 0
	}
	g.bucketAt = g.bucketAt.Add(time.Duration(steps) * width)
}

// rate sums the window. g.mu is held.
func (g *IngestGovernor) rate(now time.Time) float64 {
	g.advance(now)
	total := 0
	for _, c := range g.counts {
		total += c
	}
	return float64(total) / ingestWindow.Seconds()
}
