package jobs

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/sim"
)

// TestResyncRepairsAndReportsChanges re-syncs a subscription the ledger
// does not know, then (after a silent refund at Apple) the same customer by
// appAccountToken through the admin API, and checks the ledger, the
// reported changes and the recovered notifications.
func TestResyncRepairsAndReportsChanges(t *testing.T) {
	t.Parallel()
	const token = "resync-admin-token-0123456789"
	simOpts := sim.Options{Seed: 9, Subscribers: 40, DisableRateLimits: true}
	e := newHookEnv(t, hookEnvOptions{Sim: &simOpts, Work: true, AdminToken: token})
	e.simulator.Advance(10 * 24 * time.Hour)
	ctx := context.Background()
	var truth sim.SubscriptionTruth
	for _, tr := range e.simulator.Truth() {
		if tr.Environment == appstore.Production && tr.Status == "active" && tr.AppAccountToken != "" && len(tr.Notifications) > 0 {
			truth = tr
			break
		}
	}
	if truth.OriginalTransactionID == "" {
		t.Fatal("no active subscription with notifications and a token in the simulated world")
	}
	acct, _ := e.simulator.AccountOf(truth.OriginalTransactionID)
	accountNotes := 0
	for _, n := range e.simulator.Notifications(appstore.Production) {
		for _, id := range acct.OriginalTransactionIDs {
			if n.OriginalTransactionID == id {
				accountNotes++
			}
		}
	}

	st, err := EnqueueResync(ctx, e.river, ResyncTarget{OriginalTransactionID: truth.OriginalTransactionID})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err = WaitResync(wctx, e.river, st.JobID, 50*time.Millisecond)
	if err != nil || st.State != "completed" || st.Result == nil {
		t.Fatalf("resync: %+v, %v", st, err)
	}
	s, err := e.deps.Ledger.Subscription(ctx, truth.OriginalTransactionID)
	if err != nil {
		t.Fatal(err)
	}
	if s.Status != truth.Status || s.TransactionCount != truth.TransactionCount || s.LatestTransactionID != truth.LatestTransactionID ||
		s.AppAccountToken != truth.AppAccountToken {
		t.Fatalf("after resync: %+v\ntruth %+v", s, truth)
	}
	if !hasChange(st.Result.Changes, truth.OriginalTransactionID, "status", "", "active") {
		t.Fatalf("changes of a new subscription: %+v", st.Result.Changes)
	}
	if st.Result.NotificationsStored != accountNotes || st.Result.NotificationsSeen != accountNotes {
		t.Fatalf("notifications seen %d stored %d, the account had %d", st.Result.NotificationsSeen, st.Result.NotificationsStored, accountNotes)
	}
	if len(st.Result.Subscriptions) != len(acct.OriginalTransactionIDs) {
		t.Fatalf("re-read %v, the account has %v", st.Result.Subscriptions, acct.OriginalTransactionIDs)
	}

	// Apple refunds silently; ops re-sync by appAccountToken, waiting.
	if err := e.simulator.Mutate(truth.OriginalTransactionID, sim.MutateRefund); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", e.server.URL+"/admin/resync?wait=30s",
		strings.NewReader(`{"appAccountToken":"`+truth.AppAccountToken+`"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got ResyncStatus
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || got.State != "completed" || got.Result == nil {
		t.Fatalf("admin resync: %d %+v", resp.StatusCode, got)
	}
	if !hasChange(got.Result.Changes, truth.OriginalTransactionID, "status", "active", "revoked") {
		t.Fatalf("refund not reported: %+v", got.Result.Changes)
	}
	if got.Result.NotificationsStored != 0 {
		t.Fatalf("stored %d notifications again", got.Result.NotificationsStored)
	}
	// Nothing changed since: an empty change list.
	st, err = EnqueueResync(ctx, e.river, ResyncTarget{CustomerID: "nobody"})
	if err != nil {
		t.Fatal(err)
	}
	st, err = WaitResync(wctx, e.river, st.JobID, 50*time.Millisecond)
	if err != nil || st.State != "cancelled" || len(st.Errors) == 0 || !strings.Contains(st.Errors[0], "no subscription") {
		t.Fatalf("unknown customer: %+v %v", st, err)
	}
	st, err = EnqueueResync(ctx, e.river, ResyncTarget{OriginalTransactionID: truth.OriginalTransactionID})
	if err != nil {
		t.Fatal(err)
	}
	st, err = WaitResync(wctx, e.river, st.JobID, 50*time.Millisecond)
	if err != nil || st.State != "completed" || len(st.Result.Changes) != 0 {
		t.Fatalf("a resync with nothing to repair: %+v %v", st, err)
	}
	if n := e.count(`SELECT count(*) FROM notifications WHERE source = 'resync'`); n != accountNotes {
		t.Fatalf("%d notifications stored by re-syncs", n)
	}
	e.waitIdle(30*time.Second, "process_notification")
}

func hasChange(cs []FieldChange, otid, field, before, after string) bool {
	for _, c := range cs {
		if c.OriginalTransactionID == otid && c.Field == field && c.Before == before && c.After == after {
			return true
		}
	}
	return false
}

// TestResyncIsUniquePerTargetWhilePending: a second request for the same
// target while the first waits returns the same job.
func TestResyncIsUniquePerTargetWhilePending(t *testing.T) {
	t.Parallel()
	e := newHookEnv(t, hookEnvOptions{})
	ctx := context.Background()
	a, err := EnqueueResync(ctx, e.river, ResyncTarget{CustomerID: "c-1"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := EnqueueResync(ctx, e.river, ResyncTarget{CustomerID: "c-1"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := EnqueueResync(ctx, e.river, ResyncTarget{CustomerID: "c-2"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Duplicate || !b.Duplicate || a.JobID != b.JobID || c.JobID == a.JobID || c.Duplicate {
		t.Fatalf("a %+v b %+v c %+v", a, b, c)
	}
	if _, err := EnqueueResync(ctx, e.river, ResyncTarget{CustomerID: "c-1", AppAccountToken: "x"}); err == nil {
		t.Fatal("two keys accepted")
	}
	if _, err := EnqueueResync(ctx, e.river, ResyncTarget{AppAccountToken: "not-a-uuid"}); err == nil {
		t.Fatal("a malformed appAccountToken accepted")
	}
	if _, err := ResyncStatusOf(ctx, e.river, a.JobID+1000); err != ErrNotResync {
		t.Fatalf("unknown job: %v", err)
	}
}
