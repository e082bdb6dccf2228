package jobs

import (
	"context"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/sim"
)

// TestSetAppAccountTokenReachesTheLedger: after the ledger knows a
// subscription, the company sets a new appAccountToken at Apple (Set App
// Account Token, which sends no notification). A resync reads statuses and
// history signed afterwards: the ledger takes the new token, equal to
// Apple's truth, although the subscription's purchases carried the old one
// when first signed.
func TestSetAppAccountTokenReachesTheLedger(t *testing.T) {
	t.Parallel()
	simOpts := sim.Options{Seed: 12, Subscribers: 20, DisableRateLimits: true}
	e := newHookEnv(t, hookEnvOptions{Sim: &simOpts, Work: true})
	ctx := context.Background()
	var truth sim.SubscriptionTruth
	for _, tr := range e.simulator.Truth() {
		if tr.Environment == appstore.Production && tr.AppAccountToken != "" {
			truth = tr
			break
		}
	}
	if truth.OriginalTransactionID == "" {
		t.Fatal("no production subscription with a token in the simulated world")
	}
	resync := func() {
		t.Helper()
		st, err := EnqueueResync(ctx, e.river, ResyncTarget{OriginalTransactionID: truth.OriginalTransactionID})
		if err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if st, err = WaitResync(wctx, e.river, st.JobID, 50*time.Millisecond); err != nil || st.State != "completed" {
			t.Fatalf("resync: %+v, %v", st, err)
		}
	}
	resync()
	if s, err := e.deps.Ledger.Subscription(ctx, truth.OriginalTransactionID); err != nil || s.AppAccountToken != truth.AppAccountToken {
		t.Fatalf("before: %+v, %v; want token %s", s, err, truth.AppAccountToken)
	}

	e.simulator.Advance(time.Hour) // signed after everything the ledger holds
	const newToken = "5e7a0000-0000-4000-8000-00000000c0de"
	apple, err := e.deps.Apple.InEnvironment(appstore.Production)
	if err != nil {
		t.Fatal(err)
	}
	if err := apple.SetAppAccountToken(ctx, truth.OriginalTransactionID, newToken); err != nil {
		t.Fatal(err)
	}
	if tr, _ := e.simulator.TruthOf(truth.OriginalTransactionID); tr.AppAccountToken != newToken {
		t.Fatalf("simulator truth token %q, want %q", tr.AppAccountToken, newToken)
	}
	resync()
	s, err := e.deps.Ledger.Subscription(ctx, truth.OriginalTransactionID)
	if err != nil {
		t.Fatal(err)
	}
	if s.AppAccountToken != newToken {
		t.Fatalf("after Set App Account Token and a resync: token %q, want %q", s.AppAccountToken, newToken)
	}
}
