package sim

import (
	"fmt"
	"net/url"
	"slices"
	"testing"

	"github.com/storesync/storesync/appstore"
)

// accountTxCount is the truth's number of transactions of the customer
// owning otid: history returns all of them.
func accountTxCount(t *testing.T, s *Simulator, otid string) int {
	t.Helper()
	a, ok := s.AccountOf(otid)
	if !ok {
		t.Fatalf("no account for %s", otid)
	}
	n := 0
	for _, id := range a.OriginalTransactionIDs {
		tr, _ := s.TruthOf(id)
		n += tr.TransactionCount
	}
	return n
}

func TestHistoryPagesLongHistoryExactlyOnce(t *testing.T) {
	t.Parallel()
	s := startTest(t, unlimited(Options{Seed: 7, Subscribers: 400}))
	var long SubscriptionTruth
	for _, tr := range s.Truth() {
		if tr.TransactionCount > 100 && tr.Environment == appstore.Production {
			long = tr
			break
		}
	}
	if long.OriginalTransactionID == "" {
		t.Fatal("population has no subscription with more than 100 transactions")
	}
	txs, _ := pageAllHistory(t, s, "", long.LatestTransactionID, "")
	want := accountTxCount(t, s, long.OriginalTransactionID)
	seen := map[string]bool{}
	for _, p := range txs {
		if seen[p.TransactionID] {
			t.Fatalf("transaction %s returned twice", p.TransactionID)
		}
		seen[p.TransactionID] = true
	}
	if len(seen) != want || want <= 100 {
		t.Fatalf("paged %d distinct transactions, truth has %d", len(seen), want)
	}

	// DESCENDING returns the same transactions in reverse order.
	desc, _ := pageAllHistory(t, s, "", long.OriginalTransactionID, "sort=DESCENDING")
	if len(desc) != len(txs) {
		t.Fatalf("DESCENDING gave %d transactions, ASCENDING %d", len(desc), len(txs))
	}
	for i := range desc {
		if desc[i].TransactionID != txs[len(txs)-1-i].TransactionID {
			t.Fatalf("DESCENDING[%d] = %s, want %s", i, desc[i].TransactionID, txs[len(txs)-1-i].TransactionID)
		}
	}
}

