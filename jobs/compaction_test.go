package jobs

import (
	"context"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/jobs/jobstest"
	"github.com/storesync/storesync/ledger"
)

// TestCompactionJobOnSimulatorLedger imports the simulator's population
// and stores some of its notifications, turns every row back into the
// form stored before migration 011 (chain inside), and compacts it with
// the River job, cancelled mid-way and enqueued again: every JWS reads
// back byte for byte before and after and still verifies, and the ledger
// still equals the simulator's truth.
func TestCompactionJobOnSimulatorLedger(t *testing.T) {
	t.Parallel()
	h := startImportHarness(t, sim.Options{Seed: 11, Subscribers: 40, DisableRateLimits: true},
		Settings{Compaction: CompactionSettings{BatchSize: 5, SliceDuration: 300 * time.Millisecond}})
	ctx := context.Background()
	l := h.deps.Ledger
	run, _, _ := h.importCSV(t, truthCSV(h.simulator.Truth(), nil))
	if p := h.waitRun(t, run, 3*time.Minute); p.Failed > 0 {
		t.Fatalf("import: %+v", p)
	}
	var uuids []string
	for range 6 {
		note := jobstest.NewNote(appstore.Production, h.simulator.Now())
		if _, err := l.RecordNotification(ctx, ledger.Notification{UUID: note.N.NotificationUUID, Type: "DID_RENEW",
			SignedPayload: note.Sign(t, h.simulator.CA()), Source: ledger.SourceWebhook}); err != nil {
			t.Fatal(err)
		}
		uuids = append(uuids, note.N.NotificationUUID)
	}

	// Apple's bytes, as the ledger gives them back now.
	want := map[string]string{}
	rows, err := h.pool.Query(ctx, `SELECT transaction_id FROM transactions`)
	if err != nil {
		t.Fatal(err)
	}
	var txIDs []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		txIDs = append(txIDs, id)
	}
	if rows.Close(); len(txIDs) < 40 {
		t.Fatalf("%d transactions imported, want at least 40", len(txIDs))
	}
	for _, id := range txIDs {
		if want["tx "+id], err = l.TransactionJWS(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range uuids {
		n, err := l.NotificationByUUID(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		want["n "+id] = n.SignedPayload
	}
	// Back to the old forms: chains inside every row.
	for _, q := range []string{
		`UPDATE transactions SET jws = storesync_jws(jws, jws_chain), jws_chain = NULL`,
		`UPDATE renewal_infos SET jws = storesync_jws(jws, jws_chain), jws_chain = NULL`,
	} {
		if _, err := h.pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range uuids {
		if _, err := h.pool.Exec(ctx, `UPDATE notifications SET signed_payload = $2, signed_payload_decoded = NULL,
			payload_chain = NULL WHERE notification_uuid = $1`, id, want["n "+id]); err != nil {
			t.Fatal(err)
		}
	}
	requireSameJWS := func(when string) {
		t.Helper()
		for _, id := range txIDs {
			got, err := l.TransactionJWS(ctx, id)
			if err != nil || got != want["tx "+id] {
				t.Fatalf("%s: transaction %s differs (%v)", when, id, err)
			}
			_, verr := h.deps.Verifier.VerifyTransaction(got)
			if verr != nil {
				_, verr = h.deps.Verifier.WithEnvironment(appstore.Sandbox).VerifyTransaction(got)
			}
			if verr != nil {
				t.Fatalf("%s: transaction %s no longer verifies: %v", when, id, verr)
			}
		}
		for _, id := range uuids {
			if n, err := l.NotificationByUUID(ctx, id); err != nil || n.SignedPayload != want["n "+id] {
				t.Fatalf("%s: notification %s differs (%v)", when, id, err)
			}
		}
	}
	requireSameJWS("before compaction")

	if _, err := l.StartCompactionPass(ctx); err != nil {
		t.Fatal(err)
	}
	job, err := EnqueueCompaction(ctx, h.client, l, false)
	if err != nil || job == nil {
		t.Fatalf("enqueueing: %v %v", job, err)
	}
	// Cancel it once it has committed some batches.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
		p, err := l.CompactionProgress(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if scanned, _, _ := p.Totals(); scanned > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the compaction job did not start within a minute")
		}
	}
	if _, err := h.client.JobCancel(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	if p, err := l.CompactionProgress(ctx); err != nil || p.Done() {
		t.Logf("the pass finished before the cancel (%v): the resume below has nothing left", err)
	}
	requireSameJWS("after a cancelled compaction")

	job, err = EnqueueCompaction(ctx, h.client, l, false)
	if err != nil {
		t.Fatal(err)
	}
	if job != nil {
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if _, err := WaitCompaction(wctx, h.client, l, job.ID, 20*time.Millisecond, nil); err != nil {
			t.Fatal(err)
		}
	}
	p, err := l.CompactionProgress(ctx)
	if err != nil || !p.Done() {
		t.Fatalf("pass not done: %+v %v", p, err)
	}
	for _, q := range []string{
		`SELECT count(*) FROM transactions WHERE jws_chain IS NULL`,
		`SELECT count(*) FROM renewal_infos WHERE jws_chain IS NULL`,
		`SELECT count(*) FROM notifications WHERE payload_chain IS NULL`,
	} {
		var n int64
		if err := h.pool.QueryRow(ctx, q).Scan(&n); err != nil || n != 0 {
			t.Errorf("%d rows not compacted (%v): %s", n, err, q)
		}
	}
	requireSameJWS("after compaction")
	jobstest.RequireLedgerEqualsTruth(t, l, h.simulator.Truth())
	if again, err := EnqueueCompaction(ctx, h.client, l, false); err != nil || again != nil {
		t.Errorf("a finished pass enqueued job %v (%v), want none", again, err)
	}
}
