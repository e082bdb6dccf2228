package sim

import (
	"testing"

	"github.com/storesync/storesync/appstore"
)

// A price increase: PENDING (priceIncreaseStatus 0, renewalPrice up), then
// either ACCEPTED and a renewal at the new price, or no answer and
// EXPIRED/PRICE_INCREASE at the renewal date. Customers also act on their
// own meanwhile (turn auto-renew off, fail to pay…); those whose next
// notification is not the outcome are left out, and each outcome must be
// seen at least once.
func TestPriceIncrease(t *testing.T) {
	t.Parallel()
	s := startTest(t, unlimited(Options{Seed: 29, Subscribers: 600}))
	var accepting, silent []SubscriptionTruth
	newPrice := map[string]appstore.Int{}
	for _, tr := range s.Truth() {
		if tr.Environment != appstore.Production || !activePurchase(s)(tr) || tr.ProductID != tr.AutoRenewProductID ||
			(tr.ProductID != ProductPremiumMonthly && tr.ProductID != ProductCloudMonthly) || len(accepting)+len(silent) == 12 {
			continue
		}
		before := lastRenewalInfo(t, s, tr.OriginalTransactionID)
		if err := s.MutateAndNotify(tr.OriginalTransactionID, MutatePriceIncrease); err != nil {
			t.Fatal(err)
		}
		vn := lastNotification(t, s, tr.OriginalTransactionID)
		ri := vn.RenewalInfo
		if vn.Payload.Subtype != "PENDING" || ri.PriceIncreaseStatus == nil || *ri.PriceIncreaseStatus != 0 || ri.RenewalPrice <= before.RenewalPrice {
			t.Fatalf("PENDING renewal info %+v (price before %d)", ri, before.RenewalPrice)
		}
		if len(accepting) > len(silent) {
			tr, _ = s.TruthOf(tr.OriginalTransactionID)
			silent = append(silent, tr)
			continue
		}
		if err := s.MutateAndNotify(tr.OriginalTransactionID, MutatePriceIncreaseConsent); err != nil {
			t.Fatal(err)
		}
		newPrice[tr.OriginalTransactionID] = lastNotification(t, s, tr.OriginalTransactionID).RenewalInfo.RenewalPrice
		tr, _ = s.TruthOf(tr.OriginalTransactionID)
		accepting = append(accepting, tr)
	}
	s.Advance(32 * day)
	// next is the type/subtype of the first notification about tr after
	// the price increase's.
	next := func(tr SubscriptionTruth) (string, *NotificationRecord) {
		after, _ := s.TruthOf(tr.OriginalTransactionID)
		if len(after.Notifications) == len(tr.Notifications) {
			return "", nil
		}
		id := after.Notifications[len(tr.Notifications)]
		for _, r := range s.Notifications(appstore.Production) {
			if r.NotificationUUID == id {
				return r.NotificationType + "/" + r.Subtype, &r
			}
		}
		return "", nil
	}
	renewed, expired := 0, 0
	for _, tr := range accepting {
		if kind, _ := next(tr); kind != "DID_RENEW/" {
			continue
		}
		renewed++
		var renewal appstore.TransactionPayload
		var info appstore.TransactionInfoResponse
		call(t, s, "GET", "/inApps/v1/transactions/"+firstRenewalAfter(t, s, tr), nil).decode(t, &info)
		verifyJWS(t, s, info.SignedTransactionInfo, &renewal)
		if renewal.Price != newPrice[tr.OriginalTransactionID] {
			t.Fatalf("%s renewed at %d, the accepted price is %d", tr.OriginalTransactionID, renewal.Price, newPrice[tr.OriginalTransactionID])
		}
	}
	for _, tr := range silent {
		kind, rec := next(tr)
		if kind != "EXPIRED/PRICE_INCREASE" {
			if kind == "DID_RENEW/" {
				t.Fatalf("%s renewed without consenting to the price increase", tr.OriginalTransactionID)
			}
			continue
		}
		expired++
		if !rec.SignedDate.Equal(tr.ExpiresDate) {
			t.Fatalf("%s expired at %v, its period ended at %v", tr.OriginalTransactionID, rec.SignedDate, tr.ExpiresDate)
		}
		found := false
		for _, vn := range historyOf(t, s, appstore.Production, "EXPIRED", rec.SignedDate) {
			if vn.Payload.NotificationUUID != rec.NotificationUUID {
				continue
			}
			found = true
			if vn.RenewalInfo.ExpirationIntent != 3 || vn.RenewalInfo.AutoRenewStatus != 0 || vn.RenewalInfo.PriceIncreaseStatus != nil ||
				int(vn.Payload.Data.Status) != appstore.StatusExpired || vn.Transaction.TransactionID != tr.LatestTransactionID {
				t.Fatalf("EXPIRED/PRICE_INCREASE: status %d, transaction %s, renewal info %+v", vn.Payload.Data.Status, vn.Transaction.TransactionID, vn.RenewalInfo)
			}
		}
		if !found {
			t.Fatalf("EXPIRED/PRICE_INCREASE %s not in notification history", rec.NotificationUUID)
		}
	}
	if renewed == 0 || expired == 0 {
		t.Fatalf("%d of %d renewed at the new price, %d of %d expired for it; want some of each", renewed, len(accepting), expired, len(silent))
	}
}

// lastRenewalInfo is the subscription's renewal info from Get All
// Subscription Statuses.
func lastRenewalInfo(t *testing.T, s *Simulator, otid string) *appstore.RenewalInfoPayload {
	t.Helper()
	var st appstore.StatusResponse
	call(t, s, "GET", "/inApps/v1/subscriptions/"+otid, nil).decode(t, &st)
	for _, g := range st.Data {
		for _, item := range g.LastTransactions {
			if item.OriginalTransactionID == otid {
				var ri appstore.RenewalInfoPayload
				verifyJWS(t, s, item.SignedRenewalInfo, &ri)
				return &ri
			}
		}
	}
	t.Fatalf("statuses lack %s", otid)
	return nil
}

// firstRenewalAfter is the transaction id of the first renewal of before's
// subscription after before's latest transaction.
func firstRenewalAfter(t *testing.T, s *Simulator, before SubscriptionTruth) string {
	t.Helper()
	w := s.world
	w.mu.RLock()
	defer w.mu.RUnlock()
	sub := w.env(before.Environment).subByOTID[before.OriginalTransactionID]
	if len(sub.txs) <= before.TransactionCount {
		t.Fatalf("%s did not renew", before.OriginalTransactionID)
	}
	return sub.txs[before.TransactionCount].id
}