func TestHistoryReturnsTransactionModifiedWhilePagingAgain(t *testing.T) {
	t.Parallel()
	s := startTest(t, unlimited(Options{Seed: 11, Subscribers: 2000}))
	// Find a customer with more than one page whose first page holds the
	// latest transaction of a subscription that can still be refunded.
	var (
		first    appstore.HistoryResponse
		target   SubscriptionTruth
		customer string
	)
	for _, tr := range s.Truth() {
		a, _ := s.AccountOf(tr.OriginalTransactionID)
		if tr.Environment != appstore.Production || len(a.OriginalTransactionIDs) < 2 || accountTxCount(t, s, tr.OriginalTransactionID) <= 25 {
			continue
		}
		var h appstore.HistoryResponse
		call(t, s, "GET", "/inApps/v2/history/"+tr.OriginalTransactionID, nil).decode(t, &h)
		for _, id := range a.OriginalTransactionIDs {
			st, _ := s.TruthOf(id)
			if st.Status == "revoked" {
				continue
			}
			for _, jws := range h.SignedTransactions {
				var p appstore.TransactionPayload
				decodeJWS(t, jws, &p)
				if p.TransactionID == st.LatestTransactionID {
					first, target, customer = h, st, tr.OriginalTransactionID
				}
			}
		}
		if customer != "" {
			break
		}
	}
	if customer == "" {
		t.Fatal("no customer whose first history page holds a refundable latest transaction")
	}
	if !first.HasMore {
		t.Fatal("first page says hasMore=false")
	}
	if err := s.Mutate(target.OriginalTransactionID, MutateRefund); err != nil {
		t.Fatal(err)
	}
	all := map[string][]appstore.TransactionPayload{}
	for _, jws := range first.SignedTransactions {
		var p appstore.TransactionPayload
		decodeJWS(t, jws, &p)
		all[p.TransactionID] = append(all[p.TransactionID], p)
	}
	rev := first.Revision
	for more := true; more; {
		var h appstore.HistoryResponse
		call(t, s, "GET", "/inApps/v2/history/"+customer+"?revision="+url.QueryEscape(rev), nil).decode(t, &h)
		for _, jws := range h.SignedTransactions {
			var p appstore.TransactionPayload
			decodeJWS(t, jws, &p)
			all[p.TransactionID] = append(all[p.TransactionID], p)
		}
		rev, more = h.Revision, h.HasMore
	}
	got := all[target.LatestTransactionID]
	if len(got) != 2 {
		t.Fatalf("refunded transaction returned %d times, want twice (before and after the change)", len(got))
	}
	if got[0].RevocationDate != 0 || got[1].RevocationDate == 0 || got[1].RevocationType == "" {
		t.Fatalf("revocation before/after: %v/%v (%q), want none then set", got[0].RevocationDate, got[1].RevocationDate, got[1].RevocationType)
	}
	if want := accountTxCount(t, s, customer); len(all) != want {
		t.Fatalf("distinct transactions %d, truth %d", len(all), want)
	}

	// The last revision asks for changes since: nothing, until something
	// changes.
	var h appstore.HistoryResponse
	call(t, s, "GET", "/inApps/v2/history/"+customer+"?revision="+url.QueryEscape(rev), nil).decode(t, &h)
	if len(h.SignedTransactions) != 0 || h.HasMore {
		t.Fatalf("incremental call with the final revision returned %d transactions", len(h.SignedTransactions))
	}
	if err := s.Mutate(target.OriginalTransactionID, MutateRenew); err == nil {
		t.Fatal("renewing a revoked subscription succeeded")
	}
	other := ""
	a, _ := s.AccountOf(customer)
	for _, id := range a.OriginalTransactionIDs {
		if st, _ := s.TruthOf(id); st.Status != "revoked" {
			other = id
		}
	}
	if other == "" {
		t.Fatal("the customer has no second live subscription to renew")
	}
	if err := s.Mutate(other, MutateRenew); err != nil {
		t.Fatal(err)
	}
	call(t, s, "GET", "/inApps/v2/history/"+customer+"?revision="+url.QueryEscape(rev), nil).decode(t, &h)
	tr, _ := s.TruthOf(other)
	if len(h.SignedTransactions) != 1 {
		t.Fatalf("incremental call after a renewal returned %d transactions, want 1", len(h.SignedTransactions))
	}
	var p appstore.TransactionPayload
	decodeJWS(t, h.SignedTransactions[0], &p)
	if p.TransactionID != tr.LatestTransactionID {
		t.Fatalf("incremental call returned %s, want the renewal %s", p.TransactionID, tr.LatestTransactionID)
	}
}

func TestHistoryRevisionBoundToQuery(t *testing.T) {
	t.Parallel()
	s := startTest(t, unlimited(Options{Seed: 7, Subscribers: 400}))
	var long SubscriptionTruth
	for _, tr := range s.Truth() {
		if tr.TransactionCount > 40 && tr.Environment == appstore.Production {
			long = tr
			break
		}
	}
	id := long.OriginalTransactionID
	var h appstore.HistoryResponse
	call(t, s, "GET", "/inApps/v2/history/"+id+"?productId="+long.ProductID, nil).decode(t, &h)
	if !h.HasMore {
		t.Fatal("want more than one page")
	}
	rev := url.QueryEscape(h.Revision)
	// Same query, parameters reordered: accepted.
	call(t, s, "GET", "/inApps/v2/history/"+id+"?revision="+rev+"&productId="+long.ProductID, nil).decode(t, &h)
	// Another query, another customer, garbage, another environment.
	otherID := ""
	for _, x := range s.OriginalTransactionIDs(appstore.Production) {
		if a, _ := s.AccountOf(x); !slices.Contains(a.OriginalTransactionIDs, id) {
			otherID = x
			break
		}
	}
	for _, path := range []string{
		"/inApps/v2/history/" + id + "?revision=" + rev,
		"/inApps/v2/history/" + id + "?revision=" + rev + "&productId=" + long.ProductID + "&sort=DESCENDING",
		"/inApps/v2/history/" + otherID + "?revision=" + rev + "&productId=" + long.ProductID,
		"/inApps/v2/history/" + id + "?revision=garbage&productId=" + long.ProductID,
		"/inApps/v2/history/" + id + "?revision=" + rev[:len(rev)-2] + "AA&productId=" + long.ProductID,
	} {
		call(t, s, "GET", path, nil).wantError(t, 400, 4000005)
	}
}

