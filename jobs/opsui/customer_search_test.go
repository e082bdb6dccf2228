package opsui_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/jobs"
	"github.com/storesync/storesync/ledger"
)

// simOrders reads the simulator's order ids (GET /sim/orders), by
// originalTransactionId: the order ids a customer finds on Apple's receipt
// email.
func simOrders(t testing.TB, e *consoleEnv) map[string]string {
	t.Helper()
	resp, err := http.Get(e.sim.BaseURL() + "/sim/orders?env=production")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	recs, err := csv.NewReader(resp.Body).ReadAll()
	if err != nil || len(recs) < 2 || recs[0][0] != "order_id" {
		t.Fatalf("GET /sim/orders: %v %q", err, recs)
	}
	out := map[string]string{}
	for _, r := range recs[1:] {
		if _, ok := out[r[1]]; !ok {
			out[r[1]] = r[0]
		}
	}
	return out
}

// importRows imports rows[:n] of the simulator's production
// subscriptions and waits for them, customer ids cust-N.
func (e *consoleEnv) importFirst(t testing.TB, n int) {
	t.Helper()
	var b strings.Builder
	b.WriteString("original_transaction_id,app_account_token,customer_id\n")
	for i, r := range e.sim.ImportRows(appstore.Production)[:n] {
		fmt.Fprintf(&b, "%s,%s,cust-%d\n", r.OriginalTransactionID, r.AppAccountToken, i)
	}
	im, err := jobs.NewImporter(jobs.ImporterOptions{Ledger: e.deps.Ledger, River: e.client})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := im.Run(context.Background(), "search-test.csv", strings.NewReader(b.String())); err != nil {
		t.Fatal(err)
	}
	waitImported(t, e)
}

// loggedIn is an HTTP client holding a console session.
func loggedIn(t testing.TB, e *consoleEnv) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	resp, err := hc.Get(e.url + "/ops/login")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	csrf := regexp.MustCompile(`name="csrf" value="([^"]*)"`).FindStringSubmatch(string(body))[1]
	resp, err = hc.PostForm(e.url+"/ops/login", url.Values{"csrf": {csrf}, "token": {adminToken}, "next": {"/ops/"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return hc
}

func getPage(t testing.TB, hc *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := hc.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestCustomerSearchByOrderID: an order id from the customer's receipt
// (the simulator's GET /sim/orders) finds its subscription through Apple's
// Look Up Order ID, spending the shared budget; guessed or chosen
// explicitly; a purchase the ledger lacks is named; an order Apple does
// not know says so; the other kinds of search still work.
func TestCustomerSearchByOrderID(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t, 6, 100)
	e.importFirst(t, 5)
	orders := simOrders(t, e)
	rows := e.sim.ImportRows(appstore.Production)
	hc := loggedIn(t, e)
	search := func(q, by string) string {
		t.Helper()
		code, page := getPage(t, hc, e.url+"/ops/customer?"+url.Values{"q": {q}, "by": {by}}.Encode())
		if code != 200 {
			t.Fatalf("search %q by %q: %d\n%s", q, by, code, page)
		}
		return page
	}
	shows := func(page, otid string) bool { return strings.Contains(page, `data-otid="`+otid+`"`) }

	// An imported subscription whose purchase carried an appAccountToken,
	// and one not imported.
	var sub *ledger.Subscription
	cust := ""
	for i, r := range rows[:5] {
		s, err := e.deps.Ledger.Subscription(context.Background(), r.OriginalTransactionID)
		if err != nil {
			t.Fatal(err)
		}
		if s.AppAccountToken != "" {
			sub, cust = s, fmt.Sprintf("cust-%d", i)
			break
		}
	}
	if sub == nil {
		t.Fatal("no imported subscription has an appAccountToken: pick another simulator seed")
	}
	imported, lacking := sub.OriginalTransactionID, rows[5].OriginalTransactionID
	for _, by := range []string{"", "orderId"} {
		page := search(orders[imported], by)
		if !shows(page, imported) || !strings.Contains(page, "Read as order id.") ||
			!strings.Contains(page, `name="orderId" value="`+orders[imported]+`"`) {
			t.Errorf("order %s (by %q) does not show %s with an order re-sync:\n%s", orders[imported], by, imported, page)
		}
	}
	if page := search(orders[lacking], ""); !strings.Contains(page, `id="missing"`) || !strings.Contains(page, lacking) {
		t.Errorf("order %s of an unimported subscription does not name %s:\n%s", orders[lacking], lacking, page)
	}
	if page := search("ZZZZ0000ZZ", "orderId"); !strings.Contains(page, "Apple knows no such order") {
		t.Errorf("an unknown order:\n%s", page)
	}
	if page := search("not an order!", "orderId"); !strings.Contains(page, "not an App Store order id") {
		t.Errorf("a malformed order id:\n%s", page)
	}
	var calls int64
	if err := e.pool.QueryRow(context.Background(), `SELECT COALESCE(sum(granted), 0) FROM apple_budget_usage WHERE endpoint = $1`,
		string(appstore.EndpointOrderLookup)).Scan(&calls); err != nil || calls < 4 {
		t.Errorf("%d order lookups spent from the shared budget (%v), want at least 4", calls, err)
	}

	// The other kinds still find the same subscription.
	for _, c := range []struct{ q, by string }{
		{cust, ""}, {cust, "customerId"}, {sub.AppAccountToken, ""}, {sub.AppAccountToken, "appAccountToken"},
		{imported, ""}, {imported, "originalTransactionId"},
	} {
		if page := search(c.q, c.by); !shows(page, imported) {
			t.Errorf("search %q by %q does not show %s:\n%s", c.q, c.by, imported, page)
		}
	}
	if page := search(cust, "appAccountToken"); !strings.Contains(page, "is not an appAccountToken") {
		t.Errorf("a customer id searched as an appAccountToken:\n%s", page)
	}
}
