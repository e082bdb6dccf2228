package jobs

import (
	"context"
	"encoding/csv"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/applevectors"
	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/jobs/jobstest"
	"github.com/storesync/storesync/ledger"
)

// Importing the simulator's receipts file gives the same ledger as its ids
// file: every subscription of every customer, equal to Apple's truth. Bad
// receipts are rejected rows; several receipts of one customer cost Apple
// one Get Transaction Info call.
func TestImportFromReceiptsEqualsTruth(t *testing.T) {
	t.Parallel()
	h := startImportHarness(t, sim.Options{Seed: 3, Subscribers: 100, DisableRateLimits: true}, Settings{})
	truths := h.simulator.Truth()
	var rows []sim.Receipt
	for _, env := range []appstore.Environment{appstore.Production, appstore.Sandbox} {
		rs, err := h.simulator.Receipts(env)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, rs...)
	}
	var b strings.Builder
	w := csv.NewWriter(&b)
	_ = w.Write([]string{"app_receipt", "customer_id", "app_account_token"})
	for _, r := range rows {
		_ = w.Write([]string{r.AppReceipt, r.CustomerID, r.AppAccountToken})
	}
	// The same customer again: the same receipt, and a legacy receipt of
	// another of its transactions (in JSON Lines below).
	_ = w.Write([]string{rows[0].AppReceipt, rows[0].CustomerID, rows[0].AppAccountToken})
	empty := strings.TrimSpace(applevectors.Text(t, "tests/resources/xcode/xcode-app-receipt-empty"))
	_ = w.Write([]string{empty, "no-purchases", ""})
	_ = w.Write([]string{"bm90IGEgcmVjZWlwdA==", "garbage", ""})
	w.Flush()
	file := b.String()
	lines := len(rows) + 1

	run, counts, rejects := h.importCSV(t, file)
	want := ledger.ImportCounts{Rows: int64(len(rows) + 3), Rejected: 2, Duplicates: 1, Enqueued: int64(len(rows))}
	if counts != want {
		t.Fatalf("counts %+v, want %+v\nrejects:\n%s", counts, want, rejects)
	}
	recs, err := csv.NewReader(strings.NewReader(rejects)).ReadAll()
	if err != nil || len(recs) != 2 {
		t.Fatalf("rejects (%v):\n%s", err, rejects)
	}
	if recs[0][0] != fmt.Sprint(lines+2) || !strings.Contains(recs[0][1], "no in-app purchase") ||
		recs[1][0] != fmt.Sprint(lines+3) || !strings.Contains(recs[1][1], "unreadable receipt") {
		t.Fatalf("rejects:\n%s", rejects)
	}
	// Following the run waits for the receipts to become rows too.
	fctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f, err := FollowImport(fctx, h.deps.Ledger, run, FollowImportOptions{Poll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := unresolvedReceipts(context.Background(), h.deps.Ledger, run); err != nil || n != 0 || f.Progress.Total == 0 {
		t.Fatalf("FollowImport returned with %d receipts unresolved (%v), progress %+v", n, err, f.Progress)
	}
	waitImportJobs(t, h, time.Minute)

	// A legacy transaction receipt of the first customer's latest
	// transaction, in JSON Lines: the account is imported, Apple not asked.
	before := transactionInfoCalls(h.simulator)
	var latest string
	for _, tr := range truths {
		if tr.AccountID == rows[0].CustomerID {
			latest = tr.LatestTransactionID
		}
	}
	legacy := h.simulator.TransactionReceipt(latest)
	_, counts, rejects = h.importCSV(t, fmt.Sprintf(`{"transactionReceipt":%q,"customerId":%q}`+"\n", legacy, rows[0].CustomerID))
	if counts.Enqueued != 1 || counts.Rejected != 0 {
		t.Fatalf("legacy receipt: %+v %s", counts, rejects)
	}
	waitImportJobs(t, h, time.Minute)
	if after := transactionInfoCalls(h.simulator); after != before {
		t.Fatalf("a receipt of an imported customer cost %d Get Transaction Info calls", after-before)
	}
	if got := transactionInfoCalls(h.simulator); got != int64(len(rows)) {
		t.Errorf("%d Get Transaction Info calls in production for %d customers", got, len(rows))
	}
	if p, err := h.deps.Ledger.ImportProgressOf(context.Background(), run); err != nil || !p.Finished() {
		t.Fatalf("run %d: %+v, %v", run, p, err)
	}
	jobstest.RequireLedgerEqualsTruth(t, h.deps.Ledger, truths)
}

func transactionInfoCalls(s *sim.Simulator) int64 {
	for _, e := range s.Stats().Endpoints {
		if e.Environment == appstore.Production && e.Endpoint == appstore.EndpointTransaction {
			return e.Requests
		}
	}
	return 0
}

// waitImportJobs waits until no receipt, import or history job is left to
// work: following a run is not enough before comparing the ledger, as the
// history of a subscription found beside an imported one (statuses name the
// whole account) has a job but no row of the run.
func waitImportJobs(t *testing.T, h *importHarness, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var pending int64
		if err := h.pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE kind IN ('import', 'import_receipt', 'import_history')
			AND state NOT IN ('completed', 'cancelled', 'discarded')`).Scan(&pending); err != nil {
			t.Fatal(err)
		}
		if pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d import jobs still pending", pending)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestReceiptsDoNotDelayStatuses checks that a migration from receipts
// fetches current state while its receipts are still being resolved: the
// receipt jobs wait for the transaction endpoint's budget on a queue of
// their own, so they do not hold the slots of the import jobs their
// answers create. (On the bulk queue, with 16 workers, no import job ran
// until at most 16 receipts were left.)
func TestReceiptsDoNotDelayStatuses(t *testing.T) {
	t.Parallel()
	const transactionLimit = 5 // requests/s: the receipts take many seconds
	h := startImportHarnessLimited(t, sim.Options{Seed: 8, Subscribers: 80, DisableRateLimits: true}, Settings{},
		map[appstore.Endpoint]float64{appstore.EndpointTransaction: transactionLimit})
	rows, err := h.simulator.Receipts(appstore.Production)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) < 40 {
		t.Fatalf("%d production receipts; the test needs at least 40", len(rows))
	}
	var b strings.Builder
	w := csv.NewWriter(&b)
	_ = w.Write([]string{"app_receipt", "customer_id", "app_account_token"})
	for _, r := range rows {
		_ = w.Write([]string{r.AppReceipt, r.CustomerID, r.AppAccountToken})
	}
	w.Flush()
	if _, counts, rejects := h.importCSV(t, b.String()); counts.Enqueued != int64(len(rows)) {
		t.Fatalf("counts %+v, rejects:\n%s", counts, rejects)
	}

	deadline := time.Now().Add(time.Minute)
	for {
		var imported, unresolved int64
		if err := h.pool.QueryRow(context.Background(), `SELECT
			count(*) FILTER (WHERE kind = 'import' AND state = 'completed'),
			count(*) FILTER (WHERE kind = 'import_receipt' AND state NOT IN ('completed', 'cancelled', 'discarded'))
			FROM river_job`).Scan(&imported, &unresolved); err != nil {
			t.Fatal(err)
		}
		if imported > 0 {
			if unresolved < int64(len(rows))/2 {
				t.Fatalf("the first import job finished with only %d of %d receipts left to resolve: statuses waited for the receipts", unresolved, len(rows))
			}
			// The receipts left wait for the budget for seconds: cancel them
			// rather than have the harness's Stop wait for them.
			_ = h.client.StopAndCancel(context.Background())
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no import job finished within a minute (%d receipts left)", unresolved)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFollowImportWaitsForSiblings: a file listing one subscription of an
// Apple account also imports the account's other one (Apple's statuses name
// it), by jobs of the run without a row; following the run returns only
// once that one's full history is in the ledger too. (It returned when the
// file's rows were done, and a receipts test compared the ledger while a
// sibling's history was still paging.)
func TestFollowImportWaitsForSiblings(t *testing.T) {
	t.Parallel()
	// One history page a second: the sibling's two pages end after the
	// listed subscription's one.
	h := startImportHarnessLimited(t, sim.Options{Seed: 1, Subscribers: 100, DisableRateLimits: true}, Settings{},
		map[appstore.Endpoint]float64{appstore.EndpointHistory: 1})
	byAccount := map[string][]sim.SubscriptionTruth{}
	for _, tr := range h.simulator.Truth() {
		if tr.Environment == appstore.Production {
			byAccount[tr.AccountID] = append(byAccount[tr.AccountID], tr)
		}
	}
	var listed, sibling sim.SubscriptionTruth
	for _, trs := range byAccount {
		if len(trs) != 2 {
			continue
		}
		if trs[0].TransactionCount > trs[1].TransactionCount {
			trs[0], trs[1] = trs[1], trs[0]
		}
		if trs[0].TransactionCount <= 20 && trs[1].TransactionCount > 20 {
			listed, sibling = trs[0], trs[1]
			break
		}
	}
	if sibling.OriginalTransactionID == "" {
		t.Fatal("the seed has no account with a one-page and a longer subscription")
	}
	run, counts, rejects := h.importCSV(t, truthCSV([]sim.SubscriptionTruth{listed}, nil))
	if counts.Enqueued != 1 {
		t.Fatalf("counts %+v, rejects:\n%s", counts, rejects)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// `storesync status` says the same while the sibling is importing.
	state := func() string {
		t.Helper()
		st, err := ReadStatus(ctx, h.deps.Ledger, StatusOptions{})
		if err != nil || st.ImportsErr != nil || len(st.Imports) == 0 || st.Imports[0].ID != run {
			t.Fatalf("status: %v, %v, %+v", err, st.ImportsErr, st.Imports)
		}
		return st.Imports[0].State
	}
	var whileSiblings []string
	f, err := FollowImport(ctx, h.deps.Ledger, run, FollowImportOptions{Poll: 20 * time.Millisecond, Progress: func(f ImportFollow) {
		if f.Progress.Finished() && f.SiblingsImporting > 0 {
			whileSiblings = append(whileSiblings, state())
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if f.Progress.Done != 1 || f.SiblingsImporting != 0 || f.Siblings != 1 {
		t.Fatalf("FollowImport returned with %+v, %d sibling jobs still importing, %d siblings imported (want 1)", f.Progress, f.SiblingsImporting, f.Siblings)
	}
	jobstest.RequireLedgerEqualsTruth(t, h.deps.Ledger, []sim.SubscriptionTruth{listed, sibling})
	if len(whileSiblings) == 0 || !strings.HasPrefix(whileSiblings[0], "migrating: ") {
		t.Errorf("status while the sibling was importing: %q, want migrating: N jobs left", whileSiblings[:min(3, len(whileSiblings))])
	}
	if got := state(); got != "finished" {
		t.Errorf("status once it was imported: %q, want finished", got)
	}
}
