package ledger_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/storesync/storesync/appstore/applevectors"
	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

// legacyLedger is what a ledger written before migration 011 holds: every
// JWS with its chain, notifications in both older forms (as sent, and
// 005's decoded payload), and one JWS that cannot be compacted exactly.
type legacyLedger struct {
	transactions  map[string]string // transaction_id → JWS
	renewals      map[string]string // original_transaction_id → JWS
	notifications map[string]string // notification_uuid → signedPayload
	keptAside     map[string]string
}

// nonCanonical is a JWS whose header segment is padded: it must be stored
// and given back as it came.
var nonCanonical = base64.URLEncoding.EncodeToString([]byte(`{"alg":"ES256","x5c":["QUJDR"]}`)) + ".cGF5bG9hZA.c2ln"

func writeLegacyLedger(t *testing.T, pool *pgxpool.Pool, ca *sim.CA, n int) legacyLedger {
	t.Helper()
	ctx := context.Background()
	lg := legacyLedger{map[string]string{}, map[string]string{}, map[string]string{}, map[string]string{}}
	batch := &pgx.Batch{}
	for i, note := range signNotes(t, ca, n) {
		id := note.note.Tx.TransactionID
		lg.transactions[id], lg.renewals[id], lg.notifications[note.note.N.NotificationUUID] = note.tx, note.ri, note.jws
		batch.Queue(`INSERT INTO transactions (transaction_id, original_transaction_id, jws) VALUES ($1, $1, $2)`, id, note.tx)
		batch.Queue(`INSERT INTO renewal_infos (original_transaction_id, auto_renew_status, jws) VALUES ($1, true, $2)`, id, note.ri)
		if i%2 == 0 { // as sent (before 005)
			batch.Queue(`INSERT INTO notifications (notification_uuid, notification_type, signed_payload, source)
				VALUES ($1, 'DID_RENEW', $2, 'webhook')`, note.note.N.NotificationUUID, note.jws)
		} else { // 005's decoded payload
			parts := strings.Split(note.jws, ".")
			payload, err := base64.RawURLEncoding.DecodeString(parts[1])
			if err != nil {
				t.Fatal(err)
			}
			batch.Queue(`INSERT INTO notifications (notification_uuid, notification_type, signed_payload_decoded, source)
				VALUES ($1, 'DID_RENEW', $2, 'webhook')`, note.note.N.NotificationUUID, parts[0]+"."+string(payload)+"."+parts[2])
		}
	}
	lg.transactions["noncanonical"] = nonCanonical
	batch.Queue(`INSERT INTO transactions (transaction_id, original_transaction_id, jws) VALUES ('noncanonical', 'noncanonical', $1)`, nonCanonical)
	for i, name := range []string{"testNotification", "wrongBundleId", "missingX5CHeaderClaim"} {
		uuid := fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1)
		lg.keptAside[uuid] = strings.TrimSpace(applevectors.Text(t, "tests/resources/mock_signed_data/"+name))
		batch.Queue(`INSERT INTO kept_aside_notifications (notification_uuid, reason, signed_payload)
			VALUES ($1, 'INVALID_APP_IDENTIFIER', $2)`, uuid, lg.keptAside[uuid])
	}
	if err := pool.SendBatch(ctx, batch).Close(); err != nil {
		t.Fatal(err)
	}
	return lg
}

// requireLedgerGivesBack reads every stored JWS through the ledger and
// requires Apple's exact bytes.
func requireLedgerGivesBack(t *testing.T, l *ledger.Ledger, lg legacyLedger, when string) {
	t.Helper()
	ctx := context.Background()
	for id, want := range lg.transactions {
		if got, err := l.TransactionJWS(ctx, id); err != nil || got != want {
			t.Fatalf("%s: transaction %s differs (%v)", when, id, err)
		}
	}
	for id, want := range lg.renewals {
		if got, err := l.RenewalInfoJWS(ctx, id); err != nil || got != want {
			t.Fatalf("%s: renewal info %s differs (%v)", when, id, err)
		}
	}
	for id, want := range lg.notifications {
		if got, err := l.NotificationByUUID(ctx, id); err != nil || got.SignedPayload != want {
			t.Fatalf("%s: notification %s differs (%v)", when, id, err)
		}
	}
	kept, err := l.KeptAsideNotifications(ctx, "", 100)
	if err != nil || len(kept) != len(lg.keptAside) {
		t.Fatalf("%s: %d kept aside (%v), want %d", when, len(kept), err, len(lg.keptAside))
	}
	for _, k := range kept {
		if k.SignedPayload != lg.keptAside[k.UUID] {
			t.Fatalf("%s: kept-aside notification %s differs", when, k.UUID)
		}
	}
}

