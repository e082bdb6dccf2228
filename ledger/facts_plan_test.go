package ledger_test

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

// TestApplyLeavesThePlanSettingAsItFoundIt: Apply runs its statements on
// generic plans (SET LOCAL), and a caller's transaction that goes on after
// it (WithTx) finds plan_cache_mode as it was, whether Apply touched
// subscriptions or not.
func TestApplyLeavesThePlanSettingAsItFoundIt(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	ctx := context.Background()
	facts := genFacts(rand.New(rand.NewPCG(3, 4)))
	for _, f := range []ledger.Facts{facts[0], {}} {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := ledger.New(pool).WithTx(tx).Apply(ctx, f); err != nil {
				return err
			}
			var mode string
			if err := tx.QueryRow(ctx, `SHOW plan_cache_mode`).Scan(&mode); err != nil {
				return err
			}
			if mode != "auto" {
				t.Errorf("plan_cache_mode %q after Apply of %d facts, want auto", mode, len(f.Transactions)+len(f.RenewalInfos)+len(f.Statuses))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
