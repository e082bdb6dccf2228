package sim

import (
	"reflect"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
)

// checkTruthAgainstStatuses compares every subscription's truth with what
// Get All Subscription Statuses says.
func checkTruthAgainstStatuses(t *testing.T, s *Simulator) {
	t.Helper()
	truth := s.Truth()
	seen := map[string]bool{}
	statuses := map[string]int{}
	for _, tr := range truth {
		if seen[tr.OriginalTransactionID] {
			continue
		}
		prefix := ""
		if tr.Environment == appstore.Sandbox {
			prefix = "/sandbox"
		}
		var st appstore.StatusResponse
		call(t, s, "GET", prefix+"/inApps/v1/subscriptions/"+tr.OriginalTransactionID, nil).decode(t, &st)
		if st.Environment != tr.Environment || st.BundleID != s.BundleID() || int64(st.AppAppleID) != s.AppAppleID() {
			t.Fatalf("status response header %+v", st)
		}
		for _, g := range st.Data {
			for _, item := range g.LastTransactions {
				seen[item.OriginalTransactionID] = true
				want, ok := s.TruthOf(item.OriginalTransactionID)
				if !ok {
					t.Fatalf("statuses returned unknown %s", item.OriginalTransactionID)
				}
				var tx appstore.TransactionPayload
				decodeJWS(t, item.SignedTransactionInfo, &tx)
				var rn appstore.RenewalInfoPayload
				decodeJWS(t, item.SignedRenewalInfo, &rn)
				got := SubscriptionTruth{
					OriginalTransactionID:       tx.OriginalTransactionID,
					ProductID:                   tx.ProductID,
					SubscriptionGroupIdentifier: g.SubscriptionGroupIdentifier,
					StatusCode:                  int(item.Status),
					ExpiresDate:                 tx.ExpiresDate.Time(),
					AutoRenewStatus:             rn.AutoRenewStatus == 1,
					LatestTransactionID:         tx.TransactionID,
					AppAccountToken:             tx.AppAccountToken,
					Environment:                 tx.Environment,
					AutoRenewProductID:          rn.AutoRenewProductID,
					InAppOwnershipType:          tx.InAppOwnershipType,
					OfferType:                   int(tx.OfferType),
					OfferIdentifier:             tx.OfferIdentifier,
					RenewalOfferType:            int(rn.OfferType),
					RenewalOfferIdentifier:      rn.OfferIdentifier,
				}
				if rn.PriceIncreaseStatus != nil {
					pi := int(*rn.PriceIncreaseStatus)
					got.PriceIncreaseStatus = &pi
				}
				w := want
				w.AccountID, w.Status, w.TransactionCount, w.Notifications = "", "", 0, nil
				w.RenewalExtensions, w.RefundRequested = 0, false // not in signed data
				if !reflect.DeepEqual(got, w) {
					t.Fatalf("statuses say\n%+v\ntruth says\n%+v", got, w)
				}
				if tx.SubscriptionGroupIdentifier != g.SubscriptionGroupIdentifier || rn.OriginalTransactionID != tx.OriginalTransactionID {
					t.Fatalf("item %s grouped under %s, renewal info for %s", tx.OriginalTransactionID, g.SubscriptionGroupIdentifier, rn.OriginalTransactionID)
				}
				statuses[want.Status]++
			}
		}
	}
	if len(seen) != len(truth) {
		t.Fatalf("statuses covered %d subscriptions, truth has %d", len(seen), len(truth))
	}
	for _, name := range []string{"active", "expired", "billing_retry", "grace_period", "revoked"} {
		if statuses[name] == 0 {
			t.Errorf("no subscription is %s: %v", name, statuses)
		}
	}
}

func TestTruthMatchesStatuses(t *testing.T) {
	t.Parallel()
	s := startTest(t, unlimited(Options{Seed: 31, Subscribers: 600}))
	checkTruthAgainstStatuses(t, s)
	s.Advance(10 * 24 * time.Hour)
	checkTruthAgainstStatuses(t, s)
}

func TestPopulationMix(t *testing.T) {
	t.Parallel()
	s, err := New(Options{Seed: 8, Subscribers: 3000})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	truth := s.Truth()
	var withToken, family, long, sandbox int
	accounts := map[string]int{}
	txIDs := map[string]bool{}
	for _, tr := range truth {
		accounts[tr.AccountID]++
		if tr.AppAccountToken != "" {
			withToken++
		}
		if tr.InAppOwnershipType == "FAMILY_SHARED" {
			family++
		}
		if tr.TransactionCount > 100 {
			long++
		}
		if tr.Environment == appstore.Sandbox {
			sandbox++
		}
	}
	both := 0
	for _, n := range accounts {
		if n == 2 {
			both++
		}
	}
	n := float64(len(truth))
	check := func(name string, got int, lo, hi float64) {
		if f := float64(got) / n; f < lo || f > hi {
			t.Errorf("%s: %d of %d subscriptions (%.3f), want %.3f..%.3f", name, got, len(truth), f, lo, hi)
		}
	}
	check("with appAccountToken", withToken, 0.55, 0.75)
	check("family-shared", family, 0.01, 0.07)
	check("long histories", long, 0.003, 0.02)
	check("sandbox-only", sandbox, 0.01, 0.035)
	check("customers in both groups", both, 0.07, 0.2)
	// Transaction ids: unique decimal strings of at most 20 digits, with
	// production and sandbox in distinct ranges.
	s.world.mu.RLock()
	for _, e := range s.world.envs {
		for id, tx := range e.txByID {
			if !validID(id) || txIDs[id] {
				t.Fatalf("bad or duplicate id %q", id)
			}
			txIDs[id] = true
			if (e.env == appstore.Sandbox) != (id[0] == '1') {
				t.Fatalf("%s id %s outside its range", e.env, id)
			}
			if tx.offerType == 1 && tx.offerDisc == "" {
				t.Fatalf("intro transaction %s without offerDiscountType", id)
			}
		}
	}
	var offers, upgraded, revokedTx int
	for _, e := range s.world.envs {
		for _, tx := range e.txByID {
			if tx.offerType != 0 {
				offers++
			}
			if tx.upgraded {
				upgraded++
			}
			if !tx.revokedAt.IsZero() {
				revokedTx++
			}
		}
	}
	s.world.mu.RUnlock()
	if offers == 0 || upgraded == 0 || revokedTx == 0 {
		t.Errorf("offers %d, upgraded %d, revoked %d: want all present", offers, upgraded, revokedTx)
	}
}

