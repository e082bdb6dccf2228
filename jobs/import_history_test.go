package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/jobs/jobstest"
	"github.com/storesync/storesync/ledger"
)

// With the history endpoint throttled far below statuses, every row gets
// its current state (statuses fetched, customer linked) while histories are
// still paging: statuses no longer wait for history. Then every row ends
// with its full history.
func TestImportCurrentStateBeforeHistory(t *testing.T) {
	t.Parallel()
	h := startImportHarness(t, sim.Options{Seed: 2, Subscribers: 40, DisableRateLimits: true}, Settings{})
	for _, env := range []appstore.Environment{appstore.Production, appstore.Sandbox} {
		if err := h.simulator.SetRateLimit(env, appstore.EndpointHistory, 4); err != nil {
			t.Fatal(err)
		}
	}
	truths := h.simulator.Truth()
	run, _, _ := h.importCSV(t, truthCSV(truths, nil))
	ctx := context.Background()
	deadline := time.Now().Add(2 * time.Minute)
	var p ledger.ImportProgress
	for {
		var err error
		if p, err = h.deps.Ledger.ImportProgressOf(ctx, run); err != nil {
			t.Fatal(err)
		}
		// Every import job (statuses, then the customer link) finished.
		var importJobs int
		if err := h.pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'import'
			AND state NOT IN ('completed', 'cancelled', 'discarded')`).Scan(&importJobs); err != nil {
			t.Fatal(err)
		}
		if p.CurrentWaiting == 0 && importJobs == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rows still waiting for their current state: %+v", p)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if p.Pending == 0 || p.Current != p.Total {
		t.Fatalf("when every import job had finished: %+v; want history still pending and every row current", p)
	}
	// Current state means linked too: the customer ids are in the ledger
	// before the histories are.
	var linked int
	if err := h.pool.QueryRow(ctx, `SELECT count(*) FROM subscriptions WHERE customer_id IS NOT NULL AND customer_id <> ''`).Scan(&linked); err != nil {
		t.Fatal(err)
	}
	if linked < len(truths) {
		t.Errorf("%d subscriptions linked to their customer when all had their current state, want %d", linked, len(truths))
	}
	t.Logf("every current state stored with %d of %d rows still paging history", p.Pending, p.Total)
	p = h.waitRun(t, run, 3*time.Minute)
	if p.Done != int64(len(truths)) {
		t.Fatalf("progress %+v, want %d done", p, len(truths))
	}
	jobstest.RequireLedgerEqualsTruth(t, h.deps.Ledger, truths)
}

// Jobs of an older binary, where the import job paged the history itself,
// finish correctly: one checkpointed mid-history (step "history" with a
// cursor) goes on from its cursor without asking the stored pages again;
// one that finished its history but not its last step ("history" done, no
// cursor) is finished too; and one that died after its statuses, before
// any hand-off (as a job of this binary may), enqueues its history job.
func TestImportLegacyJobsFinish(t *testing.T) {
	t.Parallel()
	h := startImportHarness(t, sim.Options{Seed: 1, Subscribers: 150, DisableRateLimits: true}, Settings{})
	ctx := context.Background()
	var long, other, third sim.SubscriptionTruth
	for _, tr := range h.simulator.Truth() {
		if tr.Environment == appstore.Production && tr.TransactionCount > long.TransactionCount {
			long = tr
		}
	}
	for _, tr := range h.simulator.Truth() {
		if tr.Environment != appstore.Production || tr.AccountID == long.AccountID || tr.TransactionCount <= 20 {
			continue
		}
		switch {
		case other.OriginalTransactionID == "":
			other = tr
		case tr.AccountID != other.AccountID && third.OriginalTransactionID == "":
			third = tr
		}
	}
	if long.TransactionCount <= 40 || other.OriginalTransactionID == "" || third.OriginalTransactionID == "" {
		t.Fatalf("seed gives no fit subscriptions: %+v, %+v, %+v", long, other, third)
	}
	run, err := h.deps.Ledger.CreateImportRun(ctx, "legacy.csv")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.deps.Ledger.InsertImportRows(ctx, run, []ledger.ImportRow{
		{OriginalTransactionID: long.OriginalTransactionID, CustomerID: "cust-long"},
		{OriginalTransactionID: other.OriginalTransactionID, CustomerID: "cust-other"},
		{OriginalTransactionID: third.OriginalTransactionID, CustomerID: "cust-third"},
	}); err != nil {
		t.Fatal(err)
	}
	// What the older binary's job had done: statuses of both, the first
	// page of long's history (its cursor), the whole history of other.
	for _, tr := range []sim.SubscriptionTruth{long, other, third} {
		if _, _, err := h.deps.syncStatuses(ctx, tr.OriginalTransactionID); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.deps.Ledger.MarkStatusesFetched(ctx, []string{long.OriginalTransactionID, other.OriginalTransactionID, third.OriginalTransactionID}); err != nil {
		t.Fatal(err)
	}
	client, err := h.deps.Apple.InEnvironment(appstore.Production)
	if err != nil {
		t.Fatal(err)
	}
	group := func(otid string) string {
		sub, err := h.deps.Ledger.Subscription(ctx, otid)
		if err != nil {
			t.Fatal(err)
		}
		return sub.SubscriptionGroupIdentifier
	}
	page, _, err := client.GetTransactionHistory(ctx, long.OriginalTransactionID, appstore.HistoryQuery{Sort: appstore.SortAscending,
		SubscriptionGroupIdentifiers: []string{group(long.OriginalTransactionID)}})
	if err != nil || !page.HasMore {
		t.Fatalf("first page: %v (more: %v)", err, page != nil && page.HasMore)
	}
	facts, err := h.deps.transactionFacts(page.SignedTransactions, appstore.Production)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.deps.Ledger.Apply(ctx, facts); err != nil {
		t.Fatal(err)
	}
	if _, err := h.deps.syncHistory(ctx, other.OriginalTransactionID, appstore.Production, group(other.OriginalTransactionID), "", nil); err != nil {
		t.Fatal(err)
	}
	before := h.simulator.Stats()

	legacy := func(otid string, metadata map[string]any) {
		b, err := json.Marshal(metadata)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.client.Insert(ctx, ImportArgs{OriginalTransactionID: otid, RunID: run}, &river.InsertOpts{Metadata: b}); err != nil {
			t.Fatal(err)
		}
	}
	legacy(long.OriginalTransactionID, map[string]any{"river:resumable_step": "history",
		"river:resumable_cursor": map[string]any{"history": importHistoryCursor{Revision: page.Revision}}})
	legacy(other.OriginalTransactionID, map[string]any{"river:resumable_step": "history"})
	legacy(third.OriginalTransactionID, map[string]any{"river:resumable_step": "statuses"})
	p := h.waitRun(t, run, 2*time.Minute)
	if p.Done != 3 {
		t.Fatalf("progress %+v, want every row done", p)
	}
	jobstest.RequireLedgerEqualsTruth(t, h.deps.Ledger, []sim.SubscriptionTruth{long, other, third})
	after := h.simulator.Stats()
	calls := func(s sim.Stats, ep appstore.Endpoint) int64 { return s.Endpoint(appstore.Production, ep).Requests }
	longPages := int64((long.TransactionCount + 19) / 20)
	thirdPages := int64((third.TransactionCount + 19) / 20)
	// long: its remaining pages once; other: one call finding nothing new;
	// third: its pages once.
	if got, want := calls(after, appstore.EndpointHistory)-calls(before, appstore.EndpointHistory), longPages-1+1+thirdPages; got != want {
		t.Errorf("%d history calls after the upgrade, want %d (long's %d pages but the first, one for other, third's %d)", got, want, longPages, thirdPages)
	}
	if got := calls(after, appstore.EndpointStatuses) - calls(before, appstore.EndpointStatuses); got != 0 {
		t.Errorf("%d statuses calls after the upgrade, want none (they were fetched)", got)
	}
	for _, c := range []struct{ otid, customer string }{{long.OriginalTransactionID, "cust-long"}, {other.OriginalTransactionID, "cust-other"}, {third.OriginalTransactionID, "cust-third"}} {
		var customer string
		if err := h.pool.QueryRow(ctx, `SELECT COALESCE(customer_id, '') FROM subscriptions WHERE original_transaction_id = $1`, c.otid).Scan(&customer); err != nil {
			t.Fatal(err)
		}
		if customer != c.customer {
			t.Errorf("%s linked to %q, want %q", c.otid, customer, c.customer)
		}
		// River records completions in batches, after the row is done.
		waitFor(t, func() bool { return fmt.Sprint(jobStates(t, h.pool, c.otid)) == "[completed]" })
	}
}
