package ledger_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

// genFacts builds a history of several subscriptions as single facts:
// renewals, a transaction re-signed later with a revocation, an upgrade,
// several renewal-info versions and status statements, as the webhook,
// backfill, history paging and statuses calls would deliver them.
func genFacts(r *rand.Rand) []ledger.Facts {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ms := func(t time.Time) appstore.Millis { return appstore.MillisOf(t) }
	var out []ledger.Facts
	for s := range 3 {
		otid := fmt.Sprintf("20000000000%02d", s)
		token := fmt.Sprintf("6f1c0000-0000-4000-8000-0000000000%02d", s)
		n := 4 + r.IntN(6)
		// Set App Account Token: from tokenSetAt on, everything Apple signs
		// for subscription 0 carries tokenAfter (mid-history), and for
		// subscription 1 too (after its last purchase: only the renewal
		// info appended below shows it).
		tokenAfter := fmt.Sprintf("7e2d0000-0000-4000-8000-0000000000%02d", s)
		tokenSetAt := base.AddDate(0, n/2, -5)
		if s == 1 {
			tokenSetAt = base.AddDate(0, n-1, 45)
		}
		tokenAt := func(signed time.Time) string {
			if s != 2 && !signed.Before(tokenSetAt) {
				return tokenAfter
			}
			return token
		}
		for i := range n {
			purchase := base.AddDate(0, i, 0)
			tx := &appstore.TransactionPayload{
				TransactionID: fmt.Sprintf("3%011d%02d", i, s), OriginalTransactionID: otid,
				ProductID: "com.example.monthly", SubscriptionGroupIdentifier: "2157",
				PurchaseDate: ms(purchase), OriginalPurchaseDate: ms(base), ExpiresDate: ms(purchase.AddDate(0, 1, 0)),
				Type: "Auto-Renewable Subscription", Environment: appstore.Production,
				SignedDate: ms(purchase.Add(time.Second)), InAppOwnershipType: "PURCHASED",
			}
			if s != 2 {
				tx.AppAccountToken = tokenAt(purchase.Add(time.Second))
			}
			if i == n-1 && s == 1 { // the last one of subscription 1 is an upgrade
				tx.ProductID = "com.example.monthly.pro"
			}
			out = append(out, ledger.Facts{Transactions: []ledger.SignedTransaction{{Payload: tx, JWS: fmt.Sprintf("jws-%s-%d", tx.TransactionID, tx.SignedDate)}}})
			// The same transaction fetched again later by history paging (re-signed).
			again := *tx
			again.SignedDate = ms(purchase.Add(40 * 24 * time.Hour))
			if s != 2 {
				again.AppAccountToken = tokenAt(purchase.Add(40 * 24 * time.Hour))
			}
			out = append(out, ledger.Facts{Transactions: []ledger.SignedTransaction{{Payload: &again, JWS: fmt.Sprintf("jws-%s-%d", again.TransactionID, again.SignedDate)}}})
			if i == n-1 && s == 0 { // refunded later: a newer version with a revocation
				rev := *tx
				rev.RevocationDate = ms(purchase.Add(72 * time.Hour))
				one := appstore.Int(0)
				rev.RevocationReason = &one
				rev.SignedDate = ms(purchase.Add(72 * time.Hour))
				out = append(out, ledger.Facts{
					Transactions: []ledger.SignedTransaction{{Payload: &rev, JWS: fmt.Sprintf("jws-%s-%d", rev.TransactionID, rev.SignedDate)}},
					Statuses:     []ledger.StatusObservation{{OriginalTransactionID: otid, Status: 5, SignedDate: rev.SignedDate}},
				})
			}
			ri := &appstore.RenewalInfoPayload{
				OriginalTransactionID: otid, AutoRenewProductID: tx.ProductID, ProductID: tx.ProductID,
				AutoRenewStatus: appstore.Int(1 - i%2), SignedDate: ms(purchase.Add(2 * time.Second)), Environment: appstore.Production,
			}
			if s == 1 {
				ri.AppAccountToken = tokenAt(purchase.Add(2 * time.Second))
			}
			out = append(out, ledger.Facts{RenewalInfos: []ledger.SignedRenewalInfo{{Payload: ri, JWS: fmt.Sprintf("ri-%s-%d", otid, ri.SignedDate)}}})
			if s != 2 {
				out = append(out, ledger.Facts{Statuses: []ledger.StatusObservation{{OriginalTransactionID: otid, Status: 1 + i%4, SignedDate: ms(purchase.Add(3 * time.Second))}}})
			}
			if s == 1 && i == n-1 {
				// Renewal info signed after Set App Account Token: newer
				// than every transaction, so its token wins.
				later := *ri
				later.SignedDate = ms(tokenSetAt.Add(time.Hour))
				later.AppAccountToken = tokenAt(tokenSetAt.Add(time.Hour))
				out = append(out, ledger.Facts{RenewalInfos: []ledger.SignedRenewalInfo{{Payload: &later, JWS: fmt.Sprintf("ri-%s-%d", otid, later.SignedDate)}}})
			}
		}
	}
	return out
}

