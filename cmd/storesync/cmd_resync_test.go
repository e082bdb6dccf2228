package main

import (
	"strings"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/appstore/sim/simtest"
)

func TestResyncUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"resync"},
		{"resync", "--original-transaction-id", "1", "--customer-id", "c"},
		{"resync", "--app-account-token", "not-a-uuid"},
		{"resync", "--customer-id", "c", "extra"},
		{"resync", "--customer-id", "c", "--timeout", "-1s"},
	} {
		code, _, stderr := runCLI(t, nil, args...)
		if code != 2 || !strings.Contains(stderr, "usage: storesync resync") {
			t.Errorf("%v: code %d, stderr %q", args, code, stderr)
		}
	}
}

// resync --wait against serve: a subscription the ledger never saw is
// repaired and its fields printed as before → after; after a silent refund
// at Apple the same customer by appAccountToken shows the status change; an
// unknown customer exits 1 saying why.
func TestResyncWaitPrintsChanges(t *testing.T) {
	t.Parallel()
	simulator := simtest.StartTest(t, sim.Options{Seed: 12, Subscribers: 30, Start: time.Now().UTC().Add(-3 * 24 * time.Hour)})
	simulator.Advance(2 * 24 * time.Hour)
	var truth sim.SubscriptionTruth
	for _, tr := range simulator.Truth() {
		if tr.Environment == appstore.Production && tr.Status == "active" && tr.AppAccountToken != "" {
			truth = tr
			break
		}
	}
	if truth.OriginalTransactionID == "" {
		t.Fatal("no active subscription with a token")
	}
	env := simCLIEnv(t, simulator)
	startServe(t, env, "--bulk-workers", "4")

	code, stdout, stderr := runCLI(t, env, "resync", "--original-transaction-id", truth.OriginalTransactionID, "--wait")
	if code != 0 {
		t.Fatalf("resync: code %d\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{"enqueued as job", truth.OriginalTransactionID + " status: (none) → active",
		truth.OriginalTransactionID + " latestTransactionId: (none) → " + truth.LatestTransactionID} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}

	if err := simulator.Mutate(truth.OriginalTransactionID, sim.MutateRefund); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runCLI(t, env, "resync", "--wait", "--app-account-token", truth.AppAccountToken)
	if code != 0 || !strings.Contains(stdout, truth.OriginalTransactionID+" status: active → revoked") {
		t.Fatalf("resync after refund: code %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(t, env, "resync", "--original-transaction-id", truth.OriginalTransactionID, "--wait")
	if code != 0 || !strings.Contains(stdout, "no changes") {
		t.Fatalf("resync with nothing to repair: code %d\n%s%s", code, stdout, stderr)
	}
	code, _, stderr = runCLI(t, env, "resync", "--customer-id", "nobody", "--wait")
	// Refused before anything is enqueued.
	if code != 1 || !strings.Contains(stderr, "not found: no subscription in the ledger has customerId nobody") {
		t.Fatalf("unknown customer: code %d, stderr %q", code, stderr)
	}
}
