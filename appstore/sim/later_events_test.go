package sim

import (
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
)

// Left alone, the world produces every notification type Apple defines for
// auto-renewable subscriptions, except the mass-extension ones (only the
// API starts those), each verifying with storesync's verifier.
// CONSUMPTION_REQUEST comes only with Options.ConsumptionRequests.
// (TestTruthMatchesStatuses checks the truth after such days.)
func TestSpontaneousEventsCoverEveryType(t *testing.T) {
	t.Parallel()
	s := startTest(t, unlimited(Options{Seed: 37, Subscribers: 2500, ConsumptionRequests: true}))
	start := s.Now()
	s.Advance(45 * day)
	seen := map[string]int{}
	for _, env := range []appstore.Environment{appstore.Production, appstore.Sandbox} {
		for _, r := range s.Notifications(env) {
			seen[r.NotificationType+"/"+r.Subtype]++
		}
	}
	for _, want := range []string{
		"SUBSCRIBED/INITIAL_BUY", "SUBSCRIBED/RESUBSCRIBE", "DID_RENEW/", "DID_RENEW/BILLING_RECOVERY",
		"DID_FAIL_TO_RENEW/", "DID_FAIL_TO_RENEW/GRACE_PERIOD", "GRACE_PERIOD_EXPIRED/", "EXPIRED/VOLUNTARY",
		"EXPIRED/BILLING_RETRY", "DID_CHANGE_RENEWAL_STATUS/AUTO_RENEW_DISABLED", "DID_CHANGE_RENEWAL_STATUS/AUTO_RENEW_ENABLED",
		"DID_CHANGE_RENEWAL_PREF/UPGRADE", "DID_CHANGE_RENEWAL_PREF/DOWNGRADE", "REFUND/", "REVOKE/",
		"OFFER_REDEEMED/", "OFFER_REDEEMED/UPGRADE", "OFFER_REDEEMED/DOWNGRADE", "OFFER_REDEEMED/RESUBSCRIBE",
		"OFFER_REDEEMED/INITIAL_BUY", "PRICE_INCREASE/PENDING", "PRICE_INCREASE/ACCEPTED", "RENEWAL_EXTENDED/",
		"CONSUMPTION_REQUEST/", "REFUND_DECLINED/", "REFUND_REVERSED/",
	} {
		if seen[want] == 0 {
			t.Errorf("no %s in 45 days of 2,500 customers: %v", want, seen)
		}
	}
	// One of each new type, read back from notification history and
	// verified in full.
	for _, typ := range []string{"OFFER_REDEEMED", "PRICE_INCREASE", "RENEWAL_EXTENDED", "CONSUMPTION_REQUEST", "REFUND_DECLINED", "REFUND_REVERSED"} {
		notes := historyOf(t, s, appstore.Production, typ, start.Add(15*day))
		if len(notes) == 0 {
			t.Errorf("no %s in production's notification history of the last 30 days", typ)
			continue
		}
		vn := notes[0]
		if vn.Transaction == nil || vn.RenewalInfo == nil || vn.Payload.Data.Status == 0 ||
			(typ == "CONSUMPTION_REQUEST") != (vn.Payload.Data.ConsumptionRequestReason != "") {
			t.Errorf("%s: %+v", typ, vn.Payload.Data)
		}
	}
}

// The second process is deterministic for a seed too, however Advance is
// split, and leaves seeded worlds as generated until time moves.
func TestLaterEventsAreSeeded(t *testing.T) {
	t.Parallel()
	run := func(steps int) []NotificationRecord {
		s, err := New(Options{Seed: 41, Subscribers: 800})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for range steps {
			s.Advance(20 * day / time.Duration(steps))
		}
		return s.Notifications(appstore.Production)
	}
	a, b := run(1), run(5)
	if len(a) != len(b) {
		t.Fatalf("%d vs %d notifications", len(a), len(b))
	}
	for i := range a {
		if a[i].NotificationUUID != b[i].NotificationUUID || a[i].NotificationType != b[i].NotificationType || !a[i].SignedDate.Equal(b[i].SignedDate) {
			t.Fatalf("notification %d differs: %+v vs %+v", i, a[i], b[i])
		}
	}
}

// Without Options.ConsumptionRequests, customers still ask for refunds and
// Apple still decides, but no CONSUMPTION_REQUEST is sent.
func TestConsumptionRequestsAreOptIn(t *testing.T) {
	t.Parallel()
	s, err := New(Options{Seed: 37, Subscribers: 2500})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Advance(45 * day)
	seen := map[string]int{}
	for _, r := range s.Notifications(appstore.Production) {
		seen[r.NotificationType]++
	}
	if seen["CONSUMPTION_REQUEST"] != 0 || seen["REFUND_DECLINED"] == 0 {
		t.Fatalf("without the option: %v", seen)
	}
}
