package ledger_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/applevectors"
	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/jobs/jobstest"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

// signedNotes are n simulator-signed notifications (each with its nested
// transaction and renewal info) as the ledger stores them.
type signedNote struct {
	note  *jobstest.Note
	jws   string
	tx    string // the nested signedTransactionInfo
	ri    string // the nested signedRenewalInfo
	facts ledger.Facts
}

func signNotes(t testing.TB, ca *sim.CA, n int) []signedNote {
	t.Helper()
	v := simVerifier(t, ca)
	out := make([]signedNote, n)
	for i := range out {
		note := jobstest.NewNote(appstore.Sandbox, time.Now().Add(-time.Hour))
		jws := note.Sign(t, ca)
		vn, err := v.VerifyNotificationDeep(jws)
		if err != nil {
			t.Fatal(err)
		}
		d := vn.Payload.Data
		out[i] = signedNote{note: note, jws: jws, tx: d.SignedTransactionInfo, ri: d.SignedRenewalInfo,
			facts: ledger.NotificationFacts(vn.Payload, vn.Transaction, d.SignedTransactionInfo, vn.RenewalInfo, d.SignedRenewalInfo)}
	}
	return out
}

func simVerifier(t testing.TB, ca *sim.CA) *appstore.Verifier {
	t.Helper()
	v, err := appstore.NewVerifier(appstore.VerifierOptions{RootCertificates: [][]byte{ca.RootDER()},
		Environment: appstore.Sandbox, BundleID: sim.DefaultBundleID, AppAppleID: sim.DefaultAppAppleID})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func count(t *testing.T, pool *pgxpool.Pool, query string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// TestStoredJWSRebuildExactly stores simulator-signed notifications,
// transactions and renewal info and Apple's vectors through the ledger's
// writes: every row is compact (one chain row for all), every read gives
// back Apple's bytes, the SQL rebuild agrees, and the rebuilt JWS verify.
func TestStoredJWSRebuildExactly(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	l := ledger.New(pool)
	ctx := context.Background()
	ca, err := sim.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	notes := signNotes(t, ca, 3)
	for _, n := range notes {
		if _, err := l.RecordNotification(ctx, ledger.Notification{UUID: n.note.N.NotificationUUID, Type: "DID_RENEW",
			Environment: appstore.Sandbox, SignedPayload: n.jws, Source: ledger.SourceWebhook}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Apply(ctx, n.facts); err != nil {
			t.Fatal(err)
		}
	}
	// Apple's vectors, as a transaction and a renewal info of their own.
	appleTx := strings.TrimSpace(applevectors.Text(t, "tests/resources/mock_signed_data/transactionInfo"))
	appleRI := strings.TrimSpace(applevectors.Text(t, "tests/resources/mock_signed_data/renewalInfo"))
	appleNote := strings.TrimSpace(applevectors.Text(t, "tests/resources/mock_signed_data/testNotification"))
	_, err = l.Apply(ctx, ledger.Facts{
		Transactions: []ledger.SignedTransaction{{JWS: appleTx, Payload: &appstore.TransactionPayload{
			TransactionID: "apple-1", OriginalTransactionID: "apple-0", Type: "Auto-Renewable Subscription", SignedDate: 1}}},
		RenewalInfos: []ledger.SignedRenewalInfo{{JWS: appleRI, Payload: &appstore.RenewalInfoPayload{
			OriginalTransactionID: "apple-0", SignedDate: 1}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.KeepAside(ctx, ledger.KeptAside{UUID: "00000000-0000-4000-8000-0000000000a1", Reason: "INVALID_APP_IDENTIFIER",
		SignedPayload: appleNote}); err != nil {
		t.Fatal(err)
	}

	for _, q := range []string{
		`SELECT count(*) FROM transactions t WHERE jws_chain IS NULL OR ` + holdsStoredCertificate("t.jws"),
		`SELECT count(*) FROM renewal_infos WHERE jws_chain IS NULL`,
		`SELECT count(*) FROM notifications n WHERE payload_chain IS NULL OR signed_payload_decoded IS NULL
			OR ` + holdsStoredCertificate("n.signed_payload_decoded"),
		`SELECT count(*) FROM kept_aside_notifications WHERE payload_chain IS NULL`,
	} {
		if n := count(t, pool, q); n != 0 {
			t.Errorf("%d rows not compact: %s", n, q)
		}
	}
	// The simulator's chain and Apple's two test chains.
	if n := count(t, pool, `SELECT count(*) FROM certificate_chains`); n != 3 {
		t.Errorf("%d certificate chains stored, want 3", n)
	}

	v := simVerifier(t, ca)
	for _, n := range notes {
		stored, err := l.NotificationByUUID(ctx, n.note.N.NotificationUUID)
		if err != nil || stored.SignedPayload != n.jws {
			t.Fatalf("notification %s: rebuilt differs (%v)", n.note.N.NotificationUUID, err)
		}
		if _, err := v.VerifyNotificationDeep(stored.SignedPayload); err != nil {
			t.Errorf("rebuilt notification does not verify: %v", err)
		}
		tx, err := l.TransactionJWS(ctx, n.note.Tx.TransactionID)
		if err != nil || tx != n.tx {
			t.Fatalf("transaction %s: rebuilt differs (%v)", n.note.Tx.TransactionID, err)
		}
		if _, err := v.VerifyTransaction(tx); err != nil {
			t.Errorf("rebuilt transaction does not verify: %v", err)
		}
		ri, err := l.RenewalInfoJWS(ctx, n.note.RI.OriginalTransactionID)
		if err != nil || ri != n.ri {
			t.Fatalf("renewal info %s: rebuilt differs (%v)", n.note.RI.OriginalTransactionID, err)
		}
		all, err := l.SubscriptionTransactionJWS(ctx, n.note.Tx.OriginalTransactionID)
		if err != nil || len(all) != 1 || all[0] != n.tx {
			t.Fatalf("transactions of %s: %d, %v", n.note.Tx.OriginalTransactionID, len(all), err)
		}
		if got := sqlJWS(t, pool, "transactions", "transaction_id", n.note.Tx.TransactionID); got != n.tx {
			t.Errorf("storesync_jws of transaction %s differs from Apple's", n.note.Tx.TransactionID)
		}
	}
	if got, err := l.TransactionJWS(ctx, "apple-1"); err != nil || got != appleTx {
		t.Errorf("Apple's transaction vector: rebuilt differs (%v)", err)
	}
	if got, err := l.RenewalInfoJWS(ctx, "apple-0"); err != nil || got != appleRI {
		t.Errorf("Apple's renewal info vector: rebuilt differs (%v)", err)
	}
	if got := sqlJWS(t, pool, "renewal_infos", "original_transaction_id", "apple-0"); got != appleRI {
		t.Error("storesync_jws of Apple's renewal info vector differs")
	}
	kept, err := l.KeptAsideNotifications(ctx, "", 10)
	if err != nil || len(kept) != 1 || kept[0].SignedPayload != appleNote {
		t.Errorf("kept-aside Apple notification vector: rebuilt differs (%d, %v)", len(kept), err)
	}
	if _, err := l.TransactionJWS(ctx, "nope"); err != ledger.ErrNotFound {
		t.Errorf("unknown transaction: %v, want ErrNotFound", err)
	}
}

func sqlJWS(t *testing.T, pool *pgxpool.Pool, table, key, id string) string {
	t.Helper()
	var s string
	err := pool.QueryRow(context.Background(), `SELECT storesync_jws(jws, jws_chain) FROM `+table+` WHERE `+key+` = $1`, id).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSameMillisecondTieBreakUnchanged: of two versions of a transaction
// signed in the same millisecond, the greater JWS text wins whatever the
// order and stored form, as before compaction.
func TestSameMillisecondTieBreakUnchanged(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	l := ledger.New(pool)
	ctx := context.Background()
	ca, err := sim.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	p := &appstore.TransactionPayload{TransactionID: "t1", OriginalTransactionID: "t1", Type: "Auto-Renewable Subscription", SignedDate: 5}
	var jws []string
	for _, price := range []int{1, 2} {
		s, err := ca.Sign(map[string]any{"transactionId": "t1", "price": price, "signedDate": 5})
		if err != nil {
			t.Fatal(err)
		}
		jws = append(jws, s)
	}
	want := max(jws[0], jws[1])
	for _, order := range [][]string{{jws[0], jws[1]}, {jws[1], jws[0]}} {
		if _, err := pool.Exec(ctx, `DELETE FROM transactions`); err != nil {
			t.Fatal(err)
		}
		for _, j := range order {
			if _, err := l.Apply(ctx, ledger.Facts{Transactions: []ledger.SignedTransaction{{Payload: p, JWS: j}}}); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := l.TransactionJWS(ctx, "t1"); err != nil || got != want {
			t.Errorf("order %.12q…: kept the lesser JWS (%v)", order[0], err)
		}
	}
}

// holdsStoredCertificate is SQL true when column still holds a certificate
// of a stored chain (looking for "MII", a certificate's usual start, would
// also match a signature's or payload's base64 by chance).
func holdsStoredCertificate(column string) string {
	return `EXISTS (SELECT 1 FROM certificate_chains c, jsonb_array_elements_text(c.chain::jsonb) AS cert
		WHERE strpos(` + column + `, cert) > 0)`
}
