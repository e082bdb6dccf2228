package jobs

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/sim"
)

// A re-sync by order id (from /sim/orders, as support would paste it from
// the customer's receipt email) finds the purchase through Look Up Order ID
// and repairs it; an order Apple does not know and a malformed one get
// clear errors.
func TestResyncByOrderID(t *testing.T) {
	t.Parallel()
	const token = "resync-admin-token-0123456789"
	simOpts := sim.Options{Seed: 9, Subscribers: 40, DisableRateLimits: true}
	e := newHookEnv(t, hookEnvOptions{Sim: &simOpts, Work: true, AdminToken: token})
	ctx := context.Background()
	orders := e.simulator.Orders(appstore.Production)
	order := orders[len(orders)-1] // a renewal's order names its subscription too
	truth, ok := e.simulator.TruthOf(order.OriginalTransactionID)
	if !ok {
		t.Fatalf("no truth for %s", order.OriginalTransactionID)
	}

	st, err := EnqueueResync(ctx, e.river, ResyncTarget{OrderID: order.OrderID})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err = WaitResync(wctx, e.river, st.JobID, 50*time.Millisecond)
	if err != nil || st.State != "completed" || st.Result == nil {
		t.Fatalf("resync by order id: %+v, %v", st, err)
	}
	s, err := e.deps.Ledger.Subscription(ctx, order.OriginalTransactionID)
	if err != nil {
		t.Fatal(err)
	}
	if s.Status != truth.Status || s.TransactionCount != truth.TransactionCount || s.LatestTransactionID != truth.LatestTransactionID {
		t.Fatalf("after resync by order: %+v\ntruth %+v", s, truth)
	}

	// Apple knows no such order: status 1, a cancelled re-sync saying so.
	st, err = EnqueueResync(ctx, e.river, ResyncTarget{OrderID: "MZZZZZZZZZ"})
	if err != nil {
		t.Fatal(err)
	}
	st, err = WaitResync(wctx, e.river, st.JobID, 50*time.Millisecond)
	if err != nil || st.State != "cancelled" || len(st.Errors) == 0 || !strings.Contains(st.Errors[0], "knows no such order") {
		t.Fatalf("unknown order: %+v %v", st, err)
	}

	// Malformed: refused before anything is enqueued, by the admin API too.
	if err := (ResyncTarget{OrderID: "MKJ9 XFLQ5L"}).Validate(); err == nil || !strings.Contains(err.Error(), "not an App Store order id") {
		t.Fatalf("malformed order id: %v", err)
	}
	req, _ := http.NewRequest("POST", e.server.URL+"/admin/resync", strings.NewReader(`{"orderId":"../x"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != 400 || !strings.Contains(body["error"], "orderId") {
		t.Fatalf("admin resync with a malformed order id: %d %v", resp.StatusCode, body)
	}
	// The admin API resyncs by order id as well.
	req, _ = http.NewRequest("POST", e.server.URL+"/admin/resync?wait=30s", strings.NewReader(`{"orderId":"`+orders[0].OrderID+`"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	var got ResyncStatus
	if err := json.NewDecoder(resp2.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if resp2.StatusCode != 200 || got.State != "completed" || !containsString(got.Result.Subscriptions, orders[0].OriginalTransactionID) {
		t.Fatalf("admin resync by order id: %d %+v", resp2.StatusCode, got)
	}
}
