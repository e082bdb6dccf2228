package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

// TestShowEntitlementsAndEventsTail: what show --entitlements and events tail
// print for one active production purchase of a mapped product.
func TestShowEntitlementsAndEventsTail(t *testing.T) {
	t.Parallel()
	url := migrationstest.NewDatabaseURL(t)
	file := filepath.Join(t.TempDir(), "entitlements.json")
	if err := os.WriteFile(file, []byte(`{"products": [{"productId": "com.example.monthly", "entitlements": ["pro"]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"DATABASE_URL": url, "STORESYNC_ENTITLEMENTS_FILE": file}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	rules, err := loadConfig(&cli{getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatal(err)
	}
	l := ledger.New(pool).WithEntitlements(rules.Entitlements)
	exp := time.Now().AddDate(0, 1, 0).UTC().Truncate(time.Millisecond)
	tx := &appstore.TransactionPayload{
		TransactionID: "51", OriginalTransactionID: "50", ProductID: "com.example.monthly",
		PurchaseDate: appstore.MillisOf(exp.AddDate(0, -1, 0)), ExpiresDate: appstore.MillisOf(exp),
		Environment: appstore.Production, SignedDate: appstore.MillisOf(exp.AddDate(0, -1, 0)),
	}
	if _, err := l.Apply(ctx, ledger.Facts{Transactions: []ledger.SignedTransaction{{Payload: tx, JWS: "jws"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.LinkCustomer(ctx, "50", "", "cust-50", "import"); err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := runCLI(t, env, "show", "--customer-id", "cust-50", "--entitlements")
	var got ledger.Entitlements
	if code != 0 || json.Unmarshal([]byte(stdout), &got) != nil || len(got.Entitlements) != 1 || got.Entitlements[0].Entitlement != "pro" {
		t.Fatalf("show --entitlements: %d %s %s", code, stdout, stderr)
	}
	// A transaction open elsewhere on the server delays sequencing: retry.
	var lines []string
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		code, stdout, stderr = runCLI(t, env, "events", "tail")
		lines = strings.Split(strings.TrimSpace(stdout), "\n")
		if code != 0 || len(lines) == 3 || time.Now().After(deadline) {
			break
		}
	}
	if code != 0 || len(lines) != 3 {
		t.Fatalf("events tail: %d\n%s%s", code, stdout, stderr)
	}
	var last ledger.Event
	if err := json.Unmarshal([]byte(lines[2]), &last); err != nil || last.ID != 3 || last.After.CustomerID != "cust-50" {
		t.Fatalf("last event %s (%v)", lines[2], err)
	}
	if code, stdout, _ = runCLI(t, env, "events", "tail", "--after", "2"); code != 0 || strings.Count(stdout, "\n") != 1 {
		t.Fatalf("tail --after 2: %d %s", code, stdout)
	}
	if code, _, _ = runCLI(t, env, "events", "nope"); code != 2 {
		t.Fatalf("unknown subcommand: exit %d, want 2", code)
	}
}

func TestEndpointsAddListRemove(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": migrationstest.NewDatabaseURL(t)}
	code, stdout, stderr := runCLI(t, env, "endpoints", "add", "https://backend.example.com/storesync")
	if code != 0 || !strings.Contains(stdout, "secret (shown once") || !strings.Contains(stdout, "whsec_") {
		t.Fatalf("add: %d %s %s", code, stdout, stderr)
	}
	secret := stdout[strings.Index(stdout, "whsec_"):]
	secret = strings.TrimSpace(secret)
	code, stdout, _ = runCLI(t, env, "endpoints", "list")
	if code != 0 || !strings.Contains(stdout, "https://backend.example.com/storesync") || strings.Contains(stdout, secret) {
		t.Fatalf("list: %d %s", code, stdout)
	}
	code, stdout, _ = runCLI(t, env, "status")
	if code != 0 || !strings.Contains(stdout, "== Event delivery ==") || strings.Contains(stdout, secret) {
		t.Fatalf("status: %d %s", code, stdout)
	}
	if code, _, stderr = runCLI(t, env, "endpoints", "add", "http://backend.example.com/x"); code != 2 || !strings.Contains(stderr, "https") {
		t.Fatalf("plain http: %d %s", code, stderr)
	}
	if code, stdout, _ = runCLI(t, env, "events", "redeliver"); code != 0 || !strings.Contains(stdout, "0 subscription queue") {
		t.Fatalf("redeliver: %d %s", code, stdout)
	}
	if code, _, _ = runCLI(t, env, "endpoints", "remove", "1"); code != 0 {
		t.Fatalf("remove: %d", code)
	}
	if code, _, _ = runCLI(t, env, "endpoints", "remove", "1"); code != 1 {
		t.Fatalf("remove again: %d, want 1", code)
	}
}
