package ledger_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

// selectionFixture inserts subscriptions in every state selection cares
// about and returns the window to select with.
func selectionFixture(t *testing.T, pool *pgxpool.Pool) ledger.SelectWindow {
	t.Helper()
	ctx := context.Background()
	asOf := time.Date(2026, 11, 10, 3, 0, 0, 0, time.UTC)
	var runStart time.Time
	if err := pool.QueryRow(ctx, "SELECT now()").Scan(&runStart); err != nil {
		t.Fatal(err)
	}
	rows := []struct {
		id          string
		status      int
		expires     *time.Time
		revoked     *time.Time
		lastChecked *time.Time
	}{}
	at := func(d time.Duration) *time.Time { v := asOf.Add(d); return &v }
	checked := func(d time.Duration) *time.Time { v := runStart.Add(d); return &v }
	add := func(id string, status int, expires, revoked, lastChecked *time.Time) {
		rows = append(rows, struct {
			id          string
			status      int
			expires     *time.Time
			revoked     *time.Time
			lastChecked *time.Time
		}{id, status, expires, revoked, lastChecked})
	}
	// due: active with expiresDate passed (d1 checked earlier this run: skipped).
	add("d1", 1, at(-time.Hour), nil, checked(time.Second))
	add("d2", 1, at(-2*time.Hour), nil, checked(-48*time.Hour))
	add("d3", 1, at(-time.Hour), nil, nil)
	add("d4", 1, at(-time.Hour), nil, checked(-24*time.Hour))
	// active, not due.
	add("a1", 1, at(time.Hour), nil, checked(-72*time.Hour))
	add("a2", 1, at(240*time.Hour), nil, nil)
	// billing retry and grace (one without an expiry at all).
	add("b1", 3, at(-24*time.Hour), nil, checked(-time.Hour))
	add("b2", 3, nil, nil, nil)
	add("g1", 4, at(-time.Hour), nil, checked(-time.Hour))
	// refunded lately and long ago.
	add("r1", 5, at(-240*time.Hour), at(-24*time.Hour), checked(-time.Hour))
	add("r2", 5, at(-240*time.Hour), at(-60*24*time.Hour), checked(-100*time.Hour))
	// expired, one with a conflict found lately and one found long ago.
	add("e1", 2, at(-240*time.Hour), nil, checked(-96*time.Hour))
	add("e2", 2, at(-240*time.Hour), nil, checked(-200*time.Hour))
	add("e3", 2, at(-240*time.Hour), nil, checked(-2*time.Hour))
	for _, r := range rows {
		if _, err := pool.Exec(ctx, `INSERT INTO subscriptions (original_transaction_id, environment, status,
			expires_date, revocation_date, last_checked_at) VALUES ($1, 'Production', $2, $3, $4, $5)`,
			r.id, r.status, r.expires, r.revoked, r.lastChecked); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `INSERT INTO conflicts (original_transaction_id, field, our_value, apple_value, source, found_at)
		VALUES ('e1', 'app_account_token', 'x', 'y', 'import', $1), ('e1', 'customer_id', 'a', 'b', 'import', $1),
		       ('e2', 'customer_id', 'a', 'b', 'import', $2)`, runStart.Add(-time.Hour), runStart.Add(-90*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	return ledger.SelectWindow{AsOf: asOf, RunStart: runStart, RefundsSince: asOf.Add(-7 * 24 * time.Hour), ConflictsSince: runStart.Add(-7 * 24 * time.Hour)}
}

func ids(cs []ledger.CheckCandidate) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = fmt.Sprintf("%s:%s", c.Reason, c.OriginalTransactionID)
	}
	return out
}

