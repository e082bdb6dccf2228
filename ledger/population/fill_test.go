package population_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/ledger/population"
	"github.com/storesync/storesync/migrations/migrationstest"
)

// grants is an entitlement rule: every product grants "pro" everywhere.
type grants struct{}

func (grants) Grants(productID, environment string) []string { return []string{"pro"} }

// A small Fill is consistent with the ledger's own rules: every JWS
// verifies against the simulator's root and says what its row's columns
// say; re-applying each subscription's stored facts through ledger.Apply
// changes no subscription and writes no feed event; counts tie up across
// tables; the ids the package names exist.
func TestFillIsConsistentWithTheLedger(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, pool := migrationstest.NewDatabase(t)
	ca, err := sim.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	const n = 400
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	res, err := population.Fill(ctx, pool, population.Options{Subscriptions: n, CA: ca, Now: now, Seed: 7, Rules: grants{}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Subscriptions != n || res.RenewalInfos != n || res.Transactions < n || res.Notifications < n {
		t.Fatalf("counts %+v: want %d subscriptions and renewal infos, at least as many transactions and notifications", res, n)
	}
	if want := res.Transactions + res.RenewalInfos + res.Notifications; res.Signatures != want {
		t.Fatalf("%d signatures for %d signed rows", res.Signatures, want)
	}
	if _, err := population.Fill(ctx, pool, population.Options{Subscriptions: 1, CA: ca}); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("a second Fill on the same ledger: %v, want a refusal naming an empty database", err)
	}

	// Counts and shapes tie up across tables.
	var sumCount, txRows, statuses, envs, products, customers, linked, events, imported int64
	if err := pool.QueryRow(ctx, `SELECT (SELECT sum(transaction_count) FROM subscriptions), (SELECT count(*) FROM transactions),
			(SELECT count(DISTINCT status) FROM subscriptions), (SELECT count(DISTINCT environment) FROM subscriptions),
			(SELECT count(DISTINCT product_id) FROM subscriptions), (SELECT count(*) FROM customers),
			(SELECT count(*) FROM subscriptions s JOIN customers c USING (customer_id) WHERE c.app_account_token = s.app_account_token),
			(SELECT count(*) FROM subscription_events WHERE position = id), (SELECT count(*) FROM import_rows)`).
		Scan(&sumCount, &txRows, &statuses, &envs, &products, &customers, &linked, &events, &imported); err != nil {
		t.Fatal(err)
	}
	if sumCount != txRows || statuses != 5 || envs != 2 || products != 3 || customers != res.Customers ||
		linked < n*8/10 || events != res.Events || imported != res.ImportRows || imported == 0 {
		t.Fatalf("transaction_count sum %d vs %d rows; %d statuses, %d environments, %d products; %d customers (%d); %d linked with the customer's token; %d sequenced events of %d; %d import rows of %d",
			sumCount, txRows, statuses, envs, products, customers, res.Customers, linked, events, res.Events, imported, res.ImportRows)
	}
	runs, err := ledger.New(pool).ImportRuns(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || runs[0].ID != res.ImportRun || runs[0].Progress.Done != res.ImportRows || runs[0].Progress.Total != res.ImportRows {
		t.Fatalf("import runs %+v, want one run %d with %d rows done", runs, res.ImportRun, res.ImportRows)
	}
	if res.ReconcileRuns != 7 || res.Conflicts == 0 {
		t.Fatalf("reconcile runs %d, conflicts %d", res.ReconcileRuns, res.Conflicts)
	}

	verifier, err := appstore.NewVerifier(appstore.VerifierOptions{RootCertificates: [][]byte{ca.RootDER()},
		Environment: appstore.Production, BundleID: sim.DefaultBundleID, AppAppleID: sim.DefaultAppAppleID})
	if err != nil {
		t.Fatal(err)
	}
	verifierFor := func(env string) *appstore.Verifier { return verifier.WithEnvironment(appstore.Environment(env)) }

	// Re-apply every subscription's facts: nothing moves.
	l := ledger.New(pool).WithEntitlements(grants{})
	// Rows are stored compact (certificate chains once), as the ledger's
	// own writes store them, and rebuild through the ledger byte for byte.
	var whole int64
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM transactions WHERE jws_chain IS NULL)
			+ (SELECT count(*) FROM renewal_infos WHERE jws_chain IS NULL)
			+ (SELECT count(*) FROM notifications WHERE payload_chain IS NULL)`).Scan(&whole); err != nil {
		t.Fatal(err)
	}
	if whole != 0 {
		t.Fatalf("%d rows keep their certificate chain inline", whole)
	}
	subRows, err := pool.Query(ctx, `SELECT original_transaction_id, environment FROM subscriptions`)
	if err != nil {
		t.Fatal(err)
	}
	envOf := map[string]string{}
	for subRows.Next() {
		var otid, env string
		if err := subRows.Scan(&otid, &env); err != nil {
			t.Fatal(err)
		}
		envOf[otid] = env
	}
	if subRows.Err() != nil {
		t.Fatal(subRows.Err())
	}
	facts := map[string]*ledger.Facts{}
	for otid, env := range envOf {
		f := &ledger.Facts{}
		facts[otid] = f
		jwss, err := l.SubscriptionTransactionJWS(ctx, otid)
		if err != nil {
			t.Fatal(err)
		}
		for _, jws := range jwss {
			p, err := verifierFor(env).VerifyTransaction(jws)
			if err != nil {
				t.Fatalf("a transaction of %s: %v", otid, err)
			}
			var rowOTID string
			var expires time.Time
			if err := pool.QueryRow(ctx, `SELECT original_transaction_id, expires_date FROM transactions WHERE transaction_id = $1`,
				p.TransactionID).Scan(&rowOTID, &expires); err != nil {
				t.Fatal(err)
			}
			if rowOTID != otid || p.OriginalTransactionID != otid || !p.ExpiresDate.Time().Equal(expires) {
				t.Fatalf("transaction %s: payload %+v disagrees with its row (%s, %s)", p.TransactionID, p, rowOTID, expires)
			}
			f.Transactions = append(f.Transactions, ledger.SignedTransaction{Payload: p, JWS: jws})
		}
		jws, err := l.RenewalInfoJWS(ctx, otid)
		if err != nil {
			t.Fatal(err)
		}
		p, err := verifierFor(env).VerifyRenewalInfo(jws)
		if err != nil {
			t.Fatalf("renewal info of %s: %v", otid, err)
		}
		f.RenewalInfos = append(f.RenewalInfos, ledger.SignedRenewalInfo{Payload: p, JWS: jws})
	}
	if len(facts) != n {
		t.Fatalf("facts for %d subscriptions, want %d", len(facts), n)
	}
	for otid, f := range facts {
		changes, err := l.Apply(ctx, *f)
		if err != nil {
			t.Fatal(err)
		}
		if len(changes) != 1 || changes[0].Before == nil || changes[0].Changed() {
			t.Fatalf("re-applying %s's stored facts moved it: before %+v after %+v", otid, changes[0].Before, changes[0].After)
		}
	}
	var eventsAfter int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM subscription_events`).Scan(&eventsAfter); err != nil {
		t.Fatal(err)
	}
	if eventsAfter != res.Events {
		t.Fatalf("re-applying wrote %d feed events", eventsAfter-res.Events)
	}

	// Notifications come back byte-exact through the ledger and verify,
	// with their inner JWS, saying what their columns say.
	var uuids []string
	rows, err := pool.Query(ctx, `SELECT notification_uuid::text FROM notifications`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			t.Fatal(err)
		}
		uuids = append(uuids, u)
	}
	if int64(len(uuids)) != res.Notifications {
		t.Fatalf("%d notification rows, Fill counted %d", len(uuids), res.Notifications)
	}
	types := map[string]bool{}
	for _, u := range uuids {
		sn, err := l.NotificationByUUID(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		vn, err := verifierFor(string(sn.Environment)).VerifyNotificationDeep(sn.SignedPayload)
		if err != nil {
			t.Fatalf("notification %s: %v", u, err)
		}
		if vn.Payload.NotificationUUID != u || vn.Payload.NotificationType != sn.Type || vn.Transaction == nil ||
			vn.Transaction.TransactionID != sn.TransactionID || vn.Transaction.OriginalTransactionID != sn.OriginalTransactionID {
			t.Fatalf("notification %s: payload %+v disagrees with its row %+v", u, vn.Payload, sn.Notification)
		}
		types[sn.Type+"/"+sn.Subtype] = true
	}
	if len(types) < 6 {
		t.Fatalf("only %d notification types/subtypes: %v", len(types), types)
	}

	// The ids the package names are there: a linked customer holds its
	// subscriptions' entitlements.
	for i := 0; i < n; i++ {
		c, ok := population.CustomerOf(7, i)
		if !ok {
			continue
		}
		s, err := l.Subscription(ctx, population.OriginalTransactionID(i))
		if err != nil {
			t.Fatal(err)
		}
		if s.CustomerID != population.CustomerID(c) || s.AppAccountToken != population.AppAccountToken(7, c) {
			t.Fatalf("subscription %d: customer %q token %q, want %q %q", i, s.CustomerID, s.AppAccountToken,
				population.CustomerID(c), population.AppAccountToken(7, c))
		}
		e, err := l.EntitlementsByCustomerID(ctx, population.CustomerID(c))
		if err != nil {
			t.Fatal(err)
		}
		granting := s.Status == "active" || s.Status == "grace_period"
		if e.Subscriptions == 0 || granting && len(e.Entitlements) == 0 || e.Subscriptions == 1 && !granting && len(e.Entitlements) > 0 {
			t.Fatalf("customer %d: %+v for a subscription %s", c, e, s.Status)
		}
	}
}

// Options are checked all at once, naming each field.
func TestFillRejectsBadOptions(t *testing.T) {
	_, err := population.Fill(context.Background(), nil, population.Options{Streams: -1})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"Options.Subscriptions", "Options.CA", "Options.Streams"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}
