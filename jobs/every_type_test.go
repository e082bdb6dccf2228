package jobs

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/jobs/jobstest"
)

// everyType are the notification types and subtypes the simulator emits
// that the end-to-end test requires to have flowed through (it also
// requires every other type the simulator happened to send).
var everyType = []string{
	"SUBSCRIBED/INITIAL_BUY", "DID_RENEW", "DID_RENEW/BILLING_RECOVERY", "DID_FAIL_TO_RENEW", "GRACE_PERIOD_EXPIRED",
	"EXPIRED/VOLUNTARY", "DID_CHANGE_RENEWAL_STATUS/AUTO_RENEW_DISABLED", "DID_CHANGE_RENEWAL_STATUS/AUTO_RENEW_ENABLED",
	"DID_CHANGE_RENEWAL_PREF", "REFUND", "REVOKE", "REFUND_REVERSED", "REFUND_DECLINED", "CONSUMPTION_REQUEST",
	"OFFER_REDEEMED", "OFFER_REDEEMED/UPGRADE", "PRICE_INCREASE/PENDING", "PRICE_INCREASE/ACCEPTED",
	"RENEWAL_EXTENDED", "RENEWAL_EXTENSION/SUMMARY", "RENEWAL_EXTENSION/FAILURE",
}

// TestEveryNotificationTypeByWebhook drives every notification type of the
// simulator through the webhook and requires the ledger to equal the truth.
func TestEveryNotificationTypeByWebhook(t *testing.T) {
	t.Parallel()
	testEveryNotificationType(t, false)
}

// TestEveryNotificationTypeByBackfill drives the same world with no webhook:
// the backfill (Get Notification History) brings every type.
func TestEveryNotificationTypeByBackfill(t *testing.T) {
	t.Parallel()
	testEveryNotificationType(t, true)
}

