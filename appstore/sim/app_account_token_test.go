package sim

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/storesync/storesync/appstore"
)

// Every import row carries a company token;
// about 30% of customers' tokens are unknown to Apple, whose truth says "".
func TestImportRowsCarryTokensAppleDoesNotKnow(t *testing.T) {
	t.Parallel()
	s, err := New(Options{Seed: 8, Subscribers: 2000})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var rows, unknown int
	byAccount := map[string]string{}
	for _, env := range []appstore.Environment{appstore.Production, appstore.Sandbox} {
		for _, row := range s.ImportRows(env) {
			rows++
			tr, _ := s.TruthOf(row.OriginalTransactionID)
			a, _ := s.AccountOf(row.OriginalTransactionID)
			if !uuidPattern.MatchString(row.AppAccountToken) || row.AppAccountToken != a.CompanyAppAccountToken {
				t.Fatalf("row %+v: token is not the account's company token %q", row, a.CompanyAppAccountToken)
			}
			if prev, ok := byAccount[a.ID]; ok && prev != row.AppAccountToken {
				t.Fatalf("account %s has two company tokens", a.ID)
			}
			byAccount[a.ID] = row.AppAccountToken
			switch {
			case tr.InAppOwnershipType == "FAMILY_SHARED":
				if tr.AppAccountToken != "" {
					t.Fatalf("family-shared %s has Apple token %s", tr.OriginalTransactionID, tr.AppAccountToken)
				}
			case tr.AppAccountToken == "":
				unknown++
				if a.AppAccountToken != "" {
					t.Fatalf("%s: truth has no token, the account has %s", tr.OriginalTransactionID, a.AppAccountToken)
				}
			case tr.AppAccountToken != row.AppAccountToken:
				t.Fatalf("%s: Apple's token %s, company's %s", tr.OriginalTransactionID, tr.AppAccountToken, row.AppAccountToken)
			}
		}
	}
	if f := float64(unknown) / float64(rows); f < 0.2 || f > 0.4 {
		t.Errorf("%d of %d rows (%.2f) have a token Apple does not know, want about 0.3", unknown, rows, f)
	}
	again, err := New(Options{Seed: 8, Subscribers: 2000})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	first := s.ImportRows(appstore.Production)
	for i, row := range again.ImportRows(appstore.Production) {
		if row != first[i] {
			t.Fatalf("same seed, different import row %d: %+v vs %+v", i, row, first[i])
		}
	}
}

