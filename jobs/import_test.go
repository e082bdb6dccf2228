package jobs

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/appstore/sim/simtest"
	"github.com/storesync/storesync/jobs/jobstest"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/ledger/budget"
	"github.com/storesync/storesync/migrations/migrationstest"
)

// importHarness is a simulator, a migrated database and a working River
// client wired as `storesync serve` wires them.
type importHarness struct {
	simulator *sim.Simulator
	pool      *pgxpool.Pool
	deps      *Deps
	client    *river.Client[pgx.Tx]
}

func startImportHarness(t *testing.T, simOpts sim.Options, settings Settings) *importHarness {
	t.Helper()
	return startImportHarnessLimited(t, simOpts, settings, nil)
}

// startImportHarnessLimited is startImportHarness with the budget's limit of
// some endpoints set to budgetLimits (requests/s; the others 2,000/s).
func startImportHarnessLimited(t *testing.T, simOpts sim.Options, settings Settings, budgetLimits map[appstore.Endpoint]float64) *importHarness {
	t.Helper()
	simulator := simtest.StartTest(t, simOpts)
	_, pool := migrationstest.NewDatabase(t)
	limits := map[appstore.Endpoint]float64{}
	for _, ep := range appstore.Endpoints {
		limits[ep] = 2000 // the simulator's own limits, when on, are what matters
	}
	limits[appstore.EndpointAppAccountToken] = 2000
	for ep, l := range budgetLimits {
		limits[ep] = l
	}
	rateBudget, err := budget.NewPostgres(budget.PostgresOptions{Pool: pool, App: simulator.BundleID(),
		Limits: map[appstore.Environment]map[appstore.Endpoint]float64{appstore.Production: limits, appstore.Sandbox: limits}})
	if err != nil {
		t.Fatal(err)
	}
	key, err := appstore.ParsePrivateKey(simulator.PrivateKeyPEM())
	if err != nil {
		t.Fatal(err)
	}
	apple, err := appstore.NewClient(appstore.ClientOptions{
		KeyID: simulator.KeyID(), IssuerID: simulator.IssuerID(), BundleID: simulator.BundleID(), PrivateKey: key,
		Environment: appstore.Production, BaseURL: simulator.BaseURL(), SandboxBaseURL: simulator.SandboxURL(),
		SandboxFallback: true, Budget: rateBudget,
	})
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := appstore.NewVerifier(appstore.VerifierOptions{
		RootCertificates: [][]byte{simulator.RootDER()}, Environment: appstore.Production,
		BundleID: simulator.BundleID(), AppAppleID: simulator.AppAppleID(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if settings.RetryBase == 0 {
		settings.RetryBase = 20 * time.Millisecond
	}
	deps := &Deps{Ledger: ledger.New(pool), Apple: apple, Verifier: verifier,
		Metrics: NewMetrics(), Now: simulator.Now, Settings: settings}
	client, err := NewRiverClient(deps, ClientOptions{Work: true, BulkWorkers: 16})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := client.Stop(ctx); err != nil {
			_ = client.StopAndCancel(context.Background())
		}
	})
	return &importHarness{simulator: simulator, pool: pool, deps: deps, client: client}
}

// importCSV runs the Importer on text as a new run.
func (h *importHarness) importCSV(t *testing.T, text string) (int64, ledger.ImportCounts, string) {
	t.Helper()
	ctx := context.Background()
	var rejects bytes.Buffer
	im, err := NewImporter(ImporterOptions{Ledger: h.deps.Ledger, River: h.client, BatchSize: 50, Rejects: &rejects})
	if err != nil {
		t.Fatal(err)
	}
	run, counts, err := im.Run(ctx, "test.csv", strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return run, counts, rejects.String()
}

// waitRun waits until every row of run is done or failed.
func (h *importHarness) waitRun(t *testing.T, run int64, within time.Duration) ledger.ImportProgress {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		p, err := h.deps.Ledger.ImportProgressOf(context.Background(), run)
		if err != nil {
			t.Fatal(err)
		}
		if p.Finished() {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("import run %d unfinished after %s: %+v", run, within, p)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// follow waits for run as `import --wait` does: every row, and every
// subscription Apple named beside them, imported.
func (h *importHarness) follow(t *testing.T, run int64) ImportFollow {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f, err := FollowImport(ctx, h.deps.Ledger, run, FollowImportOptions{Poll: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("following import run %d: %v (%+v)", run, err, f)
	}
	return f
}

// truthCSV is an import file of every subscription in truths, customer id
// = the simulator's account id (so rows of one account share it), with the
// appAccountToken of tokens[otid] instead of Apple's where given.
func truthCSV(truths []sim.SubscriptionTruth, tokens map[string]string) string {
	var b strings.Builder
	b.WriteString("original_transaction_id,app_account_token,customer_id\n")
	for _, tr := range truths {
		token := tr.AppAccountToken
		if o, ok := tokens[tr.OriginalTransactionID]; ok {
			token = o
		}
		fmt.Fprintf(&b, "%s,%s,%s\n", tr.OriginalTransactionID, token, tr.AccountID)
	}
	return b.String()
}

func jobStates(t *testing.T, pool *pgxpool.Pool, otid string) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT state::text FROM river_job
		WHERE kind = 'import' AND args->>'original_transaction_id' = $1 ORDER BY id`, otid)
	if err != nil {
		t.Fatal(err)
	}
	states, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return states
}

func TestImportMigratesSimulatedPopulation(t *testing.T) {
	t.Parallel()
	h := startImportHarness(t, sim.Options{Seed: 1, Subscribers: 150, DisableRateLimits: true}, Settings{})
	truths := h.simulator.Truth()
	accounts := map[string]bool{}
	var sandboxOTID, conflictOTID string
	wantPages := 0
	for _, tr := range truths {
		accounts[tr.AccountID] = true
		wantPages += (tr.TransactionCount + 19) / 20
		if tr.Environment == appstore.Sandbox && sandboxOTID == "" {
			sandboxOTID = tr.OriginalTransactionID
		}
		if tr.AppAccountToken != "" && tr.Environment == appstore.Production && conflictOTID == "" {
			conflictOTID = tr.OriginalTransactionID
		}
	}
	if sandboxOTID == "" || conflictOTID == "" {
		t.Fatal("seed 1 has no sandbox-only subscription or no token: pick another seed")
	}
	// The company's idea of one customer's token disagrees with Apple's.
	const ourToken = "00000000-0000-4000-8000-000000000042"
	file := truthCSV(truths, map[string]string{conflictOTID: ourToken})
	lines := strings.Count(file, "\n")
	const unknown = "2999999999999999" // well-formed, in neither environment
	file += "abc,,x\n" +               // line lines+1
		"123456789012345678901,,\n" + // +2: 21 digits
		"2000000000000001,not-a-uuid,\n" + // +3
		unknown + ",,\n" + // +4
		truths[0].OriginalTransactionID + ",,\n" // +5: duplicate

	run, counts, rejects := h.importCSV(t, file)
	want := ledger.ImportCounts{Rows: int64(len(truths) + 5), Rejected: 3, Duplicates: 1, Enqueued: int64(len(truths) + 1)}
	if counts != want {
		t.Fatalf("counts %+v, want %+v", counts, want)
	}
	recs, err := csv.NewReader(strings.NewReader(rejects)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	wantRejects := []struct{ line, reason string }{
		{fmt.Sprint(lines + 1), "not a decimal number"},
		{fmt.Sprint(lines + 2), "more than 20"},
		{fmt.Sprint(lines + 3), "not a UUID"},
	}
	if len(recs) != len(wantRejects) {
		t.Fatalf("rejects:\n%s", rejects)
	}
	for i, w := range wantRejects {
		if recs[i][0] != w.line || !strings.Contains(recs[i][1], w.reason) {
			t.Errorf("reject %d = %v, want line %s and %q", i, recs[i], w.line, w.reason)
		}
	}

	p := h.waitRun(t, run, 2*time.Minute)
	if p.Done != int64(len(truths)) || p.Failed != 1 {
		t.Fatalf("progress %+v: want %d done, 1 failed", p, len(truths))
	}
	jobstest.RequireLedgerEqualsTruth(t, h.deps.Ledger, truths)

	// The sandbox-only subscription was found through the fallback.
	if sub, err := h.deps.Ledger.Subscription(context.Background(), sandboxOTID); err != nil || sub.Environment != "Sandbox" {
		t.Fatalf("sandbox subscription: %+v, %v", sub, err)
	}
	// The unknown id failed with Apple's reason; its job was cancelled, not retried.
	row, err := h.deps.Ledger.ImportRowOf(context.Background(), unknown)
	if err != nil || row.State != ledger.ImportFailed || !strings.Contains(row.Error, "4040010") {
		t.Fatalf("unknown id row: %+v, %v", row, err)
	}
	waitFor(t, func() bool {
		s := jobStates(t, h.pool, unknown)
		return len(s) == 1 && s[0] == "cancelled"
	})
	var attempts int
	if err := h.pool.QueryRow(context.Background(), `SELECT attempt FROM river_job WHERE args->>'original_transaction_id' = $1`, unknown).Scan(&attempts); err != nil || attempts != 1 {
		t.Fatalf("unknown id job ran %d times (%v); want once", attempts, err)
	}
	// The disagreeing token is a conflict; Apple's token stays.
	conflicts, err := h.deps.Ledger.Conflicts(context.Background(), conflictOTID)
	if err != nil || len(conflicts) != 1 || conflicts[0].Field != "app_account_token" || conflicts[0].OurValue != ourToken {
		t.Fatalf("conflicts of %s: %+v, %v", conflictOTID, conflicts, err)
	}
	// Customer ids were linked.
	if sub, _ := h.deps.Ledger.Subscription(context.Background(), truths[1].OriginalTransactionID); sub.CustomerID != truths[1].AccountID {
		t.Fatalf("customer id %q, want %q", sub.CustomerID, truths[1].AccountID)
	}

	// Calls: one statuses answer per account at most, and exactly the
	// history pages the transactions need.
	stats := h.simulator.Stats()
	okStatuses := stats.Endpoint(appstore.Production, appstore.EndpointStatuses).ByStatus[200] +
		stats.Endpoint(appstore.Sandbox, appstore.EndpointStatuses).ByStatus[200]
	if okStatuses > int64(len(accounts)) {
		t.Errorf("%d statuses answers for %d accounts", okStatuses, len(accounts))
	}
	pages := stats.Endpoint(appstore.Production, appstore.EndpointHistory).Requests +
		stats.Endpoint(appstore.Sandbox, appstore.EndpointHistory).Requests
	if pages != int64(wantPages) {
		t.Errorf("%d history requests; Σ ceil(transactions/20) = %d", pages, wantPages)
	}
	t.Logf("calls: %d statuses answers for %d accounts, %d history pages for %d subscriptions", okStatuses, len(accounts), pages, len(truths))

	// Importing the same file again enqueues nothing.
	var jobsBefore int
	if err := h.pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE kind = 'import'`).Scan(&jobsBefore); err != nil {
		t.Fatal(err)
	}
	_, again, _ := h.importCSV(t, file)
	if again.Enqueued != 0 || again.Duplicates != int64(len(truths)+2) {
		t.Fatalf("re-import counts %+v: want nothing enqueued", again)
	}
	var jobsAfter int
	if err := h.pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE kind = 'import'`).Scan(&jobsAfter); err != nil || jobsAfter != jobsBefore {
		t.Fatalf("import jobs %d -> %d (%v)", jobsBefore, jobsAfter, err)
	}
}

// With 5% of answers 5xx and a storm of 429s, the ledger still ends equal
// to the truth, and no row fails.
func TestImportSurvivesServerErrorsAndRateLimitStorm(t *testing.T) {
	t.Parallel()
	h := startImportHarness(t, sim.Options{Seed: 2, Subscribers: 100, DisableRateLimits: true,
		Faults: sim.Faults{InternalErrorShare: 0.05}}, Settings{})
	truths := h.simulator.Truth()
	// The storm starts with the import: every process's budget must back
	// off, and the jobs that got a 429 snooze until Retry-After.
	if err := h.simulator.SetFaults(sim.Faults{InternalErrorShare: 0.05, RateLimitStorm: 1500 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	run, counts, _ := h.importCSV(t, truthCSV(truths, nil))
	if counts.Enqueued != int64(len(truths)) {
		t.Fatalf("counts %+v", counts)
	}
	p := h.waitRun(t, run, 3*time.Minute)
	if p.Failed != 0 || p.Done != int64(len(truths)) {
		t.Fatalf("progress %+v", p)
	}
	jobstest.RequireLedgerEqualsTruth(t, h.deps.Ledger, truths)
	total := h.simulator.Stats().Total()
	if total.ByStatus[500] == 0 || total.ByStatus[429] == 0 {
		t.Errorf("the simulator injected no 5xx or no 429 (%v): the test proves nothing", total.ByStatus)
	}
	t.Logf("answers: %v", total.ByStatus)
}

// A run that fails mid-history resumes at the page after the last stored
// one: the pages already stored are not asked again.
func TestImportHistoryResumesAtCheckpoint(t *testing.T) {
	t.Parallel()
	// One in-job attempt only, so the injected failure ends the run.
	h := startImportHarness(t, sim.Options{Seed: 1, Subscribers: 150, DisableRateLimits: true,
		Faults: sim.Faults{FailHistoryPage: 3}}, Settings{RetryAttempts: 1})
	var long sim.SubscriptionTruth
	for _, tr := range h.simulator.Truth() {
		if tr.TransactionCount > long.TransactionCount {
			long = tr
		}
	}
	if long.TransactionCount <= 60 {
		t.Fatalf("longest history has %d transactions: pick a seed with one over 60", long.TransactionCount)
	}
	run, _, _ := h.importCSV(t, truthCSV([]sim.SubscriptionTruth{long}, nil))
	p := h.waitRun(t, run, 2*time.Minute)
	if p.Done != 1 {
		t.Fatalf("progress %+v", p)
	}
	jobstest.RequireLedgerEqualsTruth(t, h.deps.Ledger, []sim.SubscriptionTruth{long})
	pages := (long.TransactionCount + 19) / 20
	hist := h.simulator.Stats().Endpoint(long.Environment, appstore.EndpointHistory)
	// Pages 1 and 2 once, page 3 failed once then answered, the rest once.
	if hist.Requests != int64(pages+1) || hist.ByStatus[500] != 1 {
		t.Fatalf("history requests %d (%v) for %d pages: want %d, one failed", hist.Requests, hist.ByStatus, pages, pages+1)
	}
	var attempt int
	if err := h.pool.QueryRow(context.Background(), `SELECT attempt FROM river_job WHERE kind = 'import_history'`).Scan(&attempt); err != nil || attempt != 2 {
		t.Fatalf("job attempts %d (%v): want a failed run and a resumed one", attempt, err)
	}
}

// TestImportBringsInTheAccountsOtherSubscriptions imports one subscription
// per Apple account: the statuses answer names the account's others, and
// each of them must end with its full history too, never a partial one.
func TestImportBringsInTheAccountsOtherSubscriptions(t *testing.T) {
	t.Parallel()
	h := startImportHarness(t, sim.Options{Seed: 3, Subscribers: 120, DisableRateLimits: true}, Settings{})
	truths := h.simulator.Truth()
	seen := map[string]bool{}
	var listed []sim.SubscriptionTruth
	siblings := 0
	for _, tr := range truths {
		if seen[tr.AccountID] {
			siblings++
			continue
		}
		seen[tr.AccountID] = true
		listed = append(listed, tr)
	}
	if siblings == 0 {
		t.Fatal("seed 3 has no account with two subscriptions: pick another seed")
	}
	run, _, _ := h.importCSV(t, truthCSV(listed, nil))
	// As `import --wait`: the rows, then the subscriptions found beside
	// them (whose history jobs have no row to wait for).
	if f := h.follow(t, run); f.Siblings != int64(siblings) {
		t.Errorf("import --wait counted %d subscriptions found beside the rows, want %d", f.Siblings, siblings)
	}
	jobstest.RequireLedgerEqualsTruth(t, h.deps.Ledger, truths)
	t.Logf("%d subscriptions listed, %d more found through their accounts", len(listed), siblings)
}

// waitFor polls cond until it holds, failing t after 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestImportOneStatusesCallPerAccount: a company file gives every
// subscription its own customer id (as the demo's does) while Apple's
// appAccountToken is the account's, and leaves out the rows without a token
// (their subscriptions are found through their accounts). Every Apple
// account is still asked for its statuses once: rows sharing a token take
// turns and the first answer covers the others, and a subscription found
// through its account's answer is not asked again.
func TestImportOneStatusesCallPerAccount(t *testing.T) {
	t.Parallel()
	h := startImportHarness(t, sim.Options{Seed: 3, Subscribers: 120, DisableRateLimits: true}, Settings{})
	truths := h.simulator.Truth()
	accounts := map[string]bool{}
	var b strings.Builder
	b.WriteString("original_transaction_id,app_account_token,customer_id\n")
	for _, tr := range truths {
		if tr.AppAccountToken == "" {
			continue
		}
		accounts[tr.AccountID] = true
		fmt.Fprintf(&b, "%s,%s,customer-of-%s\n", tr.OriginalTransactionID, tr.AppAccountToken, tr.OriginalTransactionID)
	}
	run, _, _ := h.importCSV(t, b.String())
	h.follow(t, run)
	stats := h.simulator.Stats()
	okStatuses := stats.Endpoint(appstore.Production, appstore.EndpointStatuses).ByStatus[200] +
		stats.Endpoint(appstore.Sandbox, appstore.EndpointStatuses).ByStatus[200]
	if okStatuses > int64(len(accounts)) {
		t.Errorf("%d statuses answers for %d accounts", okStatuses, len(accounts))
	}
	var covered []sim.SubscriptionTruth // every subscription of the accounts listed
	for _, tr := range truths {
		if accounts[tr.AccountID] {
			covered = append(covered, tr)
		}
	}
	jobstest.RequireLedgerEqualsTruth(t, h.deps.Ledger, covered)
	t.Logf("%d statuses answers for %d accounts, %d subscriptions", okStatuses, len(accounts), len(covered))
}
