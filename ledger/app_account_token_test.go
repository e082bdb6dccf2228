package ledger_test

import (
	"context"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

// TestAppAccountTokenFollowsLatestSignedData: a token set at Apple after the
// purchase (Set App Account Token) shows first in renewal info, then in
// re-signed transactions; whichever Apple signed last gives the
// subscription's token, and an older fact applied afterwards never brings
// the old token back.
func TestAppAccountTokenFollowsLatestSignedData(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	l := ledger.New(pool)
	ctx := context.Background()
	base := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	const otid, oldTok, newTok = "4100000000000001", "0a0a0a0a-0000-4000-8000-000000000001", "0b0b0b0b-0000-4000-8000-000000000002"
	tx := func(signed time.Time, token string) ledger.Facts {
		p := &appstore.TransactionPayload{TransactionID: otid, OriginalTransactionID: otid, ProductID: "com.example.monthly",
			Type: ledger.AutoRenewableType, PurchaseDate: appstore.MillisOf(base), ExpiresDate: appstore.MillisOf(base.AddDate(0, 1, 0)),
			SignedDate: appstore.MillisOf(signed), AppAccountToken: token, Environment: appstore.Production}
		return ledger.Facts{Transactions: []ledger.SignedTransaction{{Payload: p, JWS: "tx-" + signed.String()}}}
	}
	ri := func(signed time.Time, token string) ledger.Facts {
		p := &appstore.RenewalInfoPayload{OriginalTransactionID: otid, AutoRenewStatus: 1, AutoRenewProductID: "com.example.monthly",
			SignedDate: appstore.MillisOf(signed), AppAccountToken: token, Environment: appstore.Production}
		return ledger.Facts{RenewalInfos: []ledger.SignedRenewalInfo{{Payload: p, JWS: "ri-" + signed.String()}}}
	}
	token := func() string {
		t.Helper()
		s, err := l.Subscription(ctx, otid)
		if err != nil {
			t.Fatal(err)
		}
		return s.AppAccountToken
	}
	for _, step := range []struct {
		name  string
		facts ledger.Facts
		want  string
	}{
		{"purchase with the app's token", tx(base, oldTok), oldTok},
		{"renewal info signed after Set App Account Token", ri(base.Add(2*time.Hour), newTok), newTok},
		{"older renewal info, delivered late", ri(base.Add(time.Hour), oldTok), newTok},
		{"the purchase again, as first signed", tx(base, oldTok), newTok},
		{"the purchase re-signed after the change", tx(base.Add(3*time.Hour), newTok), newTok},
		{"renewal info without a token (no statement)", ri(base.Add(4*time.Hour), ""), newTok},
	} {
		if _, err := l.Apply(ctx, step.facts); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if got := token(); got != step.want {
			t.Fatalf("after %s: token %q, want %q", step.name, got, step.want)
		}
	}
}
