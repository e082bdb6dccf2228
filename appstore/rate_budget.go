package appstore

import (
	"context"
	"fmt"
	"maps"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateBudget is an in-process Budget: one token bucket (x/time/rate) per
// environment and endpoint. It suits a single storesync process, tests and
// tools; several processes sharing Apple's limits need a shared budget.
//
// Interactive callers (WithPriority(ctx, PriorityInteractive)) go first:
// while one is waiting for an endpoint, bulk callers of that endpoint take
// no token, so the interactive caller gets the next one however many bulk
// callers queue. Among callers of the same priority the order is not
// defined.
//
// Throttle (Apple's 429 with Retry-After) stops every Wait for that
// endpoint until the given time, including the ones already waiting.
type RateBudget struct {
	mu       sync.Mutex
	defaults map[Endpoint]float64
	byEnv    map[Environment]map[Endpoint]float64
	burst    int
	states   map[budgetKey]*budgetState
	clock    budgetClock
}

type budgetKey struct {
	env Environment
	ep  Endpoint
}

// budgetState is one bucket and who waits on it; guarded by RateBudget.mu.
type budgetState struct {
	limiter     *rate.Limiter
	until       time.Time     // throttled until (Apple's Retry-After)
	interactive int           // interactive callers inside Wait
	changed     chan struct{} // closed (and replaced) when until or interactive change
}

func (s *budgetState) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// NewRateBudget returns a budget allowing limits[e] requests per second to
// each endpoint e, in every environment (see SetLimits for per-environment
// limits, e.g. from DefaultRateLimits). burst is how many requests may go at
// once after a quiet period; below 1 counts as 1. Waiting for an endpoint
// with no positive limit is an error, never unlimited.
func NewRateBudget(limits map[Endpoint]float64, burst int) *RateBudget {
	return newRateBudget(limits, burst, realClock{})
}

func newRateBudget(limits map[Endpoint]float64, burst int, clock budgetClock) *RateBudget {
	return &RateBudget{
		defaults: maps.Clone(limits),
		byEnv:    map[Environment]map[Endpoint]float64{},
		burst:    max(burst, 1),
		states:   map[budgetKey]*budgetState{},
		clock:    clock,
	}
}

// SetLimits replaces the limits used for env (in place of those given to
// NewRateBudget), e.g. DefaultRateLimits(Sandbox, …) for sandbox fallback.
// Buckets already in use take the new rate at once.
func (b *RateBudget) SetLimits(env Environment, limits map[Endpoint]float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.byEnv[env] = maps.Clone(limits)
	now := b.clock.Now()
	for k, s := range b.states {
		if k.env == env {
			if l := b.limitLocked(env, k.ep); l > 0 {
				s.limiter.SetLimitAt(now, rate.Limit(l))
			}
		}
	}
}

// Limit returns the requests per second allowed to endpoint in env; 0 when
// none is configured.
func (b *RateBudget) Limit(env Environment, endpoint Endpoint) float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.limitLocked(env, endpoint)
}

func (b *RateBudget) limitLocked(env Environment, ep Endpoint) float64 {
	limits, ok := b.byEnv[env]
	if !ok {
		limits = b.defaults
	}
	if l := limits[ep]; l > 0 && !math.IsNaN(l) {
		return l
	}
	return 0
}

func (b *RateBudget) stateLocked(env Environment, ep Endpoint) (*budgetState, error) {
	k := budgetKey{env, ep}
	if s, ok := b.states[k]; ok {
		return s, nil
	}
	l := b.limitLocked(env, ep)
	if l <= 0 {
		return nil, fmt.Errorf("appstore: rate budget has no limit for endpoint %q in %s: add it to the limits", ep, env)
	}
	s := &budgetState{limiter: rate.NewLimiter(rate.Limit(l), b.burst), changed: make(chan struct{})}
	b.states[k] = s
	return s, nil
}

// Wait blocks until one request to endpoint in env may be sent, serving
// interactive callers before bulk ones. It returns ctx's error if ctx ends
// first (no token is spent then), or an error if endpoint has no limit.
func (b *RateBudget) Wait(ctx context.Context, env Environment, endpoint Endpoint) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	interactive := PriorityFrom(ctx) >= PriorityInteractive
	b.mu.Lock()
	defer b.mu.Unlock()
	s, err := b.stateLocked(env, endpoint)
	if err != nil {
		return err
	}
	if interactive {
		s.interactive++
		defer func() { // runs before the Unlock above
			s.interactive--
			s.notify()
		}()
	}
	for {
		now := b.clock.Now()
		var wait time.Duration // 0: until something changes
		switch {
		case now.Before(s.until):
			wait = s.until.Sub(now)
		case !interactive && s.interactive > 0:
			// Yield: the interactive caller takes the next token.
		case s.limiter.AllowN(now, 1):
			return nil
		default:
			wait = tokenDelay(s.limiter, now)
		}
		changed := s.changed
		b.mu.Unlock()
		err := b.sleep(ctx, wait, changed)
		b.mu.Lock()
		if err != nil {
			return err
		}
	}
}

// tokenDelay is how long until l has one whole token.
func tokenDelay(l *rate.Limiter, now time.Time) time.Duration {
	missing := 1 - l.TokensAt(now)
	d := time.Duration(math.Ceil(missing / float64(l.Limit()) * float64(time.Second)))
	return max(d, time.Nanosecond)
}

// sleep waits for d (0: no timer), a change, or the end of ctx.
func (b *RateBudget) sleep(ctx context.Context, d time.Duration, changed <-chan struct{}) error {
	var fired <-chan time.Time
	if d > 0 {
		c, stop := b.clock.NewTimer(d)
		defer stop()
		fired = c
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-fired:
	case <-changed:
	}
	return nil
}

// Throttle stops every Wait for endpoint in env until until (Apple's
// Retry-After). An earlier until than one already set is ignored.
func (b *RateBudget) Throttle(env Environment, endpoint Endpoint, until time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, err := b.stateLocked(env, endpoint)
	if err != nil || !until.After(s.until) {
		return // no limit: Wait refuses this endpoint anyway
	}
	s.until = until
	s.notify()
}

// budgetClock lets tests drive RateBudget with a fake clock.
type budgetClock interface {
	Now() time.Time
	// NewTimer returns a channel receiving once after d and a stop func.
	NewTimer(d time.Duration) (<-chan time.Time, func() bool)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}
