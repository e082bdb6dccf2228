package ledger_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

// TestOtherProductTypesAreTransactionsOnly: a history read with no group
// filter returns consumables, non-consumables and non-renewing purchases
// beside a subscription's transactions, and a ONE_TIME_CHARGE notification
// carries one with a status: each is stored as a transaction, none creates a
// subscription, and the subscription of the same read is unchanged by them.
func TestOtherProductTypesAreTransactionsOnly(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	l := ledger.New(pool)
	ctx := context.Background()
	base := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	ms := appstore.MillisOf
	tx := func(id, otid, typ, product string, purchase time.Time) ledger.SignedTransaction {
		p := &appstore.TransactionPayload{TransactionID: id, OriginalTransactionID: otid, ProductID: product, Type: typ,
			PurchaseDate: ms(purchase), OriginalPurchaseDate: ms(purchase), SignedDate: ms(base.Add(time.Hour)),
			Environment: appstore.Production, InAppOwnershipType: "PURCHASED"}
		if typ == ledger.AutoRenewableType {
			p.ExpiresDate, p.SubscriptionGroupIdentifier = ms(purchase.AddDate(0, 1, 0)), "2157"
		}
		return ledger.SignedTransaction{Payload: p, JWS: "jws-" + id}
	}
	sub := tx("500", "500", ledger.AutoRenewableType, "com.example.monthly", base)
	history := ledger.Facts{Transactions: []ledger.SignedTransaction{
		tx("501", "501", "Consumable", "com.example.coins", base.Add(time.Hour)),
		sub,
		tx("502", "502", "Non-Consumable", "com.example.pro", base.Add(2*time.Hour)),
		tx("503", "503", "Non-Renewing Subscription", "com.example.season", base.Add(3*time.Hour)),
	}}
	changes, err := l.Apply(ctx, history)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0].After.OriginalTransactionID != "500" {
		t.Fatalf("changes %+v, want only subscription 500", changes)
	}
	before, err := l.Subscription(ctx, "500")
	if err != nil {
		t.Fatal(err)
	}

	// ONE_TIME_CHARGE: a consumable bought later, with a status Apple
	// would not send for it; and a refund of the non-consumable.
	charge := tx("504", "504", "Consumable", "com.example.coins", base.Add(4*time.Hour))
	refund := tx("502", "502", "Non-Consumable", "com.example.pro", base.Add(2*time.Hour))
	refund.Payload.RevocationDate, refund.Payload.SignedDate, refund.JWS = ms(base.Add(5*time.Hour)), ms(base.Add(5*time.Hour)), "jws-502-refunded"
	changes, err = l.Apply(ctx, ledger.Facts{
		Transactions: []ledger.SignedTransaction{charge, refund},
		Statuses:     []ledger.StatusObservation{{OriginalTransactionID: "504", Status: 1, SignedDate: ms(base.Add(4 * time.Hour))}},
	})
	if err != nil || len(changes) != 0 {
		t.Fatalf("non-subscription facts: changes %+v, err %v", changes, err)
	}

	for _, id := range []string{"501", "502", "503", "504"} {
		if _, err := l.Subscription(ctx, id); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("transaction %s made a subscription (err %v)", id, err)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM transactions`).Scan(&n); err != nil || n != 5 {
		t.Fatalf("%d transactions stored (err %v), want 5", n, err)
	}
	var jws string
	if err := pool.QueryRow(ctx, `SELECT jws FROM transactions WHERE transaction_id = '502'`).Scan(&jws); err != nil || jws != "jws-502-refunded" {
		t.Fatalf("refund of the non-consumable not stored: %q, %v", jws, err)
	}
	after, err := l.Subscription(ctx, "500")
	if err != nil {
		t.Fatal(err)
	}
	if !before.SameState(after) || after.TransactionCount != 1 || after.LatestTransactionID != "500" || after.Status != "active" {
		t.Fatalf("subscription changed by other products: %+v -> %+v", before, after)
	}
}
