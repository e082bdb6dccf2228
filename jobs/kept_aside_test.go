package jobs

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/jobs/jobstest"
)

// TestWebhookKeepsAsideAnotherAppsNotifications points a simulator whose
// bundle id is not the configured one at the webhook (a notification URL
// shared with another app, or a wrong APPSTORE_BUNDLE_ID): every
// notification, genuinely signed, is refused with a 4xx and kept aside with
// its reason and claim, and the ledger does not change. A forged copy of one
// of them is refused and not kept.
func TestWebhookKeepsAsideAnotherAppsNotifications(t *testing.T) {
	t.Parallel()
	simOpts := sim.Options{Seed: 5, Subscribers: 10, DisableRateLimits: true, BundleID: "com.other.app"}
	e := newHookEnv(t, hookEnvOptions{Sim: &simOpts, Work: true})
	ctx := context.Background()

	// A subscription of our own app, in the ledger before: it must not move.
	own := jobstest.NewNote(appstore.Production, e.simulator.Now())
	if got := e.postSigned(own.Sign(t, e.ca)); got != 200 {
		t.Fatalf("our own notification: status %d", got)
	}
	e.waitIdle(30*time.Second, "process_notification")
	// Its import is enqueued and cancelled (the simulator, another app's,
	// does not know it): wait for it to end before taking the ledger.
	for deadline := time.Now().Add(30 * time.Second); e.count(`SELECT count(*) FROM river_job WHERE kind = 'import'
		AND state NOT IN ('completed', 'cancelled', 'discarded')`) > 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the import of our own subscription did not end")
		}
	}
	before := ledgerDump(t, e.pool)

	// The same subscription, refunded by a notification that claims another
	// bundle: signed by the same (trusted) CA, so Apple's, but not ours.
	refund := jobstest.NewNote(appstore.Production, e.simulator.Now().Add(time.Minute))
	refund.N.NotificationType = "REFUND"
	refund.N.Data.BundleID = "com.other.app"
	refund.Tx.OriginalTransactionID, refund.RI.OriginalTransactionID = own.Tx.OriginalTransactionID, own.RI.OriginalTransactionID
	refund.Tx.BundleID = "com.other.app"
	refund.Tx.RevocationDate = appstore.MillisOf(e.simulator.Now())
	signed := refund.Sign(t, e.ca)
	for range 2 { // Apple retries what is refused: one row, two deliveries
		if got := e.postSigned(signed); got != 400 {
			t.Fatalf("another bundle's notification: status %d, want 400", got)
		}
	}

	// The simulator's own notifications, all for com.other.app (those of
	// its world's past were never sent).
	sent := 0
	for _, env := range []appstore.Environment{appstore.Production, appstore.Sandbox} {
		sent -= len(e.simulator.Notifications(env))
	}
	if err := e.simulator.SetWebhookURL(e.server.URL + "/webhooks/appstore"); err != nil {
		t.Fatal(err)
	}
	e.simulator.Advance(20 * 24 * time.Hour)
	if err := e.simulator.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, env := range []appstore.Environment{appstore.Production, appstore.Sandbox} {
		sent += len(e.simulator.Notifications(env))
	}
	if sent == 0 {
		t.Fatal("the simulator sent nothing")
	}
	if n := e.count(`SELECT count(*) FROM river_job WHERE kind IN ('process_notification', 'import')`); n != 2 {
		t.Fatalf("%d jobs, want only our own notification's processing and import", n)
	}

	if got := ledgerDump(t, e.pool); strings.Join(got, "\n") != strings.Join(before, "\n") {
		t.Fatalf("kept-aside notifications changed the ledger:\nbefore %v\nafter %v", before, got)
	}
	if n := e.count(`SELECT count(*) FROM kept_aside_notifications`); n != sent+1 {
		t.Fatalf("%d kept aside, want the simulator's %d and the refund; stats %+v", n, sent, e.simulator.Stats().Webhook)
	}
	if n := e.count(`SELECT count(*) FROM kept_aside_notifications WHERE notification_uuid = $1
		AND reason = 'INVALID_APP_IDENTIFIER' AND claimed_bundle_id = 'com.other.app' AND claimed_environment = 'Production'
		AND notification_type = 'REFUND' AND deliveries = 2`, refund.N.NotificationUUID); n != 1 {
		t.Fatal("the refund is not kept aside with its reason, claim and two deliveries")
	}
	// Its payload is stored compact (migration 011); the ledger rebuilds Apple's bytes.
	payloadKept := false
	for after := ""; ; {
		page, err := e.deps.Ledger.KeptAsideNotifications(ctx, after, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, k := range page {
			payloadKept = payloadKept || (k.UUID == refund.N.NotificationUUID && k.SignedPayload == signed)
		}
		after = page[len(page)-1].UUID
	}
	if !payloadKept {
		t.Fatal("the refund's signedPayload is not kept byte for byte")
	}
	sum, err := e.deps.Ledger.KeptAsideSummary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(sum) != 1 || sum[0].Reason != "INVALID_APP_IDENTIFIER" || sum[0].Notifications != int64(sent+1) ||
		sum[0].LatestBundleID != "com.other.app" || sum[0].Latest.IsZero() {
		t.Fatalf("summary %+v", sum)
	}

	// Forged: the refund with a broken signature, and one signed by a chain
	// we do not trust. Neither is kept.
	i := strings.LastIndexByte(signed, '.')
	sig, _ := base64.RawURLEncoding.DecodeString(signed[i+1:])
	sig[5] ^= 0xff
	forged := jobstest.NewNote(appstore.Production, e.simulator.Now())
	forged.N.Data.BundleID = "com.other.app"
	for name, s := range map[string]string{
		"bad signature":   signed[:i+1] + base64.RawURLEncoding.EncodeToString(sig),
		"untrusted chain": jobstest.NewChain(t, true, "").SignNote(t, forged),
	} {
		if got := e.postSigned(s); got != 400 {
			t.Fatalf("%s: status %d, want 400", name, got)
		}
	}
	if n := e.count(`SELECT count(*) FROM kept_aside_notifications`); n != sent+1 {
		t.Fatalf("forgeries kept aside: %d rows, want %d", n, sent+1)
	}
	if n := e.count(`SELECT count(*) FROM kept_aside_notifications WHERE notification_uuid = $1`, forged.N.NotificationUUID); n != 0 {
		t.Fatal("a notification from an untrusted chain was kept aside")
	}
}