func TestHistoryFiltersAndValidation(t *testing.T) {
	t.Parallel()
	s := startTest(t, unlimited(Options{Seed: 5, Subscribers: 1500}))
	// A customer with revoked and non-revoked transactions and two groups.
	var id string
	for _, tr := range s.Truth() {
		a, _ := s.AccountOf(tr.OriginalTransactionID)
		if tr.Status == "revoked" && len(a.OriginalTransactionIDs) == 2 && tr.Environment == appstore.Production {
			id = tr.OriginalTransactionID
			break
		}
	}
	if id == "" {
		t.Fatal("no two-group customer with a refund")
	}
	all, _ := pageAllHistory(t, s, "", id, "")
	count := func(q string) []appstore.TransactionPayload {
		txs, _ := pageAllHistory(t, s, "", id, q)
		return txs
	}
	split := func(pred func(p appstore.TransactionPayload) bool, q string) {
		t.Helper()
		got := count(q)
		want := 0
		for _, p := range all {
			if pred(p) {
				want++
			}
		}
		for _, p := range got {
			if !pred(p) {
				t.Errorf("%s: transaction %s does not match", q, p.TransactionID)
			}
		}
		if len(got) != want || want == 0 {
			t.Errorf("%s: %d transactions, want %d (>0)", q, len(got), want)
		}
	}
	split(func(p appstore.TransactionPayload) bool { return p.RevocationDate != 0 }, "revoked=true")
	split(func(p appstore.TransactionPayload) bool { return p.RevocationDate == 0 }, "revoked=false")
	split(func(p appstore.TransactionPayload) bool { return p.SubscriptionGroupIdentifier == GroupCloud }, "subscriptionGroupIdentifier="+GroupCloud)
	mid := all[len(all)/2].PurchaseDate
	split(func(p appstore.TransactionPayload) bool { return p.PurchaseDate >= mid }, fmt.Sprintf("startDate=%d", mid))
	split(func(p appstore.TransactionPayload) bool { return p.PurchaseDate < mid }, fmt.Sprintf("endDate=%d", mid))
	pid := all[0].ProductID
	split(func(p appstore.TransactionPayload) bool { return p.ProductID == pid }, "productId="+pid)
	split(func(appstore.TransactionPayload) bool { return true }, "productType=AUTO_RENEWABLE&productType=CONSUMABLE&inAppOwnershipType=PURCHASED")
	if got := count("productType=CONSUMABLE"); len(got) != 0 {
		t.Errorf("productType=CONSUMABLE returned %d subscriptions", len(got))
	}
	if got := count("inAppOwnershipType=FAMILY_SHARED"); len(got) != 0 {
		t.Errorf("FAMILY_SHARED filter returned %d purchased transactions", len(got))
	}
	for _, c := range []struct {
		q    string
		code int
	}{
		{"sort=UP", 4000021},
		{"productType=SUBSCRIPTION", 4000022},
		{"productId=", 4000023},
		{"subscriptionGroupIdentifier=", 4000024},
		{"inAppOwnershipType=BOUGHT", 4000026},
		{"revoked=maybe", 4000030},
		{"startDate=yesterday", 4000015},
		{"endDate=-5", 4000016},
		{fmt.Sprintf("startDate=%d&endDate=%d", mid, mid), 4000013},
	} {
		call(t, s, "GET", "/inApps/v2/history/"+id+"?"+c.q, nil).wantError(t, 400, c.code)
	}
}

