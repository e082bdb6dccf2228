package sim

import (
	"math"
	"sync"
	"time"

	"github.com/storesync/storesync/appstore"
)

// EndpointTestNotificationStatus is Get Test Notification Status. Apple
// limits it separately from Request a Test Notification (1 request/s each),
// so the simulator gives it its own bucket and stats; its limit follows
// appstore.EndpointTestNotification.
const EndpointTestNotificationStatus appstore.Endpoint = "test-notification-status"

// simEndpoints are the endpoints the simulator limits and counts:
// storesync's (appstore.Endpoints), then the ones only the Client calls.
var simEndpoints = append(append([]appstore.Endpoint(nil), appstore.Endpoints...),
	EndpointTestNotificationStatus, appstore.EndpointExtendRenewalDate, appstore.EndpointMassExtendRenewalDate,
	appstore.EndpointMassExtendStatus, appstore.EndpointAppAccountToken)

// appleProductionLimits are Apple's production limits of every endpoint the
// Client calls, including those storesync's jobs never call (which
// appstore.ProductionRateLimit leaves out).
var appleProductionLimits = appstore.DefaultRateLimits(appstore.Production, 1, nil)

// appleLimit is Apple's limit of ep in env: the production figure, 10% of
// it in the sandbox; 0 for an endpoint without one.
func appleLimit(ep appstore.Endpoint, env appstore.Environment) float64 {
	v := appleProductionLimits[ep]
	if env != appstore.Production {
		v /= 10
	}
	return v
}

// limitedEndpoints are the endpoints Options.RateLimits may name: those the
// simulator serves that have a limit of their own (Get Test Notification
// Status shares Request a Test Notification's).
func limitedEndpoints() []appstore.Endpoint {
	var out []appstore.Endpoint
	for _, ep := range simEndpoints {
		if appleProductionLimits[ep] > 0 {
			out = append(out, ep)
		}
	}
	return out
}

// baseEndpoint maps an endpoint to the one whose configured limit it uses.
func baseEndpoint(ep appstore.Endpoint) appstore.Endpoint {
	if ep == EndpointTestNotificationStatus {
		return appstore.EndpointTestNotification
	}
	return ep
}

// bucket is a token bucket on wall time. A zero rate means unlimited.
type bucket struct {
	mu     sync.Mutex
	rate   float64 // tokens per second
	burst  float64 // capacity
	tokens float64
	last   time.Time
}

// take spends one token at now. When none is left it returns false and
// the instant one will be available.
func (b *bucket) take(now time.Time) (bool, time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.rate <= 0 {
		return true, time.Time{}
	}
	if b.last.IsZero() {
		b.tokens = b.burst
	} else if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = math.Min(b.burst, b.tokens+el*b.rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, time.Time{}
	}
	wait := time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
	return false, now.Add(wait)
}

func (b *bucket) set(rate float64, burst time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rate = rate
	b.burst = math.Max(1, rate*burst.Seconds())
	b.tokens = math.Min(b.tokens, b.burst)
	if b.last.IsZero() {
		b.tokens = b.burst
	}
}

// rateLimiter holds one bucket per (environment, endpoint), like Apple's
// per-app, per-endpoint limits.
type rateLimiter struct {
	burst   time.Duration
	buckets map[limitKey]*bucket
}

type limitKey struct {
	env appstore.Environment
	ep  appstore.Endpoint
}

func newRateLimiter(o Options) *rateLimiter {
	l := &rateLimiter{burst: o.Burst, buckets: map[limitKey]*bucket{}}
	for _, env := range []appstore.Environment{appstore.Production, appstore.Sandbox} {
		for _, ep := range simEndpoints {
			b := &bucket{}
			if !o.DisableRateLimits {
				b.set(configuredLimit(o, env, baseEndpoint(ep)), o.Burst)
			}
			l.buckets[limitKey{env, ep}] = b
		}
	}
	return l
}

// configuredLimit is the limit Options give ep in env.
func configuredLimit(o Options, env appstore.Environment, ep appstore.Endpoint) float64 {
	if env == appstore.Sandbox {
		if v, ok := o.SandboxRateLimits[ep]; ok {
			return v
		}
		if v, ok := o.RateLimits[ep]; ok {
			return v / 10
		}
		return appleLimit(ep, appstore.Sandbox)
	}
	if v, ok := o.RateLimits[ep]; ok {
		return v
	}
	return appleLimit(ep, appstore.Production)
}

func (l *rateLimiter) take(env appstore.Environment, ep appstore.Endpoint, now time.Time) (bool, time.Time) {
	b := l.buckets[limitKey{env, ep}]
	if b == nil {
		return true, time.Time{}
	}
	return b.take(now)
}
