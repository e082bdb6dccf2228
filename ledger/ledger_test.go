package ledger_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

// TestTransactionOnlyMethodsRefuseAPool: a row lock or a multi-statement
// step taken on a pool would end with its statement, so these methods must
// say so rather than silently lose their guarantee.
func TestTransactionOnlyMethodsRefuseAPool(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	l := ledger.New(pool)
	ctx := context.Background()
	run, _, err := l.StartReconcileRun(ctx, ledger.NewReconcileRun{Key: "k", AsOf: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]func() error{
		"LockSubscriptions": func() error {
			_, err := l.LockSubscriptions(ctx, []string{"100"})
			return err
		},
		"FinishBackfillWindow": func() error {
			_, err := l.FinishBackfillWindow(ctx, 1, time.Time{})
			return err
		},
		"FinishReconcileSweep": func() error {
			_, err := l.FinishReconcileSweep(ctx, run)
			return err
		},
		"RecordNewTransactionsAsDrift": func() error {
			_, err := l.RecordNewTransactionsAsDrift(ctx, run.ID, "100")
			return err
		},
	}
	for name, call := range calls {
		err := call()
		want := "ledger: " + name + " must run in a transaction: call it on Ledger.WithTx(tx)"
		if !errors.Is(err, ledger.ErrNotInTransaction) || err.Error() != want {
			t.Errorf("%s on a pool: %v, want %q", name, err, want)
		}
	}
	// Refused before touching anything: no subscription row was created.
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM subscriptions`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d subscriptions (err %v), want 0", n, err)
	}
	// And on WithTx they run.
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := l.WithTx(tx).LockSubscriptions(ctx, []string{"100"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestWithTxRunsInTheCallersTransaction: what a WithTx ledger writes is
// seen by the transaction, not outside it, and goes when it rolls back; the
// pool stays reachable from it.
func TestWithTxRunsInTheCallersTransaction(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	l := ledger.New(pool)
	ctx := context.Background()
	p := &appstore.TransactionPayload{TransactionID: "1001", OriginalTransactionID: "100", ProductID: "com.example.monthly",
		PurchaseDate: appstore.MillisOf(time.Now()), SignedDate: appstore.MillisOf(time.Now()), Environment: appstore.Production}
	facts := ledger.Facts{Transactions: []ledger.SignedTransaction{{Payload: p, JWS: "jws-1001"}}}

	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	lt := l.WithTx(tx)
	if lt.Pool() != pool {
		t.Fatal("WithTx ledger: Pool is not the pool it came from")
	}
	if err := lt.Ping(ctx); err != nil {
		t.Fatalf("Ping on a WithTx ledger: %v", err)
	}
	if changes, err := lt.Apply(ctx, facts); err != nil || len(changes) != 1 || changes[0].Before != nil {
		t.Fatalf("Apply in tx: %+v, %v", changes, err)
	}
	run, created, err := lt.StartReconcileRun(ctx, ledger.NewReconcileRun{Key: "k", AsOf: time.Now()})
	if err != nil || !created || run.TotalSubscriptions != 1 {
		t.Fatalf("StartReconcileRun in tx: %+v, created %v, %v", run, created, err)
	}
	if s, err := lt.Subscription(ctx, "100"); err != nil || s.LatestTransactionID != "1001" {
		t.Fatalf("in tx: %+v, %v", s, err)
	}
	if _, err := l.Subscription(ctx, "100"); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("outside tx before commit: %v, want ErrNotFound", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Subscription(ctx, "100"); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("after rollback: %v, want ErrNotFound", err)
	}
	if _, err := l.ReconcileRunByKey(ctx, "k"); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("run after rollback: %v, want ErrNotFound", err)
	}
}

func TestWithTxNilPanics(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Fatal("WithTx(nil) did not panic")
		}
	}()
	ledger.New(nil).WithTx(nil)
}
