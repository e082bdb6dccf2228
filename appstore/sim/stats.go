package sim

import (
	"sync"

	"github.com/storesync/storesync/appstore"
)

// Stats is a snapshot of what the simulator served, for tests and
// benchmarks.
type Stats struct {
	// Endpoints has one entry per (environment, endpoint), production
	// first, in appstore.Endpoints order, then Get Test Notification
	// Status and the endpoints only the Client calls.
	Endpoints []EndpointStats `json:"endpoints"`
	Webhook   WebhookStats    `json:"webhook"`
}

// EndpointStats counts the requests one endpoint of one environment got.
type EndpointStats struct {
	Environment appstore.Environment `json:"environment"`
	Endpoint    appstore.Endpoint    `json:"endpoint"`
	// Requests counts every request routed to the endpoint, whatever the
	// answer (401 and 429 included).
	Requests int64 `json:"requests"`
	// RateLimited counts 429 answers (limits and 429 storms).
	RateLimited int64 `json:"rateLimited"`
	// ByStatus counts answers by HTTP status.
	ByStatus map[int]int64 `json:"byStatus"`
}

// WebhookStats counts notifications and their deliveries.
type WebhookStats struct {
	// Notifications counts every notification created (TEST included).
	Notifications int64 `json:"notifications"`
	// Delivered counts deliveries answered 200–206.
	Delivered int64 `json:"delivered"`
	// Failed counts deliveries that got another status or no answer.
	Failed int64 `json:"failed"`
	// Dropped counts deliveries dropped on purpose (Options.DropShare).
	Dropped int64 `json:"dropped"`
}

// Endpoint returns the entry for env and ep (zero counts if absent).
func (s Stats) Endpoint(env appstore.Environment, ep appstore.Endpoint) EndpointStats {
	for _, e := range s.Endpoints {
		if e.Environment == env && e.Endpoint == ep {
			return e
		}
	}
	return EndpointStats{Environment: env, Endpoint: ep, ByStatus: map[int]int64{}}
}

// Total sums every endpoint of both environments.
func (s Stats) Total() EndpointStats {
	t := EndpointStats{ByStatus: map[int]int64{}}
	for _, e := range s.Endpoints {
		t.Requests += e.Requests
		t.RateLimited += e.RateLimited
		for k, v := range e.ByStatus {
			t.ByStatus[k] += v
		}
	}
	return t
}

type statsCollector struct {
	mu   sync.Mutex
	eps  map[limitKey]*EndpointStats
	keys []limitKey
}

func newStatsCollector() *statsCollector {
	c := &statsCollector{eps: map[limitKey]*EndpointStats{}}
	for _, env := range []appstore.Environment{appstore.Production, appstore.Sandbox} {
		for _, ep := range simEndpoints {
			k := limitKey{env, ep}
			c.keys = append(c.keys, k)
			c.eps[k] = &EndpointStats{Environment: env, Endpoint: ep, ByStatus: map[int]int64{}}
		}
	}
	return c
}

func (c *statsCollector) record(env appstore.Environment, ep appstore.Endpoint, status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.eps[limitKey{env, ep}]
	if e == nil {
		return
	}
	e.Requests++
	if status == 429 {
		e.RateLimited++
	}
	e.ByStatus[status]++
}

func (c *statsCollector) snapshot() []EndpointStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]EndpointStats, 0, len(c.keys))
	for _, k := range c.keys {
		e := *c.eps[k]
		e.ByStatus = make(map[int]int64, len(c.eps[k].ByStatus))
		for s, n := range c.eps[k].ByStatus {
			e.ByStatus[s] = n
		}
		out = append(out, e)
	}
	return out
}
