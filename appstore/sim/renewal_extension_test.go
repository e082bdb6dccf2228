package sim

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
)

// eligibleForExtension lists the subscriptions of env Apple would extend
// now, family-shared ones included when family is set.
func eligibleForExtension(s *Simulator, env appstore.Environment, family bool) []SubscriptionTruth {
	w := s.world
	w.mu.RLock()
	var ids []string
	for _, sub := range w.subs {
		if sub.acct.env.env == env && (family || sub.ownership == "PURCHASED") && sub.extensionRefusal(w.now()) == nil {
			ids = append(ids, sub.otid)
		}
	}
	w.mu.RUnlock()
	var out []SubscriptionTruth
	for _, id := range ids {
		tr, _ := s.TruthOf(id)
		out = append(out, tr)
	}
	return out
}

func wantAPIError(t *testing.T, name string, err error, status int, code int64) {
	t.Helper()
	var ae *appstore.APIError
	if !errors.As(err, &ae) || ae.HTTPStatus != status || ae.Code != code {
		t.Errorf("%s: %v, want HTTP %d with %d", name, err, status, code)
	}
}

func TestExtendSubscriptionRenewalDate(t *testing.T) {
	t.Parallel()
	s := startTest(t, unlimited(Options{Seed: 11, Subscribers: 300}))
	ctx := context.Background()
	client := newClient(t, s, appstore.Production)
	start := s.Now()
	target := eligibleForExtension(s, appstore.Production, false)[0]
	req := appstore.ExtendRenewalDateRequest{ExtendByDays: 45, ExtendReasonCode: appstore.ExtendReasonCustomerSatisfaction, RequestIdentifier: newUUID()}
	resp, err := client.ExtendSubscriptionRenewalDate(ctx, target.OriginalTransactionID, req)
	if err != nil {
		t.Fatal(err)
	}
	want := target.ExpiresDate.Add(45 * day)
	tx, _, err := client.GetTransactionInfo(ctx, target.LatestTransactionID)
	if err != nil {
		t.Fatal(err)
	}
	latest, err := newVerifier(t, s, appstore.Production).VerifyTransaction(tx.SignedTransactionInfo)
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Success || resp.OriginalTransactionID != target.OriginalTransactionID || resp.EffectiveDate.Time() != want ||
		resp.WebOrderLineItemID != latest.WebOrderLineItemID || latest.ExpiresDate.Time() != want {
		t.Fatalf("response %+v, latest transaction %+v; want expiresDate %v", resp, latest, want)
	}
	tr, _ := s.TruthOf(target.OriginalTransactionID)
	if !tr.ExpiresDate.Equal(want) || tr.LatestTransactionID != target.LatestTransactionID || tr.Status != "active" {
		t.Fatalf("truth after extension %+v", tr)
	}
	notes := historyOf(t, s, appstore.Production, "RENEWAL_EXTENDED", start)
	if len(notes) != 1 || notes[0].Transaction.ExpiresDate.Time() != want || notes[0].Payload.Subtype != "" ||
		notes[0].RenewalInfo.RenewalDate.Time() != want || int(notes[0].Payload.Data.Status) != appstore.StatusActive ||
		tr.Notifications[len(tr.Notifications)-1] != notes[0].Payload.NotificationUUID {
		t.Fatalf("RENEWAL_EXTENDED notifications %+v", notes)
	}

	// The same requestIdentifier again: the first answer, nothing extended.
	again, err := client.ExtendSubscriptionRenewalDate(ctx, target.OriginalTransactionID, appstore.ExtendRenewalDateRequest{
		ExtendByDays: 10, ExtendReasonCode: 2, RequestIdentifier: req.RequestIdentifier})
	if err != nil || *again != *resp {
		t.Fatalf("repeated request: %+v %v, want %+v", again, err, resp)
	}
	if tr2, _ := s.TruthOf(target.OriginalTransactionID); !tr2.ExpiresDate.Equal(want) || len(tr2.Notifications) != len(tr.Notifications) {
		t.Fatalf("a repeated request extended again: %+v", tr2)
	}
	// A second extension is allowed, a third within 365 days is not.
	req.RequestIdentifier = newUUID()
	if _, err := client.ExtendSubscriptionRenewalDate(ctx, target.OriginalTransactionID, req); err != nil {
		t.Fatal(err)
	}
	req.RequestIdentifier = newUUID()
	_, err = client.ExtendSubscriptionRenewalDate(ctx, target.OriginalTransactionID, req)
	wantAPIError(t, "third extension", err, 403, 4030005)

	// Refusals.
	var family, expired SubscriptionTruth
	for _, tr := range s.Truth() {
		switch {
		case tr.Environment != appstore.Production:
		case tr.InAppOwnershipType == "FAMILY_SHARED" && tr.Status == "active":
			family = tr
		case tr.Status == "expired":
			expired = tr
		}
	}
	ok := appstore.ExtendRenewalDateRequest{ExtendByDays: 1, RequestIdentifier: newUUID()}
	_, err = client.ExtendSubscriptionRenewalDate(ctx, family.OriginalTransactionID, ok)
	wantAPIError(t, "family-shared", err, 403, 4030007)
	_, err = client.ExtendSubscriptionRenewalDate(ctx, expired.OriginalTransactionID, ok)
	wantAPIError(t, "expired", err, 403, 4030004)
	// A customer in a free trial has never paid and is in a free offer.
	w := s.world
	w.mu.Lock()
	trial := w.purchase(w.newAccount(w.xrng, appstore.Production, true), w.cat.products[ProductPremiumMonthly], true)
	w.mu.Unlock()
	_, err = client.ExtendSubscriptionRenewalDate(ctx, trial.otid, ok)
	wantAPIError(t, "free trial", err, 403, 4030004)
	_, err = client.ExtendSubscriptionRenewalDate(ctx, "99999999", ok)
	wantAPIError(t, "unknown", err, 404, 4040005)
	for name, body := range map[string]map[string]any{
		"0 days":          {"extendByDays": 0, "extendReasonCode": 0, "requestIdentifier": "a"},
		"91 days":         {"extendByDays": 91, "extendReasonCode": 0, "requestIdentifier": "a"},
		"no reason":       {"extendByDays": 3, "requestIdentifier": "a"},
		"reason 4":        {"extendByDays": 3, "extendReasonCode": 4, "requestIdentifier": "a"},
		"no request id":   {"extendByDays": 3, "extendReasonCode": 3},
		"long request id": {"extendByDays": 3, "extendReasonCode": 3, "requestIdentifier": strings.Repeat("a", 129)},
		"bad json":        {"extendByDays": "3"},
	} {
		code := map[string]int{"0 days": 4000009, "91 days": 4000009, "no reason": 4000010, "reason 4": 4000010,
			"no request id": 4000011, "long request id": 4000011, "bad json": 4000000}[name]
		r := call(t, s, "PUT", "/inApps/v1/subscriptions/extend/"+target.OriginalTransactionID, body)
		if r.status != 400 || !strings.Contains(string(r.body), itoa(int64(code))) {
			t.Errorf("%s: %d %s, want 400 %d", name, r.status, r.body, code)
		}
	}
	call(t, s, "PUT", "/inApps/v1/subscriptions/extend/12ab", map[string]any{"extendByDays": 3, "extendReasonCode": 0, "requestIdentifier": "a"}).wantError(t, 400, 4000008)
	if got := s.Stats().Endpoint(appstore.Production, appstore.EndpointExtendRenewalDate).ByStatus[200]; got != 3 {
		t.Errorf("stats: %d successful extensions, want 3", got)
	}
}