// TestResubmitKeptAsideOnceTheConfigurationIsFixed: notifications kept
// aside under a wrong bundle id are stored, with their processing job, by
// ResubmitKeptAside once the verifier has the right one; those that still
// do not verify stay kept aside; a second run does nothing.
func TestResubmitKeptAsideOnceTheConfigurationIsFixed(t *testing.T) {
	t.Parallel()
	simOpts := sim.Options{Seed: 6, Subscribers: 10, DisableRateLimits: true, BundleID: "com.other.app"}
	e := newHookEnv(t, hookEnvOptions{Sim: &simOpts})
	ctx := context.Background()
	if err := e.simulator.SetWebhookURL(e.server.URL + "/webhooks/appstore"); err != nil {
		t.Fatal(err)
	}
	e.simulator.Advance(20 * 24 * time.Hour)
	if err := e.simulator.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// And one of a third app, which the fix does not make ours.
	third := jobstest.NewNote(appstore.Production, e.simulator.Now())
	third.N.Data.BundleID = "com.third.app"
	if got := e.postSigned(third.Sign(t, e.ca)); got != 400 {
		t.Fatalf("third app's notification: %d", got)
	}
	kept := e.count(`SELECT count(*) FROM kept_aside_notifications`)
	if kept < 2 || e.count(`SELECT count(*) FROM notifications`) != 0 {
		t.Fatalf("%d kept aside, %d stored", kept, e.count(`SELECT count(*) FROM notifications`))
	}

	// Under the old configuration nothing moves.
	res, err := ResubmitKeptAside(ctx, e.deps, e.river)
	if err != nil || res.Resubmitted != 0 || res.StillRefused["INVALID_APP_IDENTIFIER"] != kept {
		t.Fatalf("before the fix: %+v, %v", res, err)
	}

	fixed := *e.deps
	fixed.Verifier, err = appstore.NewVerifier(appstore.VerifierOptions{
		RootCertificates: [][]byte{e.ca.RootDER()}, Environment: appstore.Production,
		BundleID: "com.other.app", AppAppleID: sim.DefaultAppAppleID,
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err = ResubmitKeptAside(ctx, &fixed, e.river)
	if err != nil {
		t.Fatal(err)
	}
	if res.Resubmitted != kept-1 || res.AlreadyStored != 0 || res.StillRefused["INVALID_APP_IDENTIFIER"] != 1 {
		t.Fatalf("after the fix: %+v (kept %d)", res, kept)
	}
	if n := e.count(`SELECT count(*) FROM notifications WHERE source = 'webhook'`); n != kept-1 {
		t.Fatalf("%d stored, want %d", n, kept-1)
	}
	if n := e.count(`SELECT count(*) FROM river_job WHERE kind = 'process_notification'`); n != kept-1 {
		t.Fatalf("%d processing jobs, want %d", n, kept-1)
	}
	if n := e.count(`SELECT count(*) FROM kept_aside_notifications WHERE notification_uuid = $1`, third.N.NotificationUUID); n != 1 ||
		e.count(`SELECT count(*) FROM kept_aside_notifications`) != 1 {
		t.Fatal("only the third app's notification should stay kept aside")
	}
	if res, err = ResubmitKeptAside(ctx, &fixed, e.river); err != nil || res.Resubmitted != 0 {
		t.Fatalf("again: %+v, %v", res, err)
	}
}
