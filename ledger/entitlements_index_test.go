package ledger

import (
	"context"
	"strings"
	"testing"

	"github.com/storesync/storesync/migrations/migrationstest"
)

// TestEntitlementLookupsUseIndexes checks the plans of the three lookups on
// a ledger large enough that the planner would rather scan than probe if no
// index fitted: none may scan every subscription.
func TestEntitlementLookupsUseIndexes(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `INSERT INTO subscriptions (original_transaction_id, customer_id, app_account_token)
		SELECT i::text, 'c' || i, md5(i::text)::uuid FROM generate_series(1, 20000) i`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE subscriptions`); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ where, arg string }{
		{"s.customer_id = $1", "c77"},
		{"s.app_account_token = $1::uuid", "6f1c0000-0000-4000-8000-000000000001"},
		{"s.original_transaction_id = $1", "77"},
	} {
		rows, err := pool.Query(ctx, "EXPLAIN "+subscriptionSelect+" WHERE "+c.where+" ORDER BY s.original_transaction_id", c.arg)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, line)
		}
		if p := strings.Join(plan, "\n"); strings.Contains(p, "Seq Scan") {
			t.Errorf("lookup by %s scans:\n%s", c.where, p)
		}
	}
}
