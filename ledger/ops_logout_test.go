package ledger_test

import (
	"context"
	"testing"
	"time"

	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

// TestOpsLogout: a recorded logout is found again, twice is fine, only a
// hash is stored, and a logout whose session has expired is pruned by the
// next one.
func TestOpsLogout(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	l := ledger.New(pool)
	ctx := context.Background()
	if out, err := l.OpsLoggedOut(ctx, "session-a"); err != nil || out {
		t.Fatalf("before any logout: %t, %v", out, err)
	}
	if err := l.RecordOpsLogout(ctx, "session-a", time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if out, err := l.OpsLoggedOut(ctx, "session-a"); err != nil || !out {
		t.Fatalf("after its logout: %t, %v", out, err)
	}
	for range 2 {
		if err := l.RecordOpsLogout(ctx, "session-b", time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := l.OpsLoggedOut(ctx, "session-a"); err != nil || out {
		t.Fatalf("an expired session's logout was kept: %t, %v", out, err)
	}
	if out, err := l.OpsLoggedOut(ctx, "session-b"); err != nil || !out {
		t.Fatalf("session-b: %t, %v", out, err)
	}
	var rows, plain int
	if err := pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE position('session-b'::bytea IN session_hash) > 0)
		FROM ops_logouts`).Scan(&rows, &plain); err != nil {
		t.Fatal(err)
	}
	if rows != 1 || plain != 0 {
		t.Fatalf("ops_logouts holds %d rows, %d with the session id in clear; want 1 row, hashed", rows, plain)
	}
}
