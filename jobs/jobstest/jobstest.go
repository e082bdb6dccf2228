// Package jobstest holds test helpers shared by the tests of jobs, of
// jobs/httpapi and of the commands built on them: the ledger checked
// against the simulator's truth, notifications and certificate chains to
// sign. Only tests import it.
package jobstest

import (
	"context"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/jobs/truthcheck"
	"github.com/storesync/storesync/ledger"
)

// RequireLedgerEqualsTruth fails t, listing the first differences, unless
// the ledger holds exactly truths' state for every subscription in truths.
func RequireLedgerEqualsTruth(t testing.TB, l *ledger.Ledger, truths []sim.SubscriptionTruth) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	diffs, err := truthcheck.Compare(ctx, l, truths)
	if err != nil {
		t.Fatalf("comparing the ledger with the simulator's truth: %v", err)
	}
	if len(diffs) == 0 {
		return
	}
	t.Fatalf("the ledger differs from the simulator's truth in %d fields of %d subscriptions:%s", len(diffs), len(truths), truthcheck.Describe(diffs))
}
