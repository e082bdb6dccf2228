package ledger_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

func TestLockSubscriptionsAndNewTransactionsAsDrift(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	l := ledger.New(pool)
	ctx := context.Background()
	base := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	tx := func(id string, month int) ledger.SignedTransaction {
		p := &appstore.TransactionPayload{
			TransactionID: id, OriginalTransactionID: "100", ProductID: "com.example.monthly",
			PurchaseDate: appstore.MillisOf(base.AddDate(0, month, 0)), ExpiresDate: appstore.MillisOf(base.AddDate(0, month+1, 0)),
			SignedDate: appstore.MillisOf(base.AddDate(0, month, 1)), Environment: appstore.Production,
		}
		return ledger.SignedTransaction{Payload: p, JWS: "jws-" + id}
	}
	if _, err := l.Apply(ctx, ledger.Facts{Transactions: []ledger.SignedTransaction{tx("1001", 0)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO subscriptions (original_transaction_id) VALUES ('imported-only')`); err != nil {
		t.Fatal(err)
	}
	run, _, err := l.StartReconcileRun(ctx, ledger.NewReconcileRun{Key: "k", AsOf: base})
	if err != nil {
		t.Fatal(err)
	}
	err = pgx.BeginFunc(ctx, pool, func(dbtx pgx.Tx) error {
		subs, err := l.WithTx(dbtx).LockSubscriptions(ctx, []string{"100", "imported-only", "unknown"})
		if err != nil {
			return err
		}
		if len(subs) != 1 || subs["100"] == nil || subs["100"].LatestTransactionID != "1001" {
			t.Errorf("locked views %v: want only 100, the one with facts", subs)
		}
		known, err := l.WithTx(dbtx).KnownTransactions(ctx, []string{"1001", "1002"})
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(known, map[string]bool{"1001": true}) {
			t.Errorf("known %v", known)
		}
		// A history page brings 1002 and 1003 (and 1001 again).
		if _, err := l.WithTx(dbtx).Apply(ctx, ledger.Facts{Transactions: []ledger.SignedTransaction{tx("1001", 0), tx("1003", 2), tx("1002", 1)}}); err != nil {
			return err
		}
		n, err := l.WithTx(dbtx).RecordNewTransactionsAsDrift(ctx, run.ID, "100")
		if err != nil {
			return err
		}
		if n != 2 {
			t.Errorf("recorded %d new transactions, want 2", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	drift, err := l.DriftOfRun(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(drift) != 2 || drift[0].AppleValue != "1002" || drift[1].AppleValue != "1003" ||
		drift[0].Class != ledger.DriftMissingTransaction || drift[0].RepairedAt == nil || drift[0].LedgerValue != "" {
		t.Fatalf("drift %+v", drift)
	}
}

func TestDriftClassForStatus(t *testing.T) {
	t.Parallel()
	want := map[int]ledger.DriftClass{0: "", 1: ledger.DriftActiveAtApple, 2: ledger.DriftExpiredAtApple,
		3: ledger.DriftBillingRetryAtApple, 4: ledger.DriftGracePeriodAtApple, 5: ledger.DriftRevokedAtApple, 6: ""}
	for s, c := range want {
		if got := ledger.DriftClassForStatus(s); got != c {
			t.Errorf("DriftClassForStatus(%d) = %q, want %q", s, got, c)
		}
	}
}

func TestPendingHistoryDrift(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	l := ledger.New(pool)
	ctx := context.Background()
	ids, err := l.RecordDrift(ctx, 0, []ledger.Drift{
		{OriginalTransactionID: "a", Class: ledger.DriftMissingTransaction, Field: "transaction_id", AppleValue: "9"},
		{OriginalTransactionID: "a", Class: ledger.DriftRenewalChanged, Field: "latest_transaction_id", AppleValue: "9"},
		{OriginalTransactionID: "b", Class: ledger.DriftMissingTransaction, Field: "transaction_id", AppleValue: "8"},
		{OriginalTransactionID: "c", Class: ledger.DriftMissingTransaction, Field: "transaction_id", AppleValue: "7"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.MarkDriftRepaired(ctx, ids[2:3]); err != nil {
		t.Fatal(err)
	}
	got, err := l.PendingHistoryDrift(ctx, []string{"a", "b", "d"})
	if err != nil || !reflect.DeepEqual(got, map[string][]int64{"a": {ids[0]}}) {
		t.Fatalf("pending %v err %v", got, err)
	}
}
