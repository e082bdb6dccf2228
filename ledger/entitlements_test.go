package ledger_test

import (
	"context"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

// testRules grants "pro" for com.example.monthly in production only, and
// "pro" and "beta" for com.example.beta also in the sandbox.
type testRules struct{}

func (testRules) Grants(product, env string) []string {
	switch {
	case product == "com.example.monthly" && env == "Production":
		return []string{"pro"}
	case product == "com.example.beta":
		return []string{"beta", "pro"}
	}
	return nil
}

// subFacts is one subscription's purchase in env with Apple's status.
func subFacts(otid, token, product string, env appstore.Environment, status int, expires time.Time) ledger.Facts {
	ms := appstore.MillisOf
	purchase := expires.AddDate(0, -1, 0)
	tx := &appstore.TransactionPayload{
		TransactionID: otid + "1", OriginalTransactionID: otid, ProductID: product,
		PurchaseDate: ms(purchase), ExpiresDate: ms(expires), Environment: env,
		SignedDate: ms(purchase.Add(time.Second)), AppAccountToken: token, Type: "Auto-Renewable Subscription",
	}
	return ledger.Facts{
		Transactions: []ledger.SignedTransaction{{Payload: tx, JWS: "jws-" + otid}},
		Statuses:     []ledger.StatusObservation{{OriginalTransactionID: otid, Status: status, SignedDate: ms(purchase.Add(2 * time.Second))}},
	}
}

func TestEntitlementsFollowStatusAndEnvironment(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	l := ledger.New(pool).WithEntitlements(testRules{})
	ctx := context.Background()
	exp := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	const tok = "6f1c0000-0000-4000-8000-000000000001"
	cases := []struct {
		otid    string
		product string
		env     appstore.Environment
		status  int
		want    []string
	}{
		{"100", "com.example.monthly", appstore.Production, 1, []string{"pro"}}, // active
		{"101", "com.example.monthly", appstore.Production, 4, []string{"pro"}}, // grace period
		{"102", "com.example.monthly", appstore.Production, 3, nil},             // billing retry
		{"103", "com.example.monthly", appstore.Production, 2, nil},             // expired
		{"104", "com.example.monthly", appstore.Production, 5, nil},             // revoked
		{"105", "com.example.monthly", appstore.Sandbox, 1, nil},                // sandbox, not opted in
		{"106", "com.example.beta", appstore.Sandbox, 1, []string{"beta", "pro"}},
		{"107", "com.example.unmapped", appstore.Production, 1, nil},
	}
	for _, c := range cases {
		if _, err := l.Apply(ctx, subFacts(c.otid, "", c.product, c.env, c.status, exp)); err != nil {
			t.Fatal(err)
		}
		got, err := l.EntitlementsByOriginalTransactionID(ctx, c.otid)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range got.Entitlements {
			names = append(names, e.Entitlement)
			if e.ProductID != c.product || e.OriginalTransactionID != c.otid || e.ExpiresDate == nil ||
				!e.ExpiresDate.Equal(exp) || e.Environment != string(c.env) || e.LastSignedDate == nil {
				t.Errorf("%s: entitlement %+v lacks its subscription's facts", c.otid, e)
			}
		}
		if len(names) != len(c.want) || (len(names) > 0 && names[0] != c.want[0]) {
			t.Errorf("%s (status %d, %s, %s): entitlements %v, want %v", c.otid, c.status, c.product, c.env, names, c.want)
		}
	}

	// A customer with two subscriptions granting "pro": the longer one answers.
	if _, err := l.Apply(ctx, subFacts("200", tok, "com.example.monthly", appstore.Production, 1, exp)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Apply(ctx, subFacts("201", tok, "com.example.monthly", appstore.Production, 1, exp.AddDate(0, 1, 0))); err != nil {
		t.Fatal(err)
	}
	for _, otid := range []string{"200", "201"} {
		if _, err := l.LinkCustomer(ctx, otid, tok, "cust-1", "import"); err != nil {
			t.Fatal(err)
		}
	}
	byCustomer, err := l.EntitlementsByCustomerID(ctx, "cust-1")
	if err != nil {
		t.Fatal(err)
	}
	byToken, err := l.EntitlementsByAppAccountToken(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range []*ledger.Entitlements{byCustomer, byToken} {
		if got.Subscriptions != 2 || len(got.Entitlements) != 1 || got.Entitlements[0].OriginalTransactionID != "201" {
			t.Fatalf("customer lookup: %+v, want pro from 201 (the later expiry)", got)
		}
	}
	none, err := l.EntitlementsByCustomerID(ctx, "nobody")
	if err != nil || len(none.Entitlements) != 0 || none.Entitlements == nil {
		t.Fatalf("unknown customer: %+v, %v; want an empty list", none, err)
	}
	if _, err := l.EntitlementsByAppAccountToken(ctx, "not-a-uuid"); err == nil {
		t.Fatal("a malformed token was accepted")
	}
}