func testEveryNotificationType(t *testing.T, backfill bool) {
	simOpts := sim.Options{Seed: 13, Subscribers: 120, DisableRateLimits: true, ConsumptionRequests: true}
	e := newHookEnv(t, hookEnvOptions{Sim: &simOpts, Work: true})
	ctx := context.Background()
	source := "webhook"
	if backfill {
		source = "backfill"
		e.sweep(e.simulator.Now()) // the first sweep, so the next one starts here
	} else if err := e.simulator.SetWebhookURL(e.server.URL + "/webhooks/appstore"); err != nil {
		t.Fatal(err)
	}
	sentBefore := map[string]bool{}
	for _, env := range []appstore.Environment{appstore.Production, appstore.Sandbox} {
		for _, n := range e.simulator.Notifications(env) {
			sentBefore[n.NotificationUUID] = true
		}
	}

	// The migration: every subscription imported.
	truths := e.simulator.Truth()
	for _, tr := range truths {
		if _, err := e.river.Insert(ctx, ImportArgs{OriginalTransactionID: tr.OriginalTransactionID}, nil); err != nil {
			t.Fatal(err)
		}
	}
	e.waitIdle(3*time.Minute, "import", "import_history")

	// Each change on demand, on the first subscription it applies to.
	mutate := func(kind sim.MutationKind, ok func(sim.SubscriptionTruth) bool) string {
		t.Helper()
		var errs []string
		for _, tr := range e.simulator.Truth() {
			if ok != nil && !ok(tr) {
				continue
			}
			err := e.simulator.MutateAndNotify(tr.OriginalTransactionID, kind)
			if err == nil {
				return tr.OriginalTransactionID
			}
			if len(errs) < 3 {
				errs = append(errs, err.Error())
			}
		}
		t.Fatalf("no subscription takes %s: %v", kind, errs)
		return ""
	}
	family := func(tr sim.SubscriptionTruth) bool { return tr.InAppOwnershipType == "FAMILY_SHARED" }
	production := func(tr sim.SubscriptionTruth) bool { return tr.Environment == appstore.Production }
	for _, kind := range sim.MutationKinds {
		switch kind {
		case sim.MutateRefund:
			mutate(kind, production)
			mutate(kind, family) // REVOKE
		case sim.MutateExtendRenewalDate:
			// Twice on one subscription: Apple allows two a year, so the
			// mass extension below fails for it (RENEWAL_EXTENSION/FAILURE).
			otid := mutate(kind, production)
			if err := e.simulator.MutateAndNotify(otid, kind); err != nil {
				t.Fatal(err)
			}
			var product string
			for _, tr := range e.simulator.Truth() {
				if tr.OriginalTransactionID == otid {
					product = tr.ProductID
				}
			}
			if _, err := e.deps.Apple.ExtendRenewalDateForAllActiveSubscribers(ctx, appstore.MassExtendRenewalDateRequest{
				ExtendByDays: 3, ExtendReasonCode: 1, RequestIdentifier: "6f1c2b1e-8a0d-4d5e-9c3b-0e2a9d7f5c14", ProductID: product,
			}); err != nil {
				t.Fatal(err)
			}
			e.simulator.Advance(sim.MassExtensionDelay + time.Minute)
		default:
			mutate(kind, nil)
		}
	}
	// Everything else (renewals, billing trouble, grace periods ending,
	// expiries, new customers, Apple's refund decisions) as time passes,
	// with a backfill sweep every five days, as the hourly one would (the
	// sandbox keeps only 30 days of history).
	for range 8 {
		if backfill {
			e.sweep(e.simulator.Now())
		}
		e.simulator.Advance(5 * 24 * time.Hour)
	}
	if backfill {
		e.sweep(e.simulator.Now())
	} else {
		if err := e.simulator.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		e.waitIdle(3*time.Minute, "process_notification", "import", "import_history")
	}

	// Every notification sent since the start reached the ledger by its
	// path, and was processed without error.
	sent := map[string]string{} // uuid → type/subtype
	sentTypes := map[string]int{}
	for _, env := range []appstore.Environment{appstore.Production, appstore.Sandbox} {
		for _, n := range e.simulator.Notifications(env) {
			if sentBefore[n.NotificationUUID] {
				continue
			}
			k := typeKey(n.NotificationType, n.Subtype)
			sent[n.NotificationUUID] = k
			sentTypes[k]++
		}
	}
	rows, err := e.pool.Query(ctx, `SELECT notification_uuid::text, notification_type, subtype, source,
		processed_at IS NOT NULL, coalesce(process_error, '') FROM notifications`)
	if err != nil {
		t.Fatal(err)
	}
	recorded := map[string]int{}
	seen := 0
	for rows.Next() {
		var uuid, typ, subtype, src, perr string
		var processed bool
		if err := rows.Scan(&uuid, &typ, &subtype, &src, &processed, &perr); err != nil {
			t.Fatal(err)
		}
		k, ok := sent[uuid]
		if !ok {
			continue
		}
		seen++
		if k != typeKey(typ, subtype) || src != source || !processed || perr != "" {
			t.Errorf("%s %s: recorded as %s from %s, processed %t %q", uuid, k, typeKey(typ, subtype), src, processed, perr)
		}
		recorded[k]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if seen != len(sent) {
		t.Errorf("%d of %d notifications sent are in the ledger", seen, len(sent))
		for _, env := range []appstore.Environment{appstore.Production, appstore.Sandbox} {
			for _, n := range e.simulator.Notifications(env) {
				if !sentBefore[n.NotificationUUID] && e.count(`SELECT count(*) FROM notifications WHERE notification_uuid = $1`, n.NotificationUUID) == 0 {
					t.Logf("missing %+v", n)
				}
			}
		}
		ws, _ := e.deps.Ledger.RecentBackfillWindows(ctx, 10)
		for _, w := range ws {
			t.Logf("window %+v", w)
		}
	}
	for _, k := range everyType {
		if sentTypes[k] == 0 {
			t.Errorf("the simulator sent no %s: the test no longer covers it", k)
		}
	}
	var lines []string
	for k, n := range sentTypes {
		if recorded[k] != n {
			t.Errorf("%s: %d sent, %d recorded", k, n, recorded[k])
		}
		lines = append(lines, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(lines)
	t.Logf("%s: %s", source, strings.Join(lines, " "))
	if n := e.count(`SELECT count(*) FROM river_job WHERE kind = 'process_notification' AND state <> 'completed'`); n != 0 {
		t.Errorf("%d processing jobs did not complete", n)
	}
	jobstest.RequireLedgerEqualsTruth(t, e.deps.Ledger, e.simulator.Truth())
}

func typeKey(typ, subtype string) string {
	if subtype == "" {
		return typ
	}
	return typ + "/" + subtype
}
