package sim

import (
	"strings"
	"testing"

	"github.com/storesync/storesync/appstore"
)

// Every MutationKind, applied with MutateAndNotify, changes what its
// documentation says and sends exactly the notification it names, which
// verifies in full and carries the new state.
func TestMutateAndNotifySendsEachKindsNotification(t *testing.T) {
	t.Parallel()
	s := startTest(t, unlimited(Options{Seed: 17, Subscribers: 400}))
	used := map[string]bool{}
	pick := func(what string, ok func(SubscriptionTruth) bool) SubscriptionTruth {
		t.Helper()
		tr := pickTruth(t, s, what, func(tr SubscriptionTruth) bool { return !used[tr.OriginalTransactionID] && ok(tr) })
		used[tr.OriginalTransactionID] = true
		return tr
	}
	active := activePurchase(s)
	// A paid, active subscription whose latest period is not an offer, so
	// it may be extended and redeem offers.
	extendable := func(tr SubscriptionTruth) bool {
		return active(tr) && tr.TransactionCount > 1 && tr.ProductID != ProductPremiumYearly && tr.ProductID != ProductCloudYearly
	}
	type step struct {
		kind         MutationKind
		typ, subtype string
		check        func(before, after SubscriptionTruth, vn *appstore.VerifiedNotification) bool
	}
	chain := func(what string, ok func(SubscriptionTruth) bool, steps ...step) {
		t.Helper()
		tr := pick(what, ok)
		for _, st := range steps {
			before, _ := s.TruthOf(tr.OriginalTransactionID)
			if err := s.MutateAndNotify(tr.OriginalTransactionID, st.kind); err != nil {
				t.Fatalf("%s on %s: %v", st.kind, what, err)
			}
			after, _ := s.TruthOf(tr.OriginalTransactionID)
			if len(after.Notifications) != len(before.Notifications)+1 {
				t.Fatalf("%s sent %d notifications", st.kind, len(after.Notifications)-len(before.Notifications))
			}
			vn := lastNotification(t, s, tr.OriginalTransactionID)
			if vn.Payload.NotificationType != st.typ || vn.Payload.Subtype != st.subtype {
				t.Fatalf("%s sent %s/%s, want %s/%s", st.kind, vn.Payload.NotificationType, vn.Payload.Subtype, st.typ, st.subtype)
			}
			if st.check != nil && !st.check(before, after, vn) {
				t.Fatalf("%s: before %+v\nafter %+v\nnotification tx %+v\nrenewal %+v", st.kind, before, after, vn.Transaction, vn.RenewalInfo)
			}
		}
	}
	renewalInfo := func(vn *appstore.VerifiedNotification) *appstore.RenewalInfoPayload { return vn.RenewalInfo }

	chain("active purchase", active,
		step{MutateAutoRenewOff, "DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_DISABLED", func(b, a SubscriptionTruth, vn *appstore.VerifiedNotification) bool {
			return !a.AutoRenewStatus && renewalInfo(vn).AutoRenewStatus == 0
		}},
		step{MutateAutoRenewOn, "DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_ENABLED", nil},
		step{MutateExpire, "EXPIRED", "VOLUNTARY", func(b, a SubscriptionTruth, _ *appstore.VerifiedNotification) bool { return a.Status == "expired" }},
		step{MutateRenew, "DID_RENEW", "", func(b, a SubscriptionTruth, vn *appstore.VerifiedNotification) bool {
			return a.Status == "active" && vn.Transaction.TransactionID == a.LatestTransactionID
		}},
		step{MutateRefund, "REFUND", "", func(b, a SubscriptionTruth, vn *appstore.VerifiedNotification) bool {
			return a.Status == "revoked" && vn.Transaction.RevocationDate != 0
		}},
		step{MutateRefundReversed, "REFUND_REVERSED", "", func(b, a SubscriptionTruth, vn *appstore.VerifiedNotification) bool {
			return a.Status == "active" && a.AutoRenewStatus && vn.Transaction.RevocationDate == 0 && vn.Transaction.RevocationReason == nil
		}},
	)
	chain("family-shared active", func(tr SubscriptionTruth) bool {
		return tr.Status == "active" && tr.InAppOwnershipType == "FAMILY_SHARED"
	},
		step{MutateRefund, "REVOKE", "", func(b, a SubscriptionTruth, vn *appstore.VerifiedNotification) bool {
			return a.Status == "revoked" && vn.Transaction.RevocationType == "FAMILY_REVOKE"
		}})
	chain("renewing purchase for a price increase", active,
		step{MutatePriceIncrease, "PRICE_INCREASE", "PENDING", func(b, a SubscriptionTruth, vn *appstore.VerifiedNotification) bool {
			ri := renewalInfo(vn)
			return a.PriceIncreaseStatus != nil && *a.PriceIncreaseStatus == 0 && ri.PriceIncreaseStatus != nil && *ri.PriceIncreaseStatus == 0
		}},
		step{MutatePriceIncreaseConsent, "PRICE_INCREASE", "ACCEPTED", func(b, a SubscriptionTruth, vn *appstore.VerifiedNotification) bool {
			ri := renewalInfo(vn)
			return *a.PriceIncreaseStatus == 1 && ri.PriceIncreaseStatus != nil && *ri.PriceIncreaseStatus == 1
		}},
	)
	chain("cloud monthly purchase to cross-grade", func(tr SubscriptionTruth) bool { return active(tr) && tr.ProductID == ProductCloudMonthly },
		step{MutateChangeRenewalProduct, "DID_CHANGE_RENEWAL_PREF", "", func(b, a SubscriptionTruth, _ *appstore.VerifiedNotification) bool {
			return a.AutoRenewProductID == ProductCloudYearly
		}})
	chain("extendable purchase", extendable,
		step{MutateOfferRedeemed, "OFFER_REDEEMED", "", func(b, a SubscriptionTruth, vn *appstore.VerifiedNotification) bool {
			ri := renewalInfo(vn)
			return a.RenewalOfferType == 2 && ri.OfferType == 2 && ri.OfferIdentifier == a.RenewalOfferIdentifier && ri.OfferDiscountType == "PAY_AS_YOU_GO"
		}},
		step{MutateExtendRenewalDate, "RENEWAL_EXTENDED", "", func(b, a SubscriptionTruth, vn *appstore.VerifiedNotification) bool {
			return a.ExpiresDate.Equal(b.ExpiresDate.Add(30*day)) && vn.Transaction.ExpiresDate.Time().Equal(a.ExpiresDate) && a.RenewalExtensions == 1
		}},
		step{MutateConsumptionRequest, "CONSUMPTION_REQUEST", "", func(b, a SubscriptionTruth, vn *appstore.VerifiedNotification) bool {
			return a.RefundRequested && vn.Payload.Data.ConsumptionRequestReason != ""
		}},
		step{MutateRefundDeclined, "REFUND_DECLINED", "", func(b, a SubscriptionTruth, _ *appstore.VerifiedNotification) bool {
			return !a.RefundRequested && a.Status == "active"
		}},
	)
	chain("upgradable purchase", func(tr SubscriptionTruth) bool {
		return active(tr) && (tr.ProductID == ProductPremiumMonthly || tr.ProductID == ProductCloudMonthly)
	}, step{MutateOfferUpgrade, "OFFER_REDEEMED", "UPGRADE", func(b, a SubscriptionTruth, vn *appstore.VerifiedNotification) bool {
		return a.TransactionCount == b.TransactionCount+1 && a.OfferType == 2 && vn.Transaction.OfferType == 2 &&
			vn.Transaction.ProductID == a.ProductID && a.ProductID != b.ProductID
	}})
	chain("monthly purchase to downgrade", func(tr SubscriptionTruth) bool { return active(tr) && tr.ProductID == ProductPremiumMonthly },
		step{MutateChangeRenewalProduct, "DID_CHANGE_RENEWAL_PREF", "DOWNGRADE", func(b, a SubscriptionTruth, _ *appstore.VerifiedNotification) bool {
			return a.AutoRenewProductID == ProductPremiumWeekly
		}})
	chain("in billing retry", func(tr SubscriptionTruth) bool { return tr.Status == "billing_retry" },
		step{MutateRenew, "DID_RENEW", "BILLING_RECOVERY", nil})
	chain("renewing purchase whose billing fails", func(tr SubscriptionTruth) bool { return active(tr) && tr.AutoRenewStatus },
		step{MutateBillingRetry, "DID_FAIL_TO_RENEW", "", func(b, a SubscriptionTruth, vn *appstore.VerifiedNotification) bool {
			ri := renewalInfo(vn)
			return a.Status == "billing_retry" && ri.IsInBillingRetryPeriod && ri.GracePeriodExpiresDate == 0
		}},
		step{MutateRenew, "DID_RENEW", "BILLING_RECOVERY", func(b, a SubscriptionTruth, _ *appstore.VerifiedNotification) bool { return a.Status == "active" }},
		step{MutateBillingGrace, "DID_FAIL_TO_RENEW", "GRACE_PERIOD", func(b, a SubscriptionTruth, vn *appstore.VerifiedNotification) bool {
			ri := renewalInfo(vn)
			return a.Status == "grace_period" && ri.GracePeriodExpiresDate.Time().After(vn.Transaction.ExpiresDate.Time())
		}},
	)

	// Silent mutations of the new kinds notify nothing; the kinds that are
	// only their notification are refused silently.
	quiet := pick("quiet active purchase", extendable)
	for _, k := range []MutationKind{MutatePriceIncrease, MutatePriceIncreaseConsent, MutateOfferRedeemed, MutateExtendRenewalDate, MutateRefund, MutateRefundReversed} {
		if err := s.Mutate(quiet.OriginalTransactionID, k); err != nil {
			t.Fatalf("silent %s: %v", k, err)
		}
	}
	for _, k := range notifyOnly {
		if err := s.Mutate(quiet.OriginalTransactionID, k); err == nil || !strings.Contains(err.Error(), "MutateAndNotify") {
			t.Errorf("silent %s: %v, want a refusal naming MutateAndNotify", k, err)
		}
	}
	if after, _ := s.TruthOf(quiet.OriginalTransactionID); len(after.Notifications) != len(quiet.Notifications) {
		t.Fatalf("silent mutations notified %d times", len(after.Notifications)-len(quiet.Notifications))
	}
	// Refusals: no refund to reverse, no pending increase to accept.
	if err := s.MutateAndNotify(quiet.OriginalTransactionID, MutateRefundReversed); err == nil {
		t.Error("reversing an unrefunded subscription succeeded")
	}
	fresh := pick("fresh active purchase", active)
	if err := s.MutateAndNotify(fresh.OriginalTransactionID, MutatePriceIncreaseConsent); err == nil {
		t.Error("consenting without a price increase succeeded")
	}

	// The control endpoint takes notify=true.
	code, body := controlCall(t, s, "POST", "/sim/mutate?otid="+fresh.OriginalTransactionID+"&kind=auto-renew-off&notify=true", "")
	if after, _ := s.TruthOf(fresh.OriginalTransactionID); code != 200 || len(after.Notifications) != len(fresh.Notifications)+1 {
		t.Fatalf("/sim/mutate notify=true: %d %s", code, body)
	}
	if code, _ := controlCall(t, s, "POST", "/sim/mutate?otid="+fresh.OriginalTransactionID+"&kind=auto-renew-on&notify=maybe", ""); code != 400 {
		t.Errorf("notify=maybe: %d", code)
	}
}
