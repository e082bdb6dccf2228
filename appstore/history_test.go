package appstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
)

// historyPages answers history requests from a chain of revisions:
// "" → rev1 → rev2 → … → revN (the last with hasMore false).
func historyPages(pages int, env Environment) func(r seenRequest) reply {
	return func(r seenRequest) reply {
		rev := r.Query.Get("revision")
		n := 0
		if rev != "" {
			if _, err := fmt.Sscanf(rev, "rev%d", &n); err != nil {
				return reply{status: 400, body: []byte(`{"errorCode":4000005,"errorMessage":"Invalid request revision."}`)}
			}
		}
		body, _ := json.Marshal(HistoryResponse{
			Revision: fmt.Sprintf("rev%d", n+1), HasMore: n+1 < pages, Environment: env,
			SignedTransactions: []string{fmt.Sprintf("tx-%d", n+1)},
		})
		return reply{status: 200, body: body}
	}
}

func TestTransactionHistoryPages(t *testing.T) {
	t.Parallel()
	f := newFakeApple(t, historyPages(3, Production))
	b := &recordingBudget{}
	c := newTestClient(t, f, b, nil)
	revoked := true
	q := HistoryQuery{Sort: SortAscending, ProductTypes: []string{ProductTypeAutoRenewable}, Revoked: &revoked}
	var got []string
	var last *HistoryResponse
	for page, err := range c.TransactionHistory(context.Background(), "1234", q) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, page.SignedTransactions...)
		last = page
	}
	if !reflect.DeepEqual(got, []string{"tx-1", "tx-2", "tx-3"}) || last.Revision != "rev3" || last.HasMore {
		t.Errorf("pages gave %v, last %+v", got, last)
	}
	seen := f.Seen()
	if len(seen) != 3 {
		t.Fatalf("%d requests, want 3", len(seen))
	}
	for i, s := range seen {
		wantRev := []string{"", "rev1", "rev2"}[i]
		if s.Query.Get("revision") != wantRev || s.Path != "/inApps/v2/history/1234" {
			t.Errorf("request %d: path %s revision %q, want %q", i, s.Path, s.Query.Get("revision"), wantRev)
		}
		// Every other parameter is resent unchanged.
		if s.Query.Get("sort") != "ASCENDING" || s.Query.Get("productType") != "AUTO_RENEWABLE" || s.Query.Get("revoked") != "true" {
			t.Errorf("request %d query %v lost the filters", i, s.Query)
		}
	}
	if len(b.Waits()) != 3 {
		t.Errorf("%d budget waits, want one per page", len(b.Waits()))
	}
	// Starting from a saved revision continues from there.
	q.Revision = "rev2"
	n := 0
	for page, err := range c.TransactionHistory(context.Background(), "1234", q) {
		if err != nil || page.Revision != "rev3" {
			t.Errorf("resume: %+v %v", page, err)
		}
		n++
	}
	if n != 1 {
		t.Errorf("resume gave %d pages, want 1", n)
	}
}

func TestTransactionHistoryStopsOnBreak(t *testing.T) {
	t.Parallel()
	f := newFakeApple(t, historyPages(100, Production))
	c := newTestClient(t, f, &recordingBudget{}, nil)
	n := 0
	for _, err := range c.TransactionHistory(context.Background(), "1234", HistoryQuery{}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		if n == 2 {
			break
		}
	}
	if got := len(f.Seen()); got != 2 {
		t.Errorf("%d requests after breaking on page 2, want 2", got)
	}
}

func TestTransactionHistoryError(t *testing.T) {
	t.Parallel()
	pages := historyPages(5, Production)
	f := newFakeApple(t, func(r seenRequest) reply {
		if r.Query.Get("revision") == "rev1" {
			return reply{status: 500, body: []byte(`{"errorCode":5000001,"errorMessage":"retry"}`)}
		}
		return pages(r)
	})
	c := newTestClient(t, f, &recordingBudget{}, nil)
	var pagesSeen, errs int
	for page, err := range c.TransactionHistory(context.Background(), "1234", HistoryQuery{}) {
		if err != nil {
			errs++
			if page != nil || !IsRetryable(err) {
				t.Errorf("error yield: page %v err %v", page, err)
			}
			continue // the iterator must stop by itself
		}
		pagesSeen++
	}
	if pagesSeen != 1 || errs != 1 || len(f.Seen()) != 2 {
		t.Errorf("%d pages, %d errors, %d requests; want 1, 1, 2", pagesSeen, errs, len(f.Seen()))
	}
}

func TestTransactionHistoryStuckRevision(t *testing.T) {
	t.Parallel()
	f := newFakeApple(t, func(seenRequest) reply {
		return reply{status: 200, body: []byte(`{"revision":"same","hasMore":true,"signedTransactions":[]}`)}
	})
	c := newTestClient(t, f, &recordingBudget{}, nil)
	var lastErr error
	n := 0
	for _, err := range c.TransactionHistory(context.Background(), "1234", HistoryQuery{}) {
		n++
		lastErr = err
		if n > 5 {
			t.Fatal("pager loops on a revision that does not move")
		}
	}
	if !errors.Is(lastErr, errStuckRevision) || len(f.Seen()) != 2 {
		t.Errorf("last error %v after %d requests", lastErr, len(f.Seen()))
	}
}

// After a fallback, later pages go straight to the sandbox.
func TestTransactionHistoryFallbackPinsEnvironment(t *testing.T) {
	t.Parallel()
	notFound := modelFixture(t, "transactionIdNotFoundError.json")
	sandbox := historyPages(3, Sandbox)
	f := newFakeApple(t, func(r seenRequest) reply {
		if r.Env == Production {
			return reply{status: 404, body: notFound}
		}
		return sandbox(r)
	})
	b := &recordingBudget{}
	c := newTestClient(t, f, b, func(o *ClientOptions) { o.SandboxFallback = true })
	n := 0
	for page, err := range c.TransactionHistory(context.Background(), "1234", HistoryQuery{}) {
		if err != nil || page.Environment != Sandbox {
			t.Fatalf("page %+v err %v", page, err)
		}
		n++
	}
	var envs []Environment
	for _, s := range f.Seen() {
		envs = append(envs, s.Env)
	}
	want := []Environment{Production, Sandbox, Sandbox, Sandbox}
	if n != 3 || !reflect.DeepEqual(envs, want) {
		t.Errorf("%d pages from requests to %v, want 3 from %v", n, envs, want)
	}
	var waitEnvs []Environment
	for _, w := range b.Waits() {
		waitEnvs = append(waitEnvs, w.Env)
	}
	if !reflect.DeepEqual(waitEnvs, want) {
		t.Errorf("budget waits in %v, want %v", waitEnvs, want)
	}
}

func TestHistoryQueryEncoding(t *testing.T) {
	t.Parallel()
	if v := (HistoryQuery{}).values(); len(v) != 0 {
		t.Errorf("empty query encodes as %v", v)
	}
	f := false
	got := fullHistoryQuery(&f).values().Encode()
	want := "endDate=123456&inAppOwnershipType=FAMILY_SHARED&productId=com.example.1&productId=com.example.2" +
		"&productType=CONSUMABLE&productType=AUTO_RENEWABLE&revision=revision_input&revoked=false&sort=ASCENDING" +
		"&startDate=123455&subscriptionGroupIdentifier=sub_group_id&subscriptionGroupIdentifier=sub_group_id_2"
	if got != want {
		t.Errorf("encoded\n%s\nwant\n%s", got, want)
	}
}