func TestUnknownAndMalformedIDs(t *testing.T) {
	t.Parallel()
	s := startTest(t, unlimited(Options{Seed: 2, Subscribers: 300}))
	var sandboxID string
	for _, tr := range s.Truth() {
		if tr.Environment == appstore.Sandbox {
			sandboxID = tr.OriginalTransactionID
			break
		}
	}
	if sandboxID == "" {
		t.Fatal("no sandbox-only customer in 300")
	}
	for _, p := range []string{
		"/inApps/v1/subscriptions/", "/inApps/v2/history/", "/inApps/v1/transactions/", "/inApps/v2/refund/lookup/",
	} {
		r := call(t, s, "GET", p+"99999999", nil)
		r.wantError(t, 404, 4040010)
		if string(r.body) != `{"errorCode":4040010,"errorMessage":"Transaction id not found."}` {
			t.Errorf("404 body %s", r.body)
		}
		call(t, s, "GET", p+"12ab", nil).wantError(t, 400, 4000006)
		call(t, s, "GET", p+"123456789012345678901", nil).wantError(t, 400, 4000006)
		// Sandbox-only customers: unknown in production, served by the sandbox.
		call(t, s, "GET", p+sandboxID, nil).wantError(t, 404, 4040010)
		if r := call(t, s, "GET", "/sandbox"+p+sandboxID, nil); r.status != 200 {
			t.Errorf("sandbox %s%s: status %d", p, sandboxID, r.status)
		}
	}
	// App transaction ids name a customer for statuses and history, but
	// Get Transaction Info rejects them.
	a, _ := s.AccountOf(s.OriginalTransactionIDs(appstore.Production)[0])
	call(t, s, "GET", "/inApps/v1/transactions/"+a.AppTransactionID, nil).wantError(t, 400, 4000048)
	var st appstore.StatusResponse
	call(t, s, "GET", "/inApps/v1/subscriptions/"+a.AppTransactionID, nil).decode(t, &st)
	if len(st.Data) == 0 {
		t.Error("statuses by appTransactionId returned nothing")
	}
	call(t, s, "GET", "/inApps/v1/subscriptions/"+a.AppTransactionID+"?status=9", nil).wantError(t, 400, 4000031)
}

func TestOrderLookupAndRefundHistory(t *testing.T) {
	t.Parallel()
	s := startTest(t, unlimited(Options{Seed: 9, Subscribers: 400}))
	var revoked SubscriptionTruth
	for _, tr := range s.Truth() {
		if tr.Status == "revoked" && tr.Environment == appstore.Production {
			revoked = tr
			break
		}
	}
	var rh appstore.RefundHistoryResponse
	call(t, s, "GET", "/inApps/v2/refund/lookup/"+revoked.OriginalTransactionID, nil).decode(t, &rh)
	found := false
	for _, jws := range rh.SignedTransactions {
		var p appstore.TransactionPayload
		verifyJWS(t, s, jws, &p)
		if p.RevocationDate == 0 {
			t.Errorf("refund history returned unrevoked %s", p.TransactionID)
		}
		found = found || p.TransactionID == revoked.LatestTransactionID
	}
	if !found || rh.HasMore || rh.Revision == "" {
		t.Errorf("refund history: found %v, hasMore %v, revision %q", found, rh.HasMore, rh.Revision)
	}
	call(t, s, "GET", "/inApps/v2/refund/lookup/"+revoked.OriginalTransactionID+"?revision=bogus", nil).wantError(t, 400, 4000005)

	order := s.OrderID(revoked.LatestTransactionID)
	if txIDOfOrder(order) != revoked.LatestTransactionID {
		t.Fatalf("order id %s does not decode to %s", order, revoked.LatestTransactionID)
	}
	var ol appstore.OrderLookupResponse
	call(t, s, "GET", "/inApps/v1/lookup/"+order, nil).decode(t, &ol)
	if ol.Status != 0 || len(ol.SignedTransactions) != 1 {
		t.Fatalf("order lookup: status %d with %d transactions", ol.Status, len(ol.SignedTransactions))
	}
	var p appstore.TransactionPayload
	verifyJWS(t, s, ol.SignedTransactions[0], &p)
	if p.TransactionID != revoked.LatestTransactionID {
		t.Errorf("order %s gave %s", order, p.TransactionID)
	}
	call(t, s, "GET", "/inApps/v1/lookup/MNOSUCHORD", nil).decode(t, &ol)
	if ol.Status != 1 || len(ol.SignedTransactions) != 0 {
		t.Errorf("unknown order: status %d with %d transactions", ol.Status, len(ol.SignedTransactions))
	}
}
