package sim

import (
	"testing"

	"github.com/storesync/storesync/appstore"
)

// OFFER_REDEEMED in each of Apple's subtypes, with the offer in the signed
// data and the truth.
func TestOfferRedeemed(t *testing.T) {
	t.Parallel()
	s := startTest(t, unlimited(Options{Seed: 31, Subscribers: 500}))
	w := s.world
	// apply runs one redemption on otid as the world would and notifies.
	apply := func(otid string, redeem func(*subscription) (change, error)) {
		t.Helper()
		w.mu.Lock()
		sub := w.env(appstore.Production).subByOTID[otid]
		c, err := redeem(sub)
		if err == nil {
			w.sendChange(sub, c)
		}
		w.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
	}

	// No subtype: a promotional offer for the next renewal of the plan; the
	// renewal then carries it and costs its price.
	plain := pickTruth(t, s, "monthly purchase", func(tr SubscriptionTruth) bool {
		return activePurchase(s)(tr) && tr.ProductID == ProductPremiumMonthly && tr.AutoRenewProductID == tr.ProductID && tr.ExpiresDate.Sub(s.Now()) < 10*day
	})
	apply(plain.OriginalTransactionID, w.redeemOffer)
	vn := lastNotification(t, s, plain.OriginalTransactionID)
	tr, _ := s.TruthOf(plain.OriginalTransactionID)
	ri := vn.RenewalInfo
	if vn.Payload.NotificationType != "OFFER_REDEEMED" || vn.Payload.Subtype != "" || ri.OfferType != offerTypePromotional ||
		ri.OfferIdentifier == "" || ri.OfferPeriod != "P1M" || tr.RenewalOfferType != 2 || tr.RenewalOfferIdentifier != ri.OfferIdentifier {
		t.Fatalf("OFFER_REDEEMED: renewal info %+v, truth %+v", ri, tr)
	}
	s.Advance(plain.ExpiresDate.Sub(s.Now()) + 1)
	if after, _ := s.TruthOf(plain.OriginalTransactionID); after.TransactionCount == plain.TransactionCount+1 {
		renewal := lastNotification(t, s, plain.OriginalTransactionID).Transaction
		if renewal.OfferType != offerTypePromotional || renewal.OfferIdentifier != ri.OfferIdentifier || renewal.Price != ri.RenewalPrice ||
			after.OfferType != 2 || after.RenewalOfferType != 0 {
			t.Fatalf("renewal with the offer: %+v, truth %+v", renewal, after)
		}
	} else {
		t.Logf("%s did not renew as planned (its customer acted): %+v", plain.OriginalTransactionID, after)
	}

	// UPGRADE: now, to the higher product, at its offer price.
	up := pickTruth(t, s, "monthly purchase to upgrade", func(tr SubscriptionTruth) bool {
		return activePurchase(s)(tr) && tr.ProductID == ProductCloudMonthly
	})
	apply(up.OriginalTransactionID, w.redeemUpgrade)
	vn = lastNotification(t, s, up.OriginalTransactionID)
	if vn.Payload.Subtype != "UPGRADE" || vn.Transaction.ProductID != ProductCloudYearly || vn.Transaction.OfferType != 2 ||
		vn.Transaction.TransactionReason != "PURCHASE" || vn.RenewalInfo.AutoRenewProductID != ProductCloudYearly {
		t.Fatalf("OFFER_REDEEMED/UPGRADE transaction %+v", vn.Transaction)
	}

	// DOWNGRADE: the lower product with its offer from the next renewal.
	down := pickTruth(t, s, "monthly purchase to downgrade", func(tr SubscriptionTruth) bool {
		return activePurchase(s)(tr) && tr.ProductID == ProductPremiumMonthly && tr.OriginalTransactionID != plain.OriginalTransactionID
	})
	apply(down.OriginalTransactionID, w.redeemDowngrade)
	vn = lastNotification(t, s, down.OriginalTransactionID)
	if vn.Payload.Subtype != "DOWNGRADE" || vn.RenewalInfo.AutoRenewProductID != ProductPremiumWeekly || vn.RenewalInfo.OfferType != 2 ||
		vn.RenewalInfo.OfferPeriod != "P1W" || vn.Transaction.ProductID != ProductPremiumMonthly {
		t.Fatalf("OFFER_REDEEMED/DOWNGRADE renewal info %+v", vn.RenewalInfo)
	}

	// RESUBSCRIBE: a lapsed customer comes back with an offer code.
	back := pickTruth(t, s, "expired purchase", func(tr SubscriptionTruth) bool {
		return tr.Status == "expired" && tr.InAppOwnershipType == "PURCHASED"
	})
	apply(back.OriginalTransactionID, w.redeemResubscribe)
	vn = lastNotification(t, s, back.OriginalTransactionID)
	if vn.Payload.Subtype != "RESUBSCRIBE" || int(vn.Payload.Data.Status) != appstore.StatusActive || vn.Transaction.OfferType != offerTypeCode ||
		vn.Transaction.OfferIdentifier != "COMEBACK50" || vn.Transaction.OfferDiscountType != "PAY_AS_YOU_GO" {
		t.Fatalf("OFFER_REDEEMED/RESUBSCRIBE transaction %+v", vn.Transaction)
	}

	// INITIAL_BUY: a new customer redeems a free-period code in the App
	// Store; Apple has no appAccountToken for them, the company has one.
	w.mu.Lock()
	fresh := w.offerCodeCustomer()
	w.mu.Unlock()
	vn = lastNotification(t, s, fresh.otid)
	tr, _ = s.TruthOf(fresh.otid)
	acct, _ := s.AccountOf(fresh.otid)
	if vn.Payload.Subtype != "INITIAL_BUY" || vn.Transaction.OfferType != offerTypeCode || vn.Transaction.OfferDiscountType != "FREE_TRIAL" ||
		vn.Transaction.Price != 0 || vn.Transaction.AppAccountToken != "" || tr.AppAccountToken != "" || acct.CompanyAppAccountToken == "" ||
		tr.TransactionCount != 1 || tr.Status != "active" {
		t.Fatalf("OFFER_REDEEMED/INITIAL_BUY: transaction %+v, truth %+v", vn.Transaction, tr)
	}

	// Refusals: a family member cannot redeem, nor an expired customer an
	// offer for a renewal.
	family := pickTruth(t, s, "active family-shared", func(tr SubscriptionTruth) bool {
		return tr.Status == "active" && tr.InAppOwnershipType == "FAMILY_SHARED"
	})
	w.mu.Lock()
	_, errFamily := w.redeemOffer(w.env(appstore.Production).subByOTID[family.OriginalTransactionID])
	_, errExpired := w.redeemOffer(w.env(appstore.Production).subByOTID[back.OriginalTransactionID])
	w.mu.Unlock()
	if errFamily == nil {
		t.Error("a family member redeemed an offer")
	}
	if errExpired == nil {
		t.Error("an offer for the next renewal was redeemed twice")
	}
}
