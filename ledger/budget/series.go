package budget

import (
	"context"
	"fmt"
	"time"

	"github.com/storesync/storesync/appstore"
)

// Point is one step of an endpoint's budget use over time.
type Point struct {
	// Start is the first second of the step (the database's clock).
	Start time.Time
	// Granted and Throttled are the requests sent and the 429s received
	// during the step, by every process together.
	Granted, Throttled int64
}

// Series is one endpoint's use, step by step, oldest first.
type Series struct {
	App         string
	Environment appstore.Environment
	Endpoint    appstore.Endpoint
	// Limit is the requests per second last configured for it (0 when
	// unknown).
	Limit float64
	// Step is the length of each point; Points cover every step of the
	// window, with zeros where nothing was sent (so a chart's x axis is
	// regular).
	Step   time.Duration
	Points []Point
}

// UsageSeries returns, for every bucket with use in the window ending
// now, its requests and 429s per step. Usage older than two hours is
// pruned, so a longer window shows zeros before that; window is capped at
// 24 h and step must be at least a second and divide nothing in
// particular (the last step may be partial). No use gives an empty slice.
func UsageSeries(ctx context.Context, q Querier, window, step time.Duration) ([]Series, error) {
	if step < time.Second || window < step || window > 24*time.Hour {
		return nil, fmt.Errorf("budget: UsageSeries window %s step %s: want 1s <= step <= window <= 24h", window, step)
	}
	w, s := int64(window/time.Second), int64(step/time.Second)
	rows, err := q.Query(ctx, `
		WITH n AS (SELECT floor(extract(epoch FROM now()))::bigint AS now_s),
		k AS (SELECT DISTINCT u.app, u.environment, u.endpoint FROM apple_budget_usage u, n WHERE u.second > n.now_s - $1),
		steps AS (SELECT g AS i FROM generate_series(0, ($1::bigint - 1) / $2::bigint) g)
		SELECT k.app, k.environment, k.endpoint, COALESCE(b.rate, 0), n.now_s - $1 + steps.i * $2,
			COALESCE(sum(u.granted), 0), COALESCE(sum(u.throttled), 0)
		FROM k CROSS JOIN n CROSS JOIN steps
		LEFT JOIN apple_budget b USING (app, environment, endpoint)
		LEFT JOIN apple_budget_usage u ON u.app = k.app AND u.environment = k.environment AND u.endpoint = k.endpoint
			AND u.second > n.now_s - $1 + steps.i * $2 AND u.second <= n.now_s - $1 + (steps.i + 1) * $2
		GROUP BY k.app, k.environment, k.endpoint, b.rate, n.now_s, steps.i
		ORDER BY k.app, k.environment, k.endpoint, steps.i`, w, s)
	if err != nil {
		return nil, fmt.Errorf("reading rate budget usage series: %w", err)
	}
	defer rows.Close()
	var out []Series
	for rows.Next() {
		var app, env, ep string
		var limit float64
		var start, granted, throttled int64
		if err := rows.Scan(&app, &env, &ep, &limit, &start, &granted, &throttled); err != nil {
			return nil, err
		}
		if n := len(out); n == 0 || out[n-1].App != app || string(out[n-1].Environment) != env || string(out[n-1].Endpoint) != ep {
			out = append(out, Series{App: app, Environment: appstore.Environment(env), Endpoint: appstore.Endpoint(ep), Limit: limit, Step: step})
		}
		cur := &out[len(out)-1]
		cur.Points = append(cur.Points, Point{Start: time.Unix(start, 0), Granted: granted, Throttled: throttled})
	}
	return out, rows.Err()
}