func TestMassExtension(t *testing.T) {
	t.Parallel()
	s := startTest(t, unlimited(Options{Seed: 13, Subscribers: 500}))
	ctx := context.Background()
	client := newClient(t, s, appstore.Production)
	start := s.Now()
	product := ProductPremiumMonthly
	var onProduct []SubscriptionTruth
	for _, tr := range eligibleForExtension(s, appstore.Production, true) {
		if tr.ProductID == product {
			onProduct = append(onProduct, tr)
		}
	}
	if len(onProduct) < 10 {
		t.Fatalf("only %d eligible %s subscriptions", len(onProduct), product)
	}
	// One of them already had its two extensions this year: it fails.
	maxed := onProduct[0]
	for range 2 {
		if _, err := client.ExtendSubscriptionRenewalDate(ctx, maxed.OriginalTransactionID, appstore.ExtendRenewalDateRequest{
			ExtendByDays: 1, RequestIdentifier: newUUID()}); err != nil && maxed.InAppOwnershipType == "PURCHASED" {
			t.Fatal(err)
		}
	}
	if maxed.InAppOwnershipType != "PURCHASED" {
		t.Fatal("the first eligible subscription is family-shared; pick another seed")
	}
	maxed, _ = s.TruthOf(maxed.OriginalTransactionID)

	req := appstore.MassExtendRenewalDateRequest{ExtendByDays: 7, ExtendReasonCode: appstore.ExtendReasonServiceIssue,
		RequestIdentifier: newUUID(), ProductID: product}
	resp, err := client.ExtendRenewalDateForAllActiveSubscribers(ctx, req)
	if err != nil || resp.RequestIdentifier != req.RequestIdentifier {
		t.Fatalf("%+v %v", resp, err)
	}
	st, err := client.GetStatusOfSubscriptionRenewalDateExtensions(ctx, product, req.RequestIdentifier)
	if err != nil || st.Complete || st.CompleteDate != 0 || st.SucceededCount != 0 || st.RequestIdentifier != req.RequestIdentifier {
		t.Fatalf("status before completion %+v %v", st, err)
	}
	// Reusing the identifier answers 200 and starts nothing more.
	if again, err := client.ExtendRenewalDateForAllActiveSubscribers(ctx, req); err != nil || again.RequestIdentifier != req.RequestIdentifier {
		t.Fatalf("%+v %v", again, err)
	}
	s.Advance(MassExtensionDelay)
	st, err = client.GetStatusOfSubscriptionRenewalDateExtensions(ctx, product, req.RequestIdentifier)
	if err != nil || !st.Complete || st.CompleteDate.Time() != start.Add(MassExtensionDelay) ||
		int(st.SucceededCount) != len(onProduct)-1 || st.FailedCount != 1 {
		t.Fatalf("status %+v %v; want %d succeeded, 1 failed", st, err, len(onProduct)-1)
	}
	for _, before := range onProduct[1:] {
		after, _ := s.TruthOf(before.OriginalTransactionID)
		if !after.ExpiresDate.Equal(before.ExpiresDate.Add(7 * day)) {
			t.Fatalf("%s: expiresDate %v, want %v", before.OriginalTransactionID, after.ExpiresDate, before.ExpiresDate.Add(7*day))
		}
	}
	if after, _ := s.TruthOf(maxed.OriginalTransactionID); !after.ExpiresDate.Equal(maxed.ExpiresDate) {
		t.Fatalf("the subscription at its limit moved to %v", after.ExpiresDate)
	}
	extended := historyOf(t, s, appstore.Production, "RENEWAL_EXTENDED", start.Add(time.Millisecond))
	ext := historyOf(t, s, appstore.Production, "RENEWAL_EXTENSION", start)
	if len(extended) != len(onProduct)-1 || len(ext) != 2 { // maxed's two came at start
		t.Fatalf("%d RENEWAL_EXTENDED and %d RENEWAL_EXTENSION, want %d and 2", len(extended), len(ext), len(onProduct)-1)
	}
	failure, summary := ext[0], ext[1]
	if failure.Payload.Subtype != "FAILURE" || failure.Transaction == nil || failure.Transaction.OriginalTransactionID != maxed.OriginalTransactionID {
		t.Fatalf("FAILURE %+v", failure.Payload)
	}
	sm := summary.Payload.Summary
	if summary.Payload.Subtype != "SUMMARY" || summary.Payload.Data != nil || sm == nil || sm.RequestIdentifier != req.RequestIdentifier ||
		sm.ProductID != product || int(sm.SucceededCount) != len(onProduct)-1 || sm.FailedCount != 1 ||
		sm.Environment != appstore.Production || int64(sm.AppAppleID) != s.AppAppleID() || sm.BundleID != s.BundleID() {
		t.Fatalf("SUMMARY %+v summary %+v", summary.Payload, sm)
	}
	// The summary belongs to no subscription.
	for _, r := range s.Notifications(appstore.Production) {
		if r.NotificationUUID == summary.Payload.NotificationUUID && r.OriginalTransactionID != "" {
			t.Fatalf("summary recorded for %s", r.OriginalTransactionID)
		}
	}

	// A storefront-limited request names its storefronts in the summary.
	req2 := appstore.MassExtendRenewalDateRequest{ExtendByDays: 1, RequestIdentifier: newUUID(), ProductID: ProductCloudMonthly,
		StorefrontCountryCodes: []string{"GBR"}}
	if _, err := client.ExtendRenewalDateForAllActiveSubscribers(ctx, req2); err != nil {
		t.Fatal(err)
	}
	s.Advance(MassExtensionDelay)
	if ext := historyOf(t, s, appstore.Production, "RENEWAL_EXTENSION", start.Add(time.Millisecond)); len(ext) != 3 ||
		ext[2].Payload.Summary == nil || len(ext[2].Payload.Summary.StorefrontCountryCodes) != 1 {
		t.Fatalf("storefront-limited summary: %+v", ext[len(ext)-1].Payload)
	}

	// Refusals.
	_, err = client.GetStatusOfSubscriptionRenewalDateExtensions(ctx, product, newUUID())
	wantAPIError(t, "unknown request", err, 404, 4040009)
	_, err = client.GetStatusOfSubscriptionRenewalDateExtensions(ctx, ProductCloudYearly, req.RequestIdentifier)
	wantAPIError(t, "other product", err, 404, 4040009)
	_, err = client.GetStatusOfSubscriptionRenewalDateExtensions(ctx, "com.example.nope", req.RequestIdentifier)
	wantAPIError(t, "unknown product", err, 400, 4000023)
	_, err = client.GetStatusOfSubscriptionRenewalDateExtensions(ctx, product, "not-a-uuid")
	wantAPIError(t, "bad request id", err, 400, 4000011)
	for _, c := range []struct {
		req  appstore.MassExtendRenewalDateRequest
		code int64
	}{
		{appstore.MassExtendRenewalDateRequest{ExtendByDays: 0, ProductID: "nope", RequestIdentifier: "x"}, 4000009},
		{appstore.MassExtendRenewalDateRequest{ExtendByDays: 3, ProductID: "nope", RequestIdentifier: "x"}, 4000023},
		{appstore.MassExtendRenewalDateRequest{ExtendByDays: 3, ProductID: product, ExtendReasonCode: 7, RequestIdentifier: "x"}, 4000010},
		{appstore.MassExtendRenewalDateRequest{ExtendByDays: 3, ProductID: product, RequestIdentifier: "x"}, 4000011},
		{appstore.MassExtendRenewalDateRequest{ExtendByDays: 3, ProductID: product, RequestIdentifier: newUUID(), StorefrontCountryCodes: []string{"usa"}}, 4000028},
	} {
		_, err := client.ExtendRenewalDateForAllActiveSubscribers(ctx, c.req)
		wantAPIError(t, "mass request", err, 400, c.code)
	}
	call(t, s, "POST", "/inApps/v1/subscriptions/extend/mass", map[string]any{"extendByDays": 3, "extendReasonCode": 0,
		"productId": product, "requestIdentifier": newUUID(), "storefrontCountryCodes": []string{}}).wantError(t, 400, 4000027)
}