func TestSetAppAccountToken(t *testing.T) {
	t.Parallel()
	s := startTest(t, unlimited(Options{Seed: 4, Subscribers: 400}))
	ctx := context.Background()
	client := newClient(t, s, appstore.Production)
	var target, family, sandbox SubscriptionTruth
	for _, tr := range s.Truth() {
		switch {
		case tr.Environment == appstore.Sandbox:
			if tr.InAppOwnershipType == "PURCHASED" {
				sandbox = tr
			}
		case tr.InAppOwnershipType == "FAMILY_SHARED":
			family = tr
		case target.OriginalTransactionID == "" && tr.AppAccountToken == "" && tr.Status == "active" && tr.TransactionCount > 2:
			target = tr
		}
	}
	if target.OriginalTransactionID == "" || family.OriginalTransactionID == "" || sandbox.OriginalTransactionID == "" {
		t.Fatal("the world lacks a token-less active subscription, a family-shared one or a sandbox one")
	}
	acct, _ := s.AccountOf(target.OriginalTransactionID)
	_, rev := pageAllHistory(t, s, "", target.OriginalTransactionID, "")

	// The company tells Apple the token it holds; upper case is accepted.
	if err := client.SetAppAccountToken(ctx, target.OriginalTransactionID, strings.ToUpper(acct.CompanyAppAccountToken)); err != nil {
		t.Fatal(err)
	}
	tr, _ := s.TruthOf(target.OriginalTransactionID)
	if tr.AppAccountToken != acct.CompanyAppAccountToken {
		t.Fatalf("truth token %q, want %q", tr.AppAccountToken, acct.CompanyAppAccountToken)
	}
	// Everything signed from now on carries it: statuses (transaction and
	// renewal info) and every transaction, which history returns again
	// after the saved revision because each changed.
	v := newVerifier(t, s, appstore.Production)
	st, _, err := client.GetAllSubscriptionStatuses(ctx, target.OriginalTransactionID)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range st.Data {
		for _, item := range g.LastTransactions {
			if item.OriginalTransactionID != target.OriginalTransactionID {
				continue
			}
			tx, err := v.VerifyTransaction(item.SignedTransactionInfo)
			if err != nil || tx.AppAccountToken != acct.CompanyAppAccountToken {
				t.Fatalf("statuses transaction token %q (%v)", tx.AppAccountToken, err)
			}
			rn, err := v.VerifyRenewalInfo(item.SignedRenewalInfo)
			if err != nil || rn.AppAccountToken != acct.CompanyAppAccountToken {
				t.Fatalf("statuses renewal info token %q (%v)", rn.AppAccountToken, err)
			}
		}
	}
	changed, _ := pageAllHistory(t, s, "", target.OriginalTransactionID, "revision="+rev)
	mine := 0
	for _, p := range changed {
		if p.OriginalTransactionID == target.OriginalTransactionID {
			mine++
			if p.AppAccountToken != acct.CompanyAppAccountToken {
				t.Fatalf("history transaction %s has token %q", p.TransactionID, p.AppAccountToken)
			}
		}
	}
	if mine != target.TransactionCount {
		t.Fatalf("history after the saved revision returned %d of %d changed transactions", mine, target.TransactionCount)
	}
	// Notifications signed from now on carry it too.
	if err := s.MutateAndNotify(target.OriginalTransactionID, MutateAutoRenewOff); err != nil {
		t.Fatal(err)
	}
	if vn := lastNotification(t, s, target.OriginalTransactionID); vn.Transaction.AppAccountToken != acct.CompanyAppAccountToken ||
		vn.RenewalInfo.AppAccountToken != acct.CompanyAppAccountToken {
		t.Fatalf("next notification's tokens: transaction %q, renewal info %q", vn.Transaction.AppAccountToken, vn.RenewalInfo.AppAccountToken)
	}
	// Setting the same token again changes nothing.
	if err := client.SetAppAccountToken(ctx, target.OriginalTransactionID, acct.CompanyAppAccountToken); err != nil {
		t.Fatal(err)
	}
	if again, _ := pageAllHistory(t, s, "", target.OriginalTransactionID, "revision="+rev); len(again) != len(changed) {
		t.Fatalf("an unchanged token moved %d transactions", len(again)-len(changed))
	}

	// Apple's refusals.
	wantCode := func(name string, err error, status int, code int64) {
		t.Helper()
		var ae *appstore.APIError
		if !errors.As(err, &ae) || ae.HTTPStatus != status || ae.Code != code {
			t.Errorf("%s: %v, want %d %d", name, err, status, code)
		}
	}
	token := acct.CompanyAppAccountToken
	wantCode("not a UUID", client.SetAppAccountToken(ctx, target.OriginalTransactionID, "not-a-uuid"), 400, 4000183)
	wantCode("empty", client.SetAppAccountToken(ctx, target.OriginalTransactionID, ""), 400, 4000183)
	wantCode("family-shared", client.SetAppAccountToken(ctx, family.OriginalTransactionID, token), 400, 4000185)
	if target.LatestTransactionID != target.OriginalTransactionID {
		wantCode("renewal id", client.SetAppAccountToken(ctx, target.LatestTransactionID, token), 400, 4000187)
	}
	wantCode("unknown", client.SetAppAccountToken(ctx, "99999999", token), 404, 4040005)
	wantCode("sandbox id in production", client.SetAppAccountToken(ctx, sandbox.OriginalTransactionID, token), 404, 4040005)
	wantCode("app transaction id", client.SetAppAccountToken(ctx, acct.AppTransactionID, token), 400, 4000048)
	call(t, s, "PUT", "/inApps/v1/transactions/12ab/appAccountToken", map[string]string{"appAccountToken": token}).wantError(t, 400, 4000006)
	call(t, s, "PUT", "/inApps/v1/transactions/"+target.OriginalTransactionID+"/appAccountToken", map[string]int{"appAccountToken": 1}).wantError(t, 400, 4000000)
	if r := call(t, s, "PUT", "/sandbox/inApps/v1/transactions/"+sandbox.OriginalTransactionID+"/appAccountToken",
		map[string]string{"appAccountToken": token}); r.status != 200 || len(r.body) != 0 {
		t.Fatalf("sandbox set: %d %s", r.status, r.body)
	}
	if tr, _ := s.TruthOf(sandbox.OriginalTransactionID); tr.AppAccountToken != token {
		t.Errorf("sandbox truth token %q", tr.AppAccountToken)
	}
	if n := s.Stats().Endpoint(appstore.Production, appstore.EndpointAppAccountToken).Requests; n < 8 {
		t.Errorf("stats counted %d Set App Account Token requests", n)
	}
}
