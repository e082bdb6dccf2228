package population

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// finish writes what is per run rather than per subscription: the import
// run's totals, a week of nightly reconciliation runs with their drift
// (0.1% of the subscriptions a night, repaired) and the import's conflicts
// (one subscription in 500, over the last 30 days); it moves the feed's
// id sequence past the ids Fill chose and ANALYZEs.
func finish(ctx context.Context, pool *pgxpool.Pool, o Options, b *builder, res *Result) error {
	n := int64(o.Subscriptions)
	steps := []struct {
		what, sql string
		args      []any
		count     *int64
	}{
		{"the import run's totals", `UPDATE import_runs SET total_rows = $2, enqueued = $2 WHERE id = $1`,
			[]any{b.importRun, res.ImportRows}, nil},
		{"the feed's id sequence", `SELECT setval(pg_get_serial_sequence('subscription_events', 'id'), $1)`,
			[]any{n*eventsPerSubscription + 1}, nil},
		{"reconciliation runs", `INSERT INTO reconcile_runs (run_key, as_of, started_at, finished_at, phase,
				call_cap, calls_used, checked, total_subscriptions, rolling_quota, repaired, sweep_since, sweep_until)
			SELECT 'nightly-' || to_char(s, 'YYYY-MM-DD'), s, s, s + interval '2 hours', 'done',
				1080000, $2 / 7 + $2 / 50, jsonb_build_object('rolling', $2 / 7, 'due', $2 / 100,
					'billing_retry', $2 / 100, 'refunded', $2 / 1000), $2, ($2 + 6) / 7, $2 / 1000,
				s - interval '1 day', s
			FROM (SELECT date_trunc('day', $1::timestamptz) - d * interval '1 day' + interval '2 hours' AS s
				FROM generate_series(1, 7) d) x ORDER BY s`,
			[]any{o.Now, n}, &res.ReconcileRuns},
		{"drift", `INSERT INTO drift (run_id, original_transaction_id, class, field, ledger_value, apple_value, found_at, repaired_at)
			SELECT r.id, (2000000000000000 + g)::text,
				(ARRAY['missing_notification', 'renewal_changed', 'expired_at_apple', 'auto_renew_changed',
					'missing_transaction', 'active_at_apple'])[1 + (g % 6)],
				(ARRAY['notification', 'expires_date', 'status', 'auto_renew_status', 'transaction_id', 'status'])[1 + (g % 6)],
				'', 'apple-' || g, r.started_at + interval '30 minutes', r.started_at + interval '31 minutes'
			FROM reconcile_runs r CROSS JOIN generate_series(0, $1::bigint - 1) g
			WHERE (g * 2654435761 + r.id) % 1000 = 0`, []any{n}, &res.Drift},
		{"conflicts", `INSERT INTO conflicts (original_transaction_id, field, our_value, apple_value, source, found_at)
			SELECT (2000000000000000 + g * 397)::text, 'app_account_token', 'ours-' || g, 'apple-' || g, 'import',
				$1::timestamptz - (g % 30) * interval '1 day'
			FROM generate_series(0, $2::bigint / 500) g WHERE g * 397 < $2`, []any{o.Now, n}, &res.Conflicts},
	}
	for _, s := range steps {
		tag, err := pool.Exec(ctx, s.sql, s.args...)
		if err != nil {
			return fmt.Errorf("population: writing %s: %w", s.what, err)
		}
		if s.count != nil {
			*s.count = tag.RowsAffected()
		}
	}
	// The planner must see the new rows before the first request does.
	if _, err := pool.Exec(ctx, `ANALYZE`); err != nil {
		return fmt.Errorf("population: ANALYZE: %w", err)
	}
	return nil
}