// TestCompactionCancelledAndResumedLosesNothing compacts a legacy ledger
// online: batches rolled back (a crash) and cancelled at random moments
// change nothing, two compactions running at once finish the pass between
// them, every JWS reads back byte for byte before, during and after, and a
// second pass finds nothing to do.
func TestCompactionCancelledAndResumedLosesNothing(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	l := ledger.New(pool)
	ctx := context.Background()
	ca, err := sim.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	const notes = 24
	lg := writeLegacyLedger(t, pool, ca, notes)
	if started, err := l.StartCompactionPass(ctx); err != nil || !started {
		t.Fatalf("starting a pass on a new database: %v %v, want started", started, err)
	}
	if started, err := l.StartCompactionPass(ctx); err != nil || started {
		t.Fatalf("starting a pass while one is unfinished: %v %v, want not started", started, err)
	}
	requireLedgerGivesBack(t, l, lg, "before compaction")

	// A crash: the batches' transaction never commits.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := l.WithTx(tx).CompactBatch(ctx, 5); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if p, err := l.CompactionProgress(ctx); err != nil || p.Done() {
		t.Fatalf("after a rolled-back batch: %+v %v", p, err)
	} else if s, c, k := p.Totals(); s+c+k != 0 {
		t.Fatalf("a rolled-back batch left progress: scanned %d, compacted %d, kept %d", s, c, k)
	}
	if n := count(t, pool, `SELECT count(*) FROM transactions WHERE jws_chain IS NOT NULL`); n != 0 {
		t.Fatalf("a rolled-back batch compacted %d transactions", n)
	}

	// Cancelled at every moment of a batch, over and over.
	for i := range 30 {
		cctx, cancel := context.WithTimeout(ctx, time.Duration(i)*300*time.Microsecond)
		_, _ = l.CompactBatch(cctx, 4)
		cancel()
	}
	requireLedgerGivesBack(t, l, lg, "mid-compaction")

	// Two compactions at once finish the pass.
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				done, err := l.CompactBatch(ctx, 3)
				if err != nil || done {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	requireLedgerGivesBack(t, l, lg, "after compaction")

	p, err := l.CompactionProgress(ctx)
	if err != nil || !p.Done() {
		t.Fatalf("pass not done: %+v %v", p, err)
	}
	// Every row walked once; all compacted but the padded JWS and Apple's
	// vector without x5c.
	rows := int64(2*notes + 1 + notes + len(lg.keptAside))
	if s, c, k := p.Totals(); s != rows || c != rows-2 || k != 2 {
		t.Errorf("pass totals: scanned %d compacted %d kept %d, want %d, %d, 2", s, c, k, rows, rows-2)
	}
	// A header still carrying its x5c chain is kilobytes long (three
	// certificates); a compacted one is tens of bytes. (Looking for "MII"
	// anywhere in the JWS also matched base64 of payloads and signatures.)
	for _, q := range []string{
		`SELECT count(*) FROM transactions WHERE jws_chain IS NULL AND transaction_id <> 'noncanonical'`,
		`SELECT count(*) FROM renewal_infos WHERE jws_chain IS NULL`,
		`SELECT count(*) FROM notifications WHERE payload_chain IS NULL OR signed_payload_decoded IS NULL`,
		`SELECT count(*) FROM transactions WHERE length(split_part(jws, '.', 1)) > 1000 AND transaction_id <> 'noncanonical'`,
	} {
		if n := count(t, pool, q); n != 0 {
			t.Errorf("%d rows left uncompacted: %s", n, q)
		}
	}

	// A second pass: nothing left to compact.
	firstPass := p[0].Pass
	if started, err := l.StartCompactionPass(ctx); err != nil || !started {
		t.Fatalf("second pass: %v %v", started, err)
	}
	for done := false; !done; {
		if done, err = l.CompactBatch(ctx, 0); err != nil {
			t.Fatal(err)
		}
	}
	p, err = l.CompactionProgress(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s, c, k := p.Totals(); s != rows || c != 0 || k != 2 || p[0].Pass != firstPass+1 {
		t.Errorf("second pass: scanned %d compacted %d kept %d (pass %d), want %d, 0, 2 (pass %d)", s, c, k, p[0].Pass, rows, firstPass+1)
	}
	requireLedgerGivesBack(t, l, lg, "after a second pass")
}
