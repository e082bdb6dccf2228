package sim

import (
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
)

// A refund request is CONSUMPTION_REQUEST now and Apple's decision within
// a week: REFUND (revoked) or REFUND_DECLINED (unchanged).
func TestRefundRequestIsDecided(t *testing.T) {
	t.Parallel()
	s := startTest(t, unlimited(Options{Seed: 19, Subscribers: 600}))
	var asked []SubscriptionTruth
	for _, tr := range s.Truth() {
		if len(asked) < 12 && tr.Environment == appstore.Production && activePurchase(s)(tr) && tr.ExpiresDate.Sub(s.Now()) > 8*day {
			if err := s.MutateAndNotify(tr.OriginalTransactionID, MutateConsumptionRequest); err != nil {
				t.Fatal(err)
			}
			vn := lastNotification(t, s, tr.OriginalTransactionID)
			if vn.Payload.NotificationType != "CONSUMPTION_REQUEST" || vn.Payload.Data.ConsumptionRequestReason == "" {
				t.Fatalf("%+v", vn.Payload.Data)
			}
			if err := s.MutateAndNotify(tr.OriginalTransactionID, MutateConsumptionRequest); err == nil {
				t.Fatal("a second refund request while one is pending succeeded")
			}
			tr, _ = s.TruthOf(tr.OriginalTransactionID)
			asked = append(asked, tr)
		}
	}
	s.Advance(7 * day)
	outcomes := map[string]int{}
	for _, before := range asked {
		after, _ := s.TruthOf(before.OriginalTransactionID)
		if after.RefundRequested {
			t.Fatalf("%s: still waiting after 7 days", before.OriginalTransactionID)
		}
		var decision *NotificationRecord
		for _, id := range after.Notifications[len(before.Notifications):] {
			for _, r := range s.Notifications(appstore.Production) {
				if r.NotificationUUID == id && (r.NotificationType == "REFUND" || r.NotificationType == "REFUND_DECLINED") {
					if decision != nil {
						t.Fatalf("%s: two decisions", before.OriginalTransactionID)
					}
					decision = &r
				}
			}
		}
		if decision == nil {
			t.Fatalf("%s: no decision in 7 days", before.OriginalTransactionID)
		}
		outcomes[decision.NotificationType]++
		// The status as the decision signed it (a refund may be reversed
		// since).
		if revoked := decision.Status == appstore.StatusRevoked; revoked != (decision.NotificationType == "REFUND") {
			t.Fatalf("%s: %s with status %d", before.OriginalTransactionID, decision.NotificationType, decision.Status)
		}
	}
	if outcomes["REFUND"] == 0 || outcomes["REFUND_DECLINED"] == 0 {
		t.Errorf("12 requests decided %v, want both outcomes", outcomes)
	}
}

// REFUND_REVERSED restores a refunded transaction: no revocation, the
// status its dates give, out of refund history, auto-renew as before while
// the period runs; a period that ended meanwhile stays expired.
func TestRefundReversed(t *testing.T) {
	t.Parallel()
	s := startTest(t, unlimited(Options{Seed: 23, Subscribers: 400}))
	running := pickTruth(t, s, "active purchase", activePurchase(s))
	if err := s.MutateAndNotify(running.OriginalTransactionID, MutateRefund); err != nil {
		t.Fatal(err)
	}
	if err := s.MutateAndNotify(running.OriginalTransactionID, MutateRefundReversed); err != nil {
		t.Fatal(err)
	}
	tr, _ := s.TruthOf(running.OriginalTransactionID)
	vn := lastNotification(t, s, running.OriginalTransactionID)
	if tr.Status != "active" || !tr.AutoRenewStatus || vn.Payload.NotificationType != "REFUND_REVERSED" ||
		vn.Transaction.RevocationDate != 0 || vn.Transaction.RevocationType != "" || vn.RenewalInfo.AutoRenewStatus != 1 {
		t.Fatalf("after reversal: truth %+v, transaction %+v", tr, vn.Transaction)
	}
	var rh appstore.RefundHistoryResponse
	call(t, s, "GET", "/inApps/v2/refund/lookup/"+running.OriginalTransactionID, nil).decode(t, &rh)
	for _, jws := range rh.SignedTransactions {
		var p appstore.TransactionPayload
		decodeJWS(t, jws, &p)
		if p.TransactionID == tr.LatestTransactionID {
			t.Fatal("a reversed refund is still in refund history")
		}
	}

	// A refund whose period ends before the reversal: expired, not renewing.
	ending := pickTruth(t, s, "purchase ending within 5 days", func(x SubscriptionTruth) bool {
		return activePurchase(s)(x) && x.OriginalTransactionID != running.OriginalTransactionID && x.ExpiresDate.Sub(s.Now()) < 5*day
	})
	if err := s.Mutate(ending.OriginalTransactionID, MutateRefund); err != nil {
		t.Fatal(err)
	}
	s.Advance(ending.ExpiresDate.Sub(s.Now()) + time.Hour)
	if err := s.MutateAndNotify(ending.OriginalTransactionID, MutateRefundReversed); err != nil {
		t.Fatal(err)
	}
	tr, _ = s.TruthOf(ending.OriginalTransactionID)
	vn = lastNotification(t, s, ending.OriginalTransactionID)
	if tr.Status != "expired" || tr.AutoRenewStatus || int(vn.Payload.Data.Status) != appstore.StatusExpired || vn.RenewalInfo.ExpirationIntent != 1 {
		t.Fatalf("reversed after its period: truth %+v, renewal info %+v", tr, vn.RenewalInfo)
	}
	// A family revocation is not a refund.
	family := pickTruth(t, s, "active family-shared", func(x SubscriptionTruth) bool {
		return x.Status == "active" && x.InAppOwnershipType == "FAMILY_SHARED"
	})
	if err := s.Mutate(family.OriginalTransactionID, MutateRefund); err != nil {
		t.Fatal(err)
	}
	if err := s.Mutate(family.OriginalTransactionID, MutateRefundReversed); err == nil {
		t.Fatal("reversed a family revocation")
	}
}
