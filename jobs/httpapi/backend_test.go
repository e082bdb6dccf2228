package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/config"
	"github.com/storesync/storesync/jobs"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

const (
	testReadToken  = "read-token-0123456789abcdef"
	testAdminToken = "admin-token-0123456789abcdef"
)

// newBackendServer serves NewHandler over a fresh ledger that maps
// com.example.monthly to "pro", with one read token and the admin token.
func newBackendServer(t *testing.T) (*httptest.Server, *ledger.Ledger) {
	return newBackendServerTB(t)
}

func newBackendServerTB(t testing.TB) (*httptest.Server, *ledger.Ledger) {
	t.Helper()
	_, pool := migrationstest.NewDatabase(t)
	rules, err := config.ParseEntitlements("test", []byte(`{"products": [{"productId": "com.example.monthly", "entitlements": ["pro"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	l := ledger.New(pool).WithEntitlements(rules)
	deps := &jobs.Deps{Ledger: l, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	client, err := jobs.NewRiverClient(deps, jobs.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewHandler(deps, client, Options{AdminToken: testAdminToken, APITokens: []string{testReadToken}}))
	t.Cleanup(srv.Close)
	return srv, l
}

func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestBackendEntitlementsAndTokenScopes(t *testing.T) {
	t.Parallel()
	srv, l := newBackendServer(t)
	ctx := context.Background()
	exp := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	const tok = "6f1c0000-0000-4000-8000-000000000001"
	tx := &appstore.TransactionPayload{
		TransactionID: "11", OriginalTransactionID: "10", ProductID: "com.example.monthly",
		PurchaseDate: appstore.MillisOf(exp.AddDate(0, -1, 0)), ExpiresDate: appstore.MillisOf(exp),
		Environment: appstore.Production, SignedDate: appstore.MillisOf(exp.AddDate(0, -1, 0)), AppAccountToken: tok,
	}
	if _, err := l.Apply(ctx, ledger.Facts{
		Transactions: []ledger.SignedTransaction{{Payload: tx, JWS: "jws"}},
		Statuses:     []ledger.StatusObservation{{OriginalTransactionID: "10", Status: 1, SignedDate: tx.SignedDate}},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.LinkCustomer(ctx, "10", tok, "cust-1", "import"); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/v1/customers/cust-1/entitlements", "/v1/app-account-tokens/" + tok + "/entitlements", "/v1/subscriptions/10/entitlements"} {
		for _, token := range []string{testReadToken, testAdminToken} {
			code, body := get(t, srv.URL+path, token)
			var got ledger.Entitlements
			if err := json.Unmarshal([]byte(body), &got); code != 200 || err != nil || len(got.Entitlements) != 1 {
				t.Fatalf("%s: %d %s", path, code, body)
			}
			e := got.Entitlements[0]
			if e.Entitlement != "pro" || e.ProductID != "com.example.monthly" || e.Status != "active" ||
				e.Environment != "Production" || !e.ExpiresDate.Equal(exp) {
				t.Fatalf("%s: %+v", path, e)
			}
		}
		for _, bad := range []string{"", "wrong-token-0123456789abcdef", testReadToken + "x"} {
			if code, body := get(t, srv.URL+path, bad); code != 401 || strings.Contains(body, "pro") {
				t.Fatalf("%s with %q: %d %s, want a bare 401", path, bad, code, body)
			}
		}
	}
	if code, _ := get(t, srv.URL+"/v1/customers/nobody/entitlements", testReadToken); code != 200 {
		t.Fatalf("unknown customer: %d, want 200 with no entitlements", code)
	}
	// A read token is not an admin token.
	if code, _ := get(t, srv.URL+"/admin/subscriptions/10", testReadToken); code != 401 {
		t.Fatalf("read token on /admin: %d, want 401", code)
	}
	if code, _ := get(t, srv.URL+"/admin/subscriptions/10", testAdminToken); code != 200 {
		t.Fatalf("admin token on /admin: %d, want 200", code)
	}
}

func TestEventsFeedPagesWithAStableCursor(t *testing.T) {
	t.Parallel()
	srv, l := newBackendServer(t)
	ctx := context.Background()
	exp := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		otid := string(rune('1'+i)) + "0"
		tx := &appstore.TransactionPayload{
			TransactionID: otid + "1", OriginalTransactionID: otid, ProductID: "com.example.monthly",
			PurchaseDate: appstore.MillisOf(exp.AddDate(0, -1, 0)), ExpiresDate: appstore.MillisOf(exp),
			Environment: appstore.Production, SignedDate: appstore.MillisOf(exp.AddDate(0, -1, 0)),
		}
		if _, err := l.Apply(ctx, ledger.Facts{Transactions: []ledger.SignedTransaction{{Payload: tx, JWS: "jws"}}}); err != nil {
			t.Fatal(err)
		}
	}
	var all []ledger.Event
	after := int64(0)
	// A transaction open elsewhere on the server delays sequencing (never
	// reorders it): poll as a backend would.
	for deadline := time.Now().Add(60 * time.Second); len(all) < 10 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		code, body := get(t, srv.URL+"/v1/events?limit=3&after="+strconv.FormatInt(after, 10), testReadToken)
		var page eventsPage
		if code != 200 || json.Unmarshal([]byte(body), &page) != nil {
			t.Fatalf("%d %s", code, body)
		}
		if len(page.Events) == 0 {
			if page.Next != after {
				t.Fatalf("empty page moved the cursor to %d", page.Next)
			}
			continue
		}
		all = append(all, page.Events...)
		after = page.Next
	}
	if len(all) != 10 {
		t.Fatalf("%d events, want 10 (created + granted for 5 subscriptions)", len(all))
	}
	for i, e := range all {
		if e.ID != int64(i+1) {
			t.Fatalf("event %d has id %d", i, e.ID)
		}
	}
	for _, q := range []string{"after=-1", "after=x", "limit=0", "limit=1001"} {
		if code, _ := get(t, srv.URL+"/v1/events?"+q, testReadToken); code != 400 {
			t.Errorf("%s: %d, want 400", q, code)
		}
	}
	if code, _ := get(t, srv.URL+"/v1/events", ""); code != 401 {
		t.Fatalf("feed without a token: %d", code)
	}
}