func TestSelectTargetedInReasonOrderAndResumable(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	l := ledger.New(pool)
	w := selectionFixture(t, pool)
	ctx := context.Background()
	want := []string{
		"due:d2", "due:d3", "due:d4", // by expiresDate, then id; d1 was checked this run
		"billing_retry:b2", "billing_retry:b1", // no expiry first
		"grace_period:g1", "refunded:r1", "conflict:e1",
	}
	all, _, done, err := l.SelectTargeted(ctx, w, ledger.SelectCursor{}, 100)
	if err != nil || !done {
		t.Fatalf("done %v err %v", done, err)
	}
	if got := ids(all); !reflect.DeepEqual(got, want) {
		t.Fatalf("targeted:\n got %v\nwant %v", got, want)
	}
	// Page by page, every page size gives the same sequence.
	for size := 1; size <= 3; size++ {
		var got []string
		cursor := ledger.SelectCursor{}
		for range 20 {
			page, next, done, err := l.SelectTargeted(ctx, w, cursor, size)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > size {
				t.Fatalf("size %d: page of %d", size, len(page))
			}
			got = append(got, ids(page)...)
			cursor = next
			if done {
				break
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("pages of %d:\n got %v\nwant %v", size, got, want)
		}
	}
}

func TestSelectRollingLeastRecentlyCheckedFirst(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	l := ledger.New(pool)
	w := selectionFixture(t, pool)
	ctx := context.Background()
	// Never checked first (by id), then oldest check first; d1 was checked
	// by this run and ends the walk.
	want := []string{"a2", "b2", "d3", "e2", "r2", "e1", "a1", "d2", "d4", "e3", "b1", "g1", "r1"}
	for size := 1; size <= 14; size += 4 {
		var got []string
		cursor := ledger.SelectCursor{}
		for range 30 {
			page, next, done, err := l.SelectRolling(ctx, w, cursor, size)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range page {
				if c.Reason != ledger.ReasonRolling || c.Environment != "Production" {
					t.Fatalf("candidate %+v", c)
				}
				got = append(got, c.OriginalTransactionID)
			}
			cursor = next
			if done {
				break
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("pages of %d:\n got %v\nwant %v", size, got, want)
		}
	}
	// Checking moves a subscription out of this run's walk.
	if n, err := l.MarkChecked(ctx, w.RunStart, []string{"a2", "e2", "d1"}); err != nil || n != 2 {
		t.Fatalf("MarkChecked: %d newly checked (want 2: d1 was checked by this run already), err %v", n, err)
	}
	page, _, _, err := l.SelectRolling(ctx, w, ledger.SelectCursor{}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(page); !reflect.DeepEqual(got, []string{"rolling:b2", "rolling:d3", "rolling:r2"}) {
		t.Fatalf("after MarkChecked: %v", got)
	}
}

func TestSelectUsesIndexes(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `INSERT INTO subscriptions (original_transaction_id, status, expires_date, last_checked_at, revocation_date)
		SELECT 'x' || g, 1 + g % 5, now() + (g % 1000 - 500) * interval '1 hour',
		       CASE WHEN g % 10 = 0 THEN NULL ELSE now() - (g % 700) * interval '15 minutes' END,
		       CASE WHEN g % 5 = 4 THEN now() - (g % 90) * interval '1 day' END
		FROM generate_series(1, 20000) g; ANALYZE subscriptions`); err != nil {
		t.Fatal(err)
	}
	l := ledger.New(pool)
	var runStart time.Time
	if err := pool.QueryRow(ctx, "SELECT now()").Scan(&runStart); err != nil {
		t.Fatal(err)
	}
	w := ledger.SelectWindow{AsOf: runStart, RunStart: runStart, RefundsSince: runStart.Add(-7 * 24 * time.Hour), ConflictsSince: runStart}
	// The walk runs in one transaction, whose own statistics then show
	// how subscriptions was read: by index only, never sequentially.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	n := 0
	cursor := ledger.SelectCursor{}
	for {
		page, next, done, err := l.WithTx(tx).SelectRolling(ctx, w, cursor, 1000)
		if err != nil {
			t.Fatal(err)
		}
		n += len(page)
		cursor = next
		if done {
			break
		}
	}
	if n != 20000 {
		t.Fatalf("rolling walk returned %d of 20000", n)
	}
	cursor = ledger.SelectCursor{}
	for {
		page, next, done, err := l.WithTx(tx).SelectTargeted(ctx, w, cursor, 1000)
		if err != nil {
			t.Fatal(err)
		}
		n += len(page)
		cursor = next
		if done {
			break
		}
	}
	var seqScans, idxScans int64
	if err := tx.QueryRow(ctx, `SELECT seq_scan, COALESCE(idx_scan, 0) FROM pg_stat_xact_user_tables
		WHERE relname = 'subscriptions'`).Scan(&seqScans, &idxScans); err != nil {
		t.Fatal(err)
	}
	if seqScans != 0 || idxScans == 0 {
		t.Fatalf("selection scanned subscriptions sequentially %d times (index scans %d)", seqScans, idxScans)
	}
}

func TestRollingSliceSize(t *testing.T) {
	t.Parallel()
	day := 24 * time.Hour
	for _, c := range []struct {
		total int64
		cycle time.Duration
		want  int64
	}{
		{0, 7 * day, 0}, {1, 7 * day, 1}, {7, 7 * day, 1}, {8, 7 * day, 2}, {1_000_000, 7 * day, 142858},
		{100, day, 100}, {100, time.Hour, 100}, {100, 0, 100}, {100, 36 * time.Hour, 67},
	} {
		if got := ledger.RollingSliceSize(c.total, c.cycle); got != c.want {
			t.Errorf("RollingSliceSize(%d, %s) = %d, want %d", c.total, c.cycle, got, c.want)
		}
	}
}

// A product's live subscriptions lose their last check, so the rolling
// selection takes them first; others keep theirs.
func TestMarkProductForReconcile(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	l := ledger.New(pool)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `INSERT INTO subscriptions (original_transaction_id, environment, status, product_id, last_checked_at) VALUES
		('p1', 'Production', 1, 'gold', now()), ('p3', 'Production', 3, 'gold', now()), ('p4', 'Production', 4, 'gold', now()),
		('p2', 'Production', 2, 'gold', now()), ('s1', 'Production', 1, 'silver', now())`); err != nil {
		t.Fatal(err)
	}
	if err := l.MarkProductForReconcile(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if err := l.MarkProductForReconcile(ctx, "gold"); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, `SELECT original_transaction_id FROM subscriptions WHERE last_checked_at IS NULL ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	var cleared []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		cleared = append(cleared, id)
	}
	if err := rows.Err(); err != nil || !reflect.DeepEqual(cleared, []string{"p1", "p3", "p4"}) {
		t.Fatalf("cleared %v, %v; want the live gold ones", cleared, err)
	}
}
