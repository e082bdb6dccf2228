package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/applevectors"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

// TestShowSignedGivesBackApplesBytes: Apple's signed vectors, stored
// compact (their chain apart), come out of show --signed byte for byte.
func TestShowSignedGivesBackApplesBytes(t *testing.T) {
	t.Parallel()
	url := migrationstest.NewDatabaseURL(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	tx := strings.TrimSpace(applevectors.Text(t, "tests/resources/mock_signed_data/transactionInfo"))
	ri := strings.TrimSpace(applevectors.Text(t, "tests/resources/mock_signed_data/renewalInfo"))
	if _, err := ledger.New(pool).Apply(ctx, ledger.Facts{
		Transactions: []ledger.SignedTransaction{{JWS: tx, Payload: &appstore.TransactionPayload{
			TransactionID: "23456", OriginalTransactionID: "12345", Type: "Auto-Renewable Subscription", SignedDate: 1}}},
		RenewalInfos: []ledger.SignedRenewalInfo{{JWS: ri, Payload: &appstore.RenewalInfoPayload{OriginalTransactionID: "12345", SignedDate: 1}}},
	}); err != nil {
		t.Fatal(err)
	}
	var compact int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM transactions WHERE jws_chain IS NOT NULL`).Scan(&compact); err != nil || compact != 1 {
		t.Fatalf("the transaction is not stored compact (%d, %v)", compact, err)
	}
	env := map[string]string{"DATABASE_URL": url}
	code, stdout, stderr := runCLI(t, env, "show", "--original-transaction-id", "12345", "--signed")
	if code != 0 {
		t.Fatalf("code %d\n%s%s", code, stdout, stderr)
	}
	var got ledger.SubscriptionSignedData
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if len(got.SignedTransactions) != 1 || got.SignedTransactions[0] != tx || got.SignedRenewalInfo != ri {
		t.Fatalf("show --signed does not give back Apple's bytes:\n%s", stdout)
	}
	if code, _, stderr := runCLI(t, env, "show", "--original-transaction-id", "nope", "--signed"); code != 1 || !strings.Contains(stderr, "not found") {
		t.Fatalf("unknown id: code %d %q", code, stderr)
	}
	if code, _, _ := runCLI(t, env, "show", "--customer-id", "c", "--signed"); code != 2 {
		t.Fatalf("--signed with --customer-id: code %d, want 2", code)
	}
}
