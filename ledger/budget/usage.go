package budget

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/storesync/storesync/appstore"
)

// Querier is what Usage and ThrottledSince read with: a *pgxpool.Pool, a
// *pgx.Conn or a pgx.Tx.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Use is how much of the shared budget one endpoint used recently.
type Use struct {
	App         string
	Environment appstore.Environment
	Endpoint    appstore.Endpoint
	// Limit is the requests per second last configured for it.
	Limit float64
	// Requests granted (and so sent) and 429s received over the last
	// minute and the last hour.
	LastMinute, LastHour           int64
	ThrottledMinute, ThrottledHour int64
}

// MinutePercent is LastMinute as a percentage of the limit over a minute;
// 0 when no limit is known (a bucket last configured without one).
func (u Use) MinutePercent() float64 {
	if u.Limit <= 0 {
		return 0
	}
	return float64(u.LastMinute) / (u.Limit * 60) * 100
}

// Usage returns the use of every budget bucket active in the last hour, by
// app, environment and endpoint, measured on the database's clock (so
// processes with skewed clocks agree). No use in the last hour gives an
// empty slice, not an error.
func Usage(ctx context.Context, q Querier) ([]Use, error) {
	rows, err := q.Query(ctx, `
		WITH n AS (SELECT floor(extract(epoch FROM now()))::bigint AS s)
		SELECT u.app, u.environment, u.endpoint, COALESCE(max(b.rate), 0),
			COALESCE(sum(u.granted) FILTER (WHERE u.second > n.s - 60), 0),
			COALESCE(sum(u.granted), 0),
			COALESCE(sum(u.throttled) FILTER (WHERE u.second > n.s - 60), 0),
			COALESCE(sum(u.throttled), 0)
		FROM apple_budget_usage u CROSS JOIN n
		LEFT JOIN apple_budget b USING (app, environment, endpoint)
		WHERE u.second > n.s - 3600
		GROUP BY u.app, u.environment, u.endpoint
		ORDER BY u.app, u.environment, u.endpoint`)
	if err != nil {
		return nil, fmt.Errorf("reading rate budget usage: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Use, error) {
		var u Use
		var env, ep string
		err := r.Scan(&u.App, &env, &ep, &u.Limit, &u.LastMinute, &u.LastHour, &u.ThrottledMinute, &u.ThrottledHour)
		u.Environment, u.Endpoint = appstore.Environment(env), appstore.Endpoint(ep)
		return u, err
	})
}

// ThrottledSince counts the 429s recorded by every process since since (to
// the second). Usage older than two hours is pruned, so a since further
// back counts only the last two hours.
func ThrottledSince(ctx context.Context, q Querier, since time.Time) (int64, error) {
	var n int64
	err := q.QueryRow(ctx, `SELECT COALESCE(sum(throttled), 0) FROM apple_budget_usage WHERE second >= $1`,
		since.Unix()).Scan(&n)
	return n, err
}