func TestSameSeedSameWorld(t *testing.T) {
	t.Parallel()
	run := func(seed int64, split bool) []SubscriptionTruth {
		s, err := New(Options{Seed: seed, Subscribers: 500})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if split {
			for range 4 {
				s.Advance(12 * time.Hour)
			}
		} else {
			s.Advance(48 * time.Hour)
		}
		otid := s.OriginalTransactionIDs(appstore.Production)[3]
		_ = s.Mutate(otid, MutateAutoRenewOff)
		s.Advance(24 * time.Hour)
		return s.Truth()
	}
	a, b := run(42, false), run(42, true)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed gave different truths (Advance split differently)")
	}
	notes := 0
	for _, tr := range a {
		notes += len(tr.Notifications)
	}
	if notes == 0 {
		t.Fatal("no notifications in 3 days")
	}
	if reflect.DeepEqual(a, run(43, false)) {
		t.Fatal("different seeds gave the same truth")
	}
}

func TestMutateIsSilent(t *testing.T) {
	t.Parallel()
	s := startTest(t, unlimited(Options{Seed: 12, Subscribers: 300}))
	var active SubscriptionTruth
	for _, tr := range s.Truth() {
		if tr.Status == "active" && tr.AutoRenewStatus && tr.InAppOwnershipType == "PURCHASED" && tr.Environment == appstore.Production {
			active = tr
			break
		}
	}
	id := active.OriginalTransactionID
	notesBefore := len(s.Notifications(appstore.Production))
	step := func(kind MutationKind, check func(SubscriptionTruth) bool) {
		t.Helper()
		before, _ := s.TruthOf(id)
		if err := s.Mutate(id, kind); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		after, _ := s.TruthOf(id)
		if !check(after) {
			t.Fatalf("%s: before %+v, after %+v", kind, before, after)
		}
	}
	step(MutateAutoRenewOff, func(tr SubscriptionTruth) bool { return !tr.AutoRenewStatus && tr.Status == "active" })
	if err := s.Mutate(id, MutateAutoRenewOff); err == nil {
		t.Fatal("turning auto-renew off twice succeeded")
	}
	step(MutateAutoRenewOn, func(tr SubscriptionTruth) bool { return tr.AutoRenewStatus })
	step(MutateChangeRenewalProduct, func(tr SubscriptionTruth) bool { return tr.AutoRenewProductID != active.AutoRenewProductID })
	step(MutateRenew, func(tr SubscriptionTruth) bool {
		return tr.TransactionCount == active.TransactionCount+1 && tr.LatestTransactionID != active.LatestTransactionID && tr.ProductID == tr.AutoRenewProductID
	})
	step(MutateExpire, func(tr SubscriptionTruth) bool {
		return tr.Status == "expired" && !tr.AutoRenewStatus && !tr.ExpiresDate.After(s.Now())
	})
	step(MutateRenew, func(tr SubscriptionTruth) bool { return tr.Status == "active" && tr.AutoRenewStatus })
	step(MutateRefund, func(tr SubscriptionTruth) bool { return tr.Status == "revoked" && !tr.AutoRenewStatus })
	if err := s.Mutate(id, MutateRefund); err == nil {
		t.Fatal("refunding twice succeeded")
	}
	if err := s.Mutate("123", MutateRefund); err == nil {
		t.Fatal("mutating an unknown id succeeded")
	}
	if n := len(s.Notifications(appstore.Production)); n != notesBefore {
		t.Fatalf("mutations sent %d notifications", n-notesBefore)
	}
	tr, _ := s.TruthOf(id)
	if len(tr.Notifications) != len(active.Notifications) {
		t.Fatal("truth lists notifications for silent changes")
	}
	// Expiring a subscription leaves nothing scheduled that would notify.
	var other SubscriptionTruth
	for _, x := range s.Truth() {
		if x.Status == "active" && x.AutoRenewStatus && x.OriginalTransactionID != id {
			other = x
			break
		}
	}
	if err := s.Mutate(other.OriginalTransactionID, MutateExpire); err != nil {
		t.Fatal(err)
	}
	mutatedAt := s.Now()
	s.Advance(60 * 24 * time.Hour)
	// Only a later resubscription may notify; no EXPIRED for the silent expiry.
	var after []NotificationRecord
	for _, r := range s.Notifications(other.Environment) {
		if r.OriginalTransactionID == other.OriginalTransactionID && r.SignedDate.After(mutatedAt) {
			after = append(after, r)
		}
	}
	if len(after) > 0 && (after[0].NotificationType != "SUBSCRIBED" || after[0].Subtype != "RESUBSCRIBE") {
		t.Fatalf("silently expired subscription notified %s/%s", after[0].NotificationType, after[0].Subtype)
	}
}