// genTokenAfter is the appAccountToken genFacts sets at Apple for
// subscription s (0 and 1) part-way through its history.
func genTokenAfter(s int) string { return fmt.Sprintf("7e2d0000-0000-4000-8000-0000000000%02d", s) }

type ledgerDump struct {
	Subscriptions []ledger.Subscription
	Rows          []string
}

func dump(t *testing.T, l *ledger.Ledger) ledgerDump {
	t.Helper()
	ctx := context.Background()
	var d ledgerDump
	rows, err := l.Pool().Query(ctx, `SELECT original_transaction_id FROM subscriptions ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		s, err := l.Subscription(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		d.Subscriptions = append(d.Subscriptions, *s)
	}
	for _, q := range []string{
		`SELECT transaction_id || '|' || signed_date || '|' || jws || '|' || coalesce(revocation_date::text, '') FROM transactions ORDER BY 1`,
		`SELECT original_transaction_id || '|' || signed_date || '|' || auto_renew_status FROM renewal_infos ORDER BY 1`,
		`SELECT original_transaction_id || '|' || status || '|' || observed_status || '|' || status_signed_date || '|' || last_signed_date FROM subscriptions ORDER BY 1`,
	} {
		rows, err := l.Pool().Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			d.Rows = append(d.Rows, s)
		}
	}
	return d
}

// TestApplyIsOrderIndependent applies the same facts, chunked and with
// duplicates, in many random orders and requires the same ledger each time.
func TestApplyIsOrderIndependent(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	l := ledger.New(pool)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	facts := genFacts(r)

	applyAll := func(order []ledger.Facts) {
		for len(order) > 0 {
			k := 1 + r.IntN(min(4, len(order)))
			var chunk ledger.Facts
			for _, f := range order[:k] {
				chunk.Add(f)
			}
			if _, err := l.Apply(ctx, chunk); err != nil {
				t.Fatal(err)
			}
			order = order[k:]
		}
	}
	applyAll(facts)
	want := dump(t, l)
	if len(want.Subscriptions) != 3 {
		t.Fatalf("want 3 subscriptions, got %d", len(want.Subscriptions))
	}
	if got := want.Subscriptions[0].Status; got != "revoked" {
		t.Fatalf("subscription 0 should end revoked (latest statement), got %s", got)
	}
	if got := want.Subscriptions[1].ProductID; got != "com.example.monthly.pro" {
		t.Fatalf("subscription 1 should end on the upgraded product, got %s", got)
	}
	// The token Apple signed last wins, from a transaction (0) or from
	// renewal info signed after the last purchase (1); none is none (2).
	for s, tok := range []string{genTokenAfter(0), genTokenAfter(1), ""} {
		if got := want.Subscriptions[s].AppAccountToken; got != tok {
			t.Fatalf("subscription %d: appAccountToken %q, want %q (the latest signed)", s, got, tok)
		}
	}

	const orders = 200
	for i := range orders {
		if _, err := pool.Exec(ctx, "TRUNCATE subscriptions, transactions, renewal_infos"); err != nil {
			t.Fatal(err)
		}
		order := append([]ledger.Facts(nil), facts...)
		// Duplicates: some facts arrive twice (webhook retry + backfill).
		for range 5 {
			order = append(order, facts[r.IntN(len(facts))])
		}
		r.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		applyAll(order)
		if got := dump(t, l); !reflect.DeepEqual(got, want) {
			t.Fatalf("order %d gave a different ledger:\n got %+v\nwant %+v", i, got, want)
		}
	}
}

func TestOlderStateNeverOverwritesNewer(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	l := ledger.New(pool)
	ctx := context.Background()
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	otid := "1000000000000001"
	newer := ledger.Facts{
		RenewalInfos: []ledger.SignedRenewalInfo{{Payload: &appstore.RenewalInfoPayload{OriginalTransactionID: otid, AutoRenewStatus: 0, SignedDate: appstore.MillisOf(base.Add(time.Hour))}, JWS: "new"}},
		Statuses:     []ledger.StatusObservation{{OriginalTransactionID: otid, Status: 2, SignedDate: appstore.MillisOf(base.Add(time.Hour))}},
	}
	older := ledger.Facts{
		RenewalInfos: []ledger.SignedRenewalInfo{{Payload: &appstore.RenewalInfoPayload{OriginalTransactionID: otid, AutoRenewStatus: 1, SignedDate: appstore.MillisOf(base)}, JWS: "old"}},
		Statuses:     []ledger.StatusObservation{{OriginalTransactionID: otid, Status: 1, SignedDate: appstore.MillisOf(base)}},
	}
	if _, err := l.Apply(ctx, newer); err != nil {
		t.Fatal(err)
	}
	changes, err := l.Apply(ctx, older)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0].Changed() {
		t.Fatalf("older facts changed the ledger: %+v", changes)
	}
	s, err := l.Subscription(ctx, otid)
	if err != nil {
		t.Fatal(err)
	}
	if s.Status != "expired" || s.AutoRenewStatus == nil || *s.AutoRenewStatus {
		t.Fatalf("state regressed: status %s autoRenew %v", s.Status, s.AutoRenewStatus)
	}
}

func TestApplyTwiceChangesNothingAndKeepsJWS(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	l := ledger.New(pool)
	ctx := context.Background()
	facts := genFacts(rand.New(rand.NewPCG(3, 4)))[0]
	first, err := l.Apply(ctx, facts)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 1 || !first[0].Changed() || first[0].Before != nil {
		t.Fatalf("first apply should create the subscription: %+v", first)
	}
	second, err := l.Apply(ctx, facts)
	if err != nil {
		t.Fatal(err)
	}
	if second[0].Changed() {
		t.Fatalf("second apply changed state: %+v -> %+v", second[0].Before, second[0].After)
	}
	var jws string
	if err := pool.QueryRow(ctx, "SELECT jws FROM transactions WHERE transaction_id = $1", facts.Transactions[0].Payload.TransactionID).Scan(&jws); err != nil {
		t.Fatal(err)
	}
	if jws != facts.Transactions[0].JWS {
		t.Fatalf("stored JWS %q, want %q", jws, facts.Transactions[0].JWS)
	}
}

func TestLinkCustomerRecordsConflicts(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	l := ledger.New(pool)
	ctx := context.Background()
	facts := genFacts(rand.New(rand.NewPCG(5, 6)))[0] // carries Apple's appAccountToken
	if _, err := l.Apply(ctx, facts); err != nil {
		t.Fatal(err)
	}
	otid := facts.Transactions[0].Payload.OriginalTransactionID
	appleToken := facts.Transactions[0].Payload.AppAccountToken
	if c, err := l.LinkCustomer(ctx, otid, appleToken, "c-1", "import"); err != nil || len(c) != 0 {
		t.Fatalf("agreeing link: conflicts %v, err %v", c, err)
	}
	other := "11111111-2222-4333-8444-555555555555"
	c, err := l.LinkCustomer(ctx, otid, other, "c-2", "import")
	if err != nil {
		t.Fatal(err)
	}
	if len(c) != 2 {
		t.Fatalf("want customer and token conflicts, got %+v", c)
	}
	s, _ := l.Subscription(ctx, otid)
	if s.CustomerID != "c-1" || s.AppAccountToken != appleToken {
		t.Fatalf("conflicting import overwrote the ledger: %+v", s)
	}
	stored, err := l.Conflicts(ctx, otid)
	if err != nil || len(stored) != 2 {
		t.Fatalf("stored conflicts %+v, err %v", stored, err)
	}
	// Idempotent: linking again records nothing new.
	if _, err := l.LinkCustomer(ctx, otid, other, "c-2", "import"); err != nil {
		t.Fatal(err)
	}
	if stored, _ := l.Conflicts(ctx, otid); len(stored) != 2 {
		t.Fatalf("conflicts recorded twice: %+v", stored)
	}
}
