package ledger_test

import (
	"context"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

// feedRules maps genFacts' products: the upgrade adds "cloud".
type feedRules struct{}

func (feedRules) Grants(product, env string) []string {
	switch product {
	case "com.example.monthly":
		return []string{"pro"}
	case "com.example.monthly.pro":
		return []string{"cloud", "pro"}
	}
	return nil
}

func countEvents(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM subscription_events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestDuplicateAndOlderFactsWriteNoEvents(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	l := ledger.New(pool).WithEntitlements(feedRules{})
	ctx := ledger.WithCause(context.Background(), ledger.Cause{Job: "test", NotificationUUID: "6f1c0000-0000-4000-8000-00000000aaaa"})
	exp := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	first := subFacts("300", "", "com.example.monthly", appstore.Production, 1, exp)
	if _, err := l.Apply(ctx, first); err != nil {
		t.Fatal(err)
	}
	if n := countEvents(t, pool); n != 2 {
		t.Fatalf("first purchase wrote %d events, want subscription.created + entitlement.granted", n)
	}
	// The same notification again (Apple's retry, a backfill copy): nothing.
	if _, err := l.Apply(ctx, first); err != nil {
		t.Fatal(err)
	}
	// Apple's expiry, then an older status statement arriving late.
	expired := ledger.Facts{Statuses: []ledger.StatusObservation{{OriginalTransactionID: "300", Status: 2, SignedDate: appstore.MillisOf(exp.Add(time.Hour))}}}
	if _, err := l.Apply(ctx, expired); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Apply(ctx, ledger.Facts{Statuses: []ledger.StatusObservation{{OriginalTransactionID: "300", Status: 1, SignedDate: appstore.MillisOf(exp.Add(-time.Hour))}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Apply(ctx, expired); err != nil {
		t.Fatal(err)
	}
	evs, err := l.SubscriptionEvents(ctx, "300")
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs {
		types = append(types, e.Type+"/"+e.Entitlement)
	}
	want := []string{"subscription.created/", "entitlement.granted/pro", "subscription.updated/", "entitlement.revoked/pro"}
	if !reflect.DeepEqual(types, want) {
		t.Fatalf("events %v, want %v", types, want)
	}
	e := evs[2]
	if e.Before.Status != "active" || e.After.Status != "expired" || e.Cause.Job != "test" ||
		e.Cause.NotificationUUID != "6f1c0000-0000-4000-8000-00000000aaaa" || e.SignedDate == nil ||
		!e.SignedDate.Equal(exp.Add(time.Hour)) {
		t.Fatalf("expiry event %+v", e)
	}
	// A customer link is a change; linking again is not.
	for range 2 {
		if _, err := l.LinkCustomer(ctx, "300", "", "cust-300", "import"); err != nil {
			t.Fatal(err)
		}
	}
	evs, _ = l.SubscriptionEvents(ctx, "300")
	if len(evs) != 5 || evs[4].After.CustomerID != "cust-300" || evs[4].Before.CustomerID != "" || evs[4].CustomerID != "cust-300" {
		t.Fatalf("after linking twice: %d events, last %+v", len(evs), evs[len(evs)-1])
	}
}

// TestFeedReplaysToTheLedgerInAnyOrder is the change feed's property test:
// whatever order (and duplication) the same facts arrive in, the final
// entitlements are the same, and each subscription's events chain (every
// event's before is the previous one's after, none repeats a state) and
// replay to its final state and entitlements.
func TestFeedReplaysToTheLedgerInAnyOrder(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	l := ledger.New(pool).WithEntitlements(feedRules{})
	ctx := context.Background()
	r := rand.New(rand.NewPCG(3, 4))
	facts := genFacts(r)
	var want map[string][]ledger.Entitlement
	for i := range 20 {
		if _, err := pool.Exec(ctx, "TRUNCATE subscriptions, transactions, renewal_infos, subscription_events"); err != nil {
			t.Fatal(err)
		}
		order := append([]ledger.Facts(nil), facts...)
		for range 5 {
			order = append(order, facts[r.IntN(len(facts))])
		}
		r.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		for len(order) > 0 {
			k := 1 + r.IntN(min(3, len(order)))
			var chunk ledger.Facts
			for _, f := range order[:k] {
				chunk.Add(f)
			}
			if _, err := l.Apply(ctx, chunk); err != nil {
				t.Fatal(err)
			}
			order = order[k:]
		}
		got := map[string][]ledger.Entitlement{}
		for s := range 3 {
			otid := "20000000000" + string(rune('0'+s/10)) + string(rune('0'+s%10))
			ents, err := l.EntitlementsByOriginalTransactionID(ctx, otid)
			if err != nil {
				t.Fatal(err)
			}
			got[otid] = ents.Entitlements
			sub, err := l.Subscription(ctx, otid)
			if err != nil {
				t.Fatal(err)
			}
			evs, err := l.SubscriptionEvents(ctx, otid)
			if err != nil {
				t.Fatal(err)
			}
			replayState, replayEnts := replay(t, otid, evs)
			if replayState.Status != sub.Status || replayState.ProductID != sub.ProductID ||
				!timeEq(replayState.ExpiresDate, sub.ExpiresDate) {
				t.Fatalf("order %d, %s: events replay to %+v, ledger holds %+v", i, otid, replayState, sub)
			}
			var names []string
			for _, e := range ents.Entitlements {
				names = append(names, e.Entitlement)
			}
			if !reflect.DeepEqual(replayEnts, names) {
				t.Fatalf("order %d, %s: granted/revoked replay to %v, lookup says %v", i, otid, replayEnts, names)
			}
		}
		if want == nil {
			want = got
		} else if !reflect.DeepEqual(got, want) {
			t.Fatalf("order %d: entitlements %+v, want %+v", i, got, want)
		}
		// The same facts once more change nothing and so write nothing.
		n := countEvents(t, pool)
		for _, f := range facts {
			if _, err := l.Apply(ctx, f); err != nil {
				t.Fatal(err)
			}
		}
		if m := countEvents(t, pool); m != n {
			t.Fatalf("order %d: re-applying every fact wrote %d events", i, m-n)
		}
	}
}

// replay folds one subscription's events: the state of the last subscription
// event and the entitlements granted and not revoked since, checking that
// the events chain.
func replay(t *testing.T, otid string, evs []ledger.Event) (*ledger.EventState, []string) {
	t.Helper()
	var state *ledger.EventState
	held := map[string]bool{}
	for i, e := range evs {
		switch e.Type {
		case ledger.EventSubscriptionCreated, ledger.EventSubscriptionUpdated:
			if (i == 0) != (e.Type == ledger.EventSubscriptionCreated) {
				t.Fatalf("%s: event %d is %s", otid, i, e.Type)
			}
			if !reflect.DeepEqual(e.Before, state) {
				t.Fatalf("%s: event %d's before %+v is not the previous after %+v", otid, i, e.Before, state)
			}
			if reflect.DeepEqual(e.Before, e.After) {
				t.Fatalf("%s: event %d changes nothing", otid, i)
			}
			state = e.After
		case ledger.EventEntitlementGranted:
			if held[e.Entitlement] {
				t.Fatalf("%s: %s granted twice", otid, e.Entitlement)
			}
			held[e.Entitlement] = true
		case ledger.EventEntitlementRevoked:
			if !held[e.Entitlement] {
				t.Fatalf("%s: %s revoked but not held", otid, e.Entitlement)
			}
			delete(held, e.Entitlement)
		}
	}
	if state == nil {
		t.Fatalf("%s: no events", otid)
	}
	var names []string
	for _, n := range state.Entitlements {
		if !held[n] {
			t.Fatalf("%s: final state holds %s, granted/revoked do not", otid, n)
		}
		names = append(names, n)
	}
	if len(names) != len(held) {
		t.Fatalf("%s: granted/revoked hold %v, final state %v", otid, held, names)
	}
	return state, names
}

func timeEq(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// TestSequenceEventsNeverSkips holds a transaction that wrote an event open
// while a later one commits: neither gets a position until the first ends,
// so a reader past the second never misses the first.
func TestSequenceEventsNeverSkips(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	l := ledger.New(pool).WithEntitlements(feedRules{})
	ctx := context.Background()
	exp := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := l.WithTx(tx).Apply(ctx, subFacts("400", "", "com.example.monthly", appstore.Production, 1, exp)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Apply(ctx, subFacts("401", "", "com.example.monthly", appstore.Production, 1, exp)); err != nil {
		t.Fatal(err)
	}
	if n, err := l.SequenceEvents(ctx); err != nil || n != 0 {
		t.Fatalf("sequenced %d (%v) while an earlier writer is open", n, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// Any transaction open on the server (other tests' too) delays
	// sequencing; it never reorders it. Wait for the 4 events.
	var total int64
	for deadline := time.Now().Add(60 * time.Second); total < 4 && time.Now().Before(deadline); {
		n, err := l.SequenceEvents(ctx)
		if err != nil {
			t.Fatal(err)
		}
		total += n
		if total < 4 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if total != 4 {
		t.Fatalf("sequenced %d, want 4", total)
	}
	evs, err := l.Events(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 4 || evs[0].OriginalTransactionID != "400" || evs[3].OriginalTransactionID != "401" {
		t.Fatalf("feed %+v", evs)
	}
	for i, e := range evs {
		if e.ID != int64(i+1) {
			t.Fatalf("event %d has id %d", i, e.ID)
		}
	}
	if more, _ := l.Events(ctx, 2, 10); len(more) != 2 || more[0].ID != 3 {
		t.Fatalf("after 2: %+v", more)
	}
}
