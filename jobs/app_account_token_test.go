package jobs

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/sim"
)

// --set-app-account-token against the simulator: the dry run calls
// nothing; the jobs set the company's tokens Apple lacks, record each
// change, and leave the ledger carrying the token; a second plan has
// nothing to do; a different token at Apple is never overwritten without
// overwrite.
func TestSetAppAccountTokens(t *testing.T) {
	t.Parallel()
	h := startImportHarness(t, sim.Options{Seed: 3, Subscribers: 80, DisableRateLimits: true}, Settings{})
	ctx := context.Background()
	truths := map[string]sim.SubscriptionTruth{}
	for _, tr := range h.simulator.Truth() {
		truths[tr.OriginalTransactionID] = tr
	}
	var b strings.Builder
	b.WriteString("original_transaction_id,app_account_token,customer_id\n")
	wantSet := map[string]string{}
	var withToken string
	for _, row := range h.simulator.ImportRows(appstore.Production) {
		tr := truths[row.OriginalTransactionID]
		fmt.Fprintf(&b, "%s,%s,%s\n", row.OriginalTransactionID, row.AppAccountToken, tr.AccountID)
		switch {
		case tr.AppAccountToken == "" && tr.InAppOwnershipType == "PURCHASED":
			wantSet[row.OriginalTransactionID] = row.AppAccountToken
		case tr.AppAccountToken != "" && withToken == "":
			withToken = row.OriginalTransactionID
		}
	}
	if len(wantSet) == 0 || withToken == "" {
		t.Fatal("seed 3 has no production subscription without a token at Apple, or none with one: pick another seed")
	}
	file := b.String()
	// A row wanting another token for a subscription Apple has one for.
	other := "00000000-0000-4000-8000-0000000000aa"
	conflicting := fmt.Sprintf("original_transaction_id,app_account_token\n%s,%s\n", withToken, other)

	run, _, _ := h.importCSV(t, file)
	h.waitRun(t, run, time.Minute)
	waitImportJobs(t, h, time.Minute)

	calls := func() int64 {
		for _, e := range h.simulator.Stats().Endpoints {
			if e.Environment == appstore.Production && e.Endpoint == appstore.EndpointAppAccountToken {
				return e.Requests
			}
		}
		return 0
	}
	plans, err := PlanAppAccountTokens(ctx, h.deps.Ledger, strings.NewReader(file), false)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range plans {
		if p.Action == TokenSet {
			got[p.OriginalTransactionID] = p.Token
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(wantSet) {
		t.Fatalf("plan sets %v\nwant %v", got, wantSet)
	}
	if calls() != 0 {
		t.Fatal("planning called Apple")
	}

	// Apple signs every answer with its current time; the simulator's
	// clock only moves when told, so move it, as time does.
	h.simulator.Advance(time.Second)
	n, err := EnqueueAppAccountTokens(ctx, h.client, plans, "test@ops")
	if err != nil || n != len(wantSet) {
		t.Fatalf("enqueued %d, %v; want %d", n, err, len(wantSet))
	}
	waitKind(t, h, "set_app_account_token", time.Minute)
	if c := calls(); c != int64(len(wantSet)) {
		t.Fatalf("%d Set App Account Token calls, want %d", c, len(wantSet))
	}
	// The jobs re-read what they changed; the simulator signs every answer
	// of one simulated instant with the same signedDate, so when two jobs
	// of one account interleave, the ledger may keep the earlier of two
	// equally dated answers. A later re-read (Apple's clock has moved, as
	// it always has in production) carries the token.
	h.simulator.Advance(time.Second)
	for otid := range wantSet {
		if _, _, err := h.deps.syncStatuses(ctx, otid); err != nil {
			t.Fatal(err)
		}
	}
	for otid, token := range wantSet {
		if tr, _ := h.simulator.TruthOf(otid); tr.AppAccountToken != token {
			t.Fatalf("%s: Apple's token %q, want %q", otid, tr.AppAccountToken, token)
		}
		s, err := h.deps.Ledger.Subscription(ctx, otid)
		if err != nil || s.AppAccountToken != token {
			t.Fatalf("%s: the ledger's token %q (%v), want %q", otid, s.AppAccountToken, err, token)
		}
		ch, err := h.deps.Ledger.AppAccountTokenChanges(ctx, otid)
		if err != nil || len(ch) != 1 || ch[0].OldToken != "" || ch[0].NewToken != token || ch[0].Actor != "test@ops" || ch[0].AppliedAt == nil {
			t.Fatalf("%s: changes %+v, %v", otid, ch, err)
		}
	}

	// A second run has nothing to do.
	plans, err = PlanAppAccountTokens(ctx, h.deps.Ledger, strings.NewReader(file), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range plans {
		if p.Action == TokenSet || p.Action == TokenOverwrite {
			t.Fatalf("second run would change %+v", p)
		}
	}
	if n, err := EnqueueAppAccountTokens(ctx, h.client, plans, "test@ops"); n != 0 || err != nil {
		t.Fatalf("second run enqueued %d, %v", n, err)
	}

	// Another token at Apple: skipped without overwrite.
	plans, err = PlanAppAccountTokens(ctx, h.deps.Ledger, strings.NewReader(conflicting), false)
	if err != nil || len(plans) != 1 || plans[0].Action != TokenSkipped || !strings.Contains(plans[0].Reason, "--overwrite-app-account-token") {
		t.Fatalf("conflicting token: %+v, %v", plans, err)
	}
	plans, err = PlanAppAccountTokens(ctx, h.deps.Ledger, strings.NewReader(conflicting), true)
	if err != nil || len(plans) != 1 || plans[0].Action != TokenOverwrite {
		t.Fatalf("conflicting token with overwrite: %+v, %v", plans, err)
	}

	// Derived tokens: stable UUIDv5s.
	if a, b := DeriveAppAccountToken("cust-1"), DeriveAppAccountToken("cust-1"); a != b || a[14] != '5' || DeriveAppAccountToken("cust-2") == a {
		t.Fatalf("derived tokens %s %s", a, b)
	}
}

// waitKind waits until no job of kind is left to work.
func waitKind(t *testing.T, h *importHarness, kind string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var pending int64
		if err := h.pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE kind = $1
			AND state NOT IN ('completed', 'cancelled', 'discarded')`, kind).Scan(&pending); err != nil {
			t.Fatal(err)
		}
		if pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d %s jobs still pending", pending, kind)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
