package jobs

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/jobs/jobstest"
	"github.com/storesync/storesync/ledger"
)

// With the default seven-day cycle and a cap far above what the population
// needs, one run must check every subscription: silent changes of any class
// are all repaired by the next run, not within a week.
func TestReconcileChecksEverySubscriptionWhenTheCapAllows(t *testing.T) {
	t.Parallel()
	h := reconcileHarness(t, 100, ReconcileSettings{}) // FullCycle: the default 7 days
	ctx := context.Background()
	truths := h.simulator.Truth()
	used := map[string]bool{}
	active := func(tr sim.SubscriptionTruth) bool { return tr.Status == "active" }
	renewing := func(tr sim.SubscriptionTruth) bool { return active(tr) && tr.AutoRenewStatus }
	classes := []struct {
		kind sim.MutationKind
		ok   func(sim.SubscriptionTruth) bool
	}{
		{sim.MutateRefund, active},
		{sim.MutateRenew, func(tr sim.SubscriptionTruth) bool { return tr.Status == "expired" }},
		{sim.MutateExpire, renewing},
		{sim.MutateAutoRenewOff, renewing},
		{sim.MutateAutoRenewOn, func(tr sim.SubscriptionTruth) bool { return active(tr) && !tr.AutoRenewStatus }},
		{sim.MutateChangeRenewalProduct, renewing},
		{sim.MutateBillingRetry, renewing},
		{sim.MutateBillingGrace, renewing},
	}
	h.simulator.Advance(time.Millisecond) // Apple signs later than the import's data
	var mutated []string
	for _, c := range classes {
		for range 2 {
			tr := pickSubscription(t, truths, used, string(c.kind), c.ok)
			if err := h.simulator.Mutate(tr.OriginalTransactionID, c.kind); err != nil {
				t.Fatalf("%s of %s: %v", c.kind, tr.OriginalTransactionID, err)
			}
			mutated = append(mutated, tr.OriginalTransactionID)
		}
	}
	var subs int64
	if err := h.pool.QueryRow(ctx, "SELECT count(*) FROM subscriptions").Scan(&subs); err != nil {
		t.Fatal(err)
	}

	run := reconcileNow(t, h, "manual everything", 0)

	if run.StoppedReason != "" || run.CapBound() || run.CallsUsed >= run.CallCap {
		t.Fatalf("a generous cap bound: %+v", run)
	}
	if run.CheckedTotal() != subs || run.LeftForNextRun() != 0 {
		t.Fatalf("checked %d (%v) of %d subscriptions with cap %d; the run must check all it can afford",
			run.CheckedTotal(), run.Checked, subs, run.CallCap)
	}
	drift, err := h.deps.Ledger.DriftOfRun(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, d := range drift {
		found[d.OriginalTransactionID] = true
		if d.RepairedAt == nil {
			t.Errorf("finding not repaired: %+v", d)
		}
	}
	for _, otid := range mutated {
		if !found[otid] {
			t.Errorf("silent change of %s not found by the run", otid)
		}
	}
	if run.DriftedSubscriptions != int64(len(mutated)) || run.Repaired != int64(len(mutated)) {
		t.Errorf("summary: %d drifted, %d repaired, want %d", run.DriftedSubscriptions, run.Repaired, len(mutated))
	}
	jobstest.RequireLedgerEqualsTruth(t, h.deps.Ledger, h.simulator.Truth())

	// The next night: the two refunds are silently reversed and two more
	// customers turn auto-renew off; everything is checked again.
	h.simulator.Advance(time.Millisecond)
	second := []string{mutated[0], mutated[1]}
	for _, otid := range second {
		if err := h.simulator.Mutate(otid, sim.MutateRefundReversed); err != nil {
			t.Fatalf("refund reversed of %s: %v", otid, err)
		}
	}
	for range 2 {
		tr := pickSubscription(t, truths, used, "active and renewing", renewing)
		if err := h.simulator.Mutate(tr.OriginalTransactionID, sim.MutateAutoRenewOff); err != nil {
			t.Fatal(err)
		}
		second = append(second, tr.OriginalTransactionID)
	}
	next := reconcileNow(t, h, "manual everything 2", 0)
	if next.CheckedTotal() != subs || next.CapBound() {
		t.Fatalf("second run checked %d of %d: %+v", next.CheckedTotal(), subs, next)
	}
	drift, err = h.deps.Ledger.DriftOfRun(ctx, next.ID)
	if err != nil {
		t.Fatal(err)
	}
	found = map[string]bool{}
	for _, d := range drift {
		found[d.OriginalTransactionID] = true
		if d.RepairedAt == nil {
			t.Errorf("finding not repaired: %+v", d)
		}
	}
	for _, otid := range second {
		if !found[otid] {
			t.Errorf("second night: silent change of %s not found", otid)
		}
	}
	jobstest.RequireLedgerEqualsTruth(t, h.deps.Ledger, h.simulator.Truth())
}

// priorChecks returns when each subscription was last checked, and the
// subscriptions in least-recently-checked order (never checked first).
func priorChecks(t *testing.T, h *importHarness) map[string]time.Time {
	t.Helper()
	rows, err := h.pool.Query(context.Background(), `SELECT original_transaction_id,
		COALESCE(last_checked_at, '-infinity') FROM subscriptions`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var id string
		var at time.Time
		if err := rows.Scan(&id, &at); err != nil {
			t.Fatal(err)
		}
		out[id] = at
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// requireLeastRecentlyCheckedFirst checks that run covered a prefix of the
// least-recently-checked order at least as long as its rolling calls: no
// subscription it left unchecked was checked less recently than rolling
// ones it checked. It returns the subscriptions the run left unchecked.
func requireLeastRecentlyCheckedFirst(t *testing.T, h *importHarness, run *ledger.ReconcileRun, prior map[string]time.Time, rollingCalls int64) map[string]bool {
	t.Helper()
	after := priorChecks(t, h)
	unchecked := map[string]bool{}
	var oldestUnchecked time.Time
	for id, at := range after {
		if at.Before(run.StartedAt) {
			unchecked[id] = true
			if oldestUnchecked.IsZero() || prior[id].Before(oldestUnchecked) {
				oldestUnchecked = prior[id]
			}
		}
	}
	if len(unchecked) == 0 {
		t.Fatalf("run %s checked everything; the cap was meant to bind", run.Key)
	}
	var prefix int64
	for _, at := range prior {
		if at.Before(oldestUnchecked) {
			prefix++
		}
	}
	if prefix < rollingCalls {
		t.Fatalf("run %s: %d rolling calls but only the %d least recently checked subscriptions were all checked "+
			"(an unchecked one was last checked %s): not least-recently-checked first", run.Key, rollingCalls, prefix, oldestUnchecked)
	}
	if got := int64(len(unchecked)); got != run.LeftForNextRun() {
		t.Fatalf("run %s: %d subscriptions unchecked, summary says %d left for the next run", run.Key, got, run.LeftForNextRun())
	}
	return unchecked
}

// A cap that binds: exactly cap calls, the least recently checked first,
// the summary says so, and the next runs go on with the rest.
func TestReconcileCapBindsLeastRecentlyCheckedFirst(t *testing.T) {
	t.Parallel()
	h := reconcileHarness(t, 60, ReconcileSettings{Concurrency: 2, BatchSize: 4})
	ctx := context.Background()
	// Scramble when each was last checked, a day ago and earlier, every
	// time distinct.
	if _, err := h.pool.Exec(ctx, `UPDATE subscriptions s SET last_checked_at = now() - interval '1 day' - o.n * interval '1 minute'
		FROM (SELECT original_transaction_id, row_number() OVER (ORDER BY md5(original_transaction_id)) AS n FROM subscriptions) o
		WHERE o.original_transaction_id = s.original_transaction_id`); err != nil {
		t.Fatal(err)
	}
	allCalls := func() int64 {
		return appleRequests(h.simulator, appstore.EndpointStatuses) + appleRequests(h.simulator, appstore.EndpointHistory) +
			appleRequests(h.simulator, appstore.EndpointNotificationHistory)
	}
	targetedChecked := func(r *ledger.ReconcileRun) int64 {
		var n int64
		for _, reason := range ledger.TargetedReasons {
			n += r.Checked[string(reason)]
		}
		return n
	}
	const callCap = 14
	left := map[string]bool{}
	for i, key := range []string{"manual bound", "manual bound 2"} {
		prior := priorChecks(t, h)
		calls0, statuses0 := allCalls(), appleRequests(h.simulator, appstore.EndpointStatuses)
		run := reconcileNow(t, h, key, callCap)
		if !run.CapBound() || run.StoppedReason != ledger.StoppedCallCap || run.CallsUsed != callCap {
			t.Fatalf("%s: want the cap to bind at exactly %d calls: %+v", key, callCap, run)
		}
		if seen := allCalls() - calls0; seen != callCap {
			t.Fatalf("%s: Apple saw %d calls, cap %d", key, seen, callCap)
		}
		// A targeted check covers at least one subscription per call.
		rolling := appleRequests(h.simulator, appstore.EndpointStatuses) - statuses0 - targetedChecked(run)
		if rolling <= 0 || run.Checked[string(ledger.ReasonRolling)] < rolling {
			t.Fatalf("%s: %d rolling calls, checked %v", key, rolling, run.Checked)
		}
		unchecked := requireLeastRecentlyCheckedFirst(t, h, run, prior, rolling)
		if i == 1 {
			// The second run went on with those the first left: of what the
			// first had just checked, it re-checked only targeted ones.
			var again int64
			for id := range prior {
				if !left[id] && !unchecked[id] {
					again++
				}
			}
			if again > targetedChecked(run) {
				t.Fatalf("%s re-checked %d subscriptions the previous run had just checked (%d targeted)", key, again, targetedChecked(run))
			}
		}
		left = unchecked
	}
	// A generous cap covers the rest: every subscription checked.
	last := reconcileNow(t, h, "manual bound 3", 0)
	if last.CapBound() || last.LeftForNextRun() != 0 {
		t.Fatalf("generous cap: %+v", last)
	}
	jobstest.RequireLedgerEqualsTruth(t, h.deps.Ledger, h.simulator.Truth())
}

// The company's file gave a customer's token Apple did not know; Apple
// later states another one, and the ledger (which follows Apple) already
// holds it. Reconciliation must still see the file contradicted: a
// customer_conflict against the import row's token, kept as a conflict.
func TestReconcileComparesAppleTokenWithTheImportRows(t *testing.T) {
	t.Parallel()
	h := startImportHarness(t, sim.Options{Seed: 7, Subscribers: 40, DisableRateLimits: true}, Settings{})
	ctx := context.Background()
	truths := h.simulator.Truth()
	sub := pickSubscription(t, truths, map[string]bool{}, "purchased with no token at Apple", func(tr sim.SubscriptionTruth) bool {
		return tr.InAppOwnershipType == "PURCHASED" && tr.AppAccountToken == ""
	})
	const companyToken, appleToken = "0a1b0000-0000-4000-8000-00000000c0de", "0a1b0000-0000-4000-8000-00000000a991"
	run, _, _ := h.importCSV(t, truthCSV(truths, map[string]string{sub.OriginalTransactionID: companyToken}))
	if p := h.waitRun(t, run, 3*time.Minute); p.Failed > 0 {
		t.Fatalf("import: %+v", p)
	}
	h.simulator.Advance(time.Millisecond)
	// The app's backend tells Apple (the harness's budget covers only the
	// endpoints storesync calls, so this client has its own).
	key, err := appstore.ParsePrivateKey(h.simulator.PrivateKeyPEM())
	if err != nil {
		t.Fatal(err)
	}
	app, err := appstore.NewClient(appstore.ClientOptions{KeyID: h.simulator.KeyID(), IssuerID: h.simulator.IssuerID(),
		BundleID: h.simulator.BundleID(), PrivateKey: key, Environment: appstore.Production, BaseURL: h.simulator.BaseURL(),
		Budget: appstore.NewRateBudget(map[appstore.Endpoint]float64{appstore.EndpointAppAccountToken: 20}, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if err := app.SetAppAccountToken(ctx, sub.OriginalTransactionID, appleToken); err != nil {
		t.Fatal(err)
	}
	// The ledger learns Apple's token (as a resync or a notification would).
	if _, _, err := h.deps.syncStatuses(ctx, sub.OriginalTransactionID); err != nil {
		t.Fatal(err)
	}
	var ledgerToken string
	if err := h.pool.QueryRow(ctx, `SELECT COALESCE(app_account_token::text, '') FROM subscriptions
		WHERE original_transaction_id = $1`, sub.OriginalTransactionID).Scan(&ledgerToken); err != nil {
		t.Fatal(err)
	}
	if ledgerToken != appleToken {
		t.Fatalf("the ledger holds token %q, want Apple's %q", ledgerToken, appleToken)
	}

	rec := reconcileNow(t, h, "manual token", 0)

	drift, err := h.deps.Ledger.DriftOfRun(ctx, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	var found []ledger.Drift
	for _, d := range drift {
		if d.OriginalTransactionID == sub.OriginalTransactionID {
			found = append(found, d)
		} else if d.Class == ledger.DriftCustomerConflict {
			t.Errorf("customer_conflict on a subscription whose file agreed with Apple: %+v", d)
		}
	}
	if len(found) != 1 || found[0].Class != ledger.DriftCustomerConflict || found[0].LedgerValue != companyToken ||
		found[0].AppleValue != appleToken || found[0].RepairedAt != nil {
		t.Fatalf("findings on %s: %+v, want one unrepaired customer_conflict %s (import row) vs %s (Apple)",
			sub.OriginalTransactionID, found, companyToken, appleToken)
	}
	conflicts, err := h.deps.Ledger.Conflicts(ctx, sub.OriginalTransactionID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(conflicts, func(c ledger.Conflict) bool {
		return c.Source == "reconcile" && c.Field == "app_account_token" && c.OurValue == companyToken && c.AppleValue == appleToken
	}) {
		t.Fatalf("conflicts of %s: %+v, want the reconciliation's", sub.OriginalTransactionID, conflicts)
	}
	jobstest.RequireLedgerEqualsTruth(t, h.deps.Ledger, h.simulator.Truth())
}
