package jobs

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/jobs/jobstest"
)

// BenchmarkProcessNotification measures processing end to end against a
// real Postgres: b.N notifications stored by the webhook (each with its
// signed transaction and renewal info, as Apple sends them) are processed
// one after another by processNotification (read the stored row, verify,
// apply in one transaction, mark processed), as one worker of `serve`
// does. They renew 100 subscriptions round-robin, each signed later than
// the last of its subscription, so every one moves its subscription; the
// subscriptions are seeded as already imported and given their first
// facts before the timer starts (steady state: no import is enqueued).
// Reported per notification: the CPU this process used (go-cpu-us:
// everything but Postgres, GC included) and, where /proc shows the
// database's backends (a local server), the CPU they used (pg-cpu-us).
// The machine is shared, so compare builds back to back:
//
//	.ci/with-postgres go test -run '^$' -bench ProcessNotification -benchtime 2000x -cpu 1 -count 5 ./jobs/
func BenchmarkProcessNotification(b *testing.B) {
	e := newHookEnv(b, hookEnvOptions{})
	ctx := context.Background()
	subs := min(b.N, 100)
	start := time.Now().Add(-time.Hour)
	bases := make([]*jobstest.Note, subs)
	otids := make([]string, subs)
	for s := range bases {
		bases[s] = jobstest.NewNote(appstore.Production, start)
		otids[s] = bases[s].Tx.OriginalTransactionID
	}
	if _, err := e.pool.Exec(ctx, `INSERT INTO subscriptions (original_transaction_id, environment,
		product_id, history_revision, history_synced_at) SELECT id, 'Production', 'com.example.monthly', 'bench-seeded', now()
		FROM unnest($1::text[]) AS id`, otids); err != nil {
		b.Fatal(err)
	}
	// The first round (one per subscription) gives each its first facts,
	// untimed: a subscription the ledger knows without facts is new to
	// it, and imported.
	uuids := make([]string, subs+b.N)
	for i := range uuids {
		base := bases[i%subs]
		note := *base
		nd, tx, ri := *base.N.Data, *base.Tx, *base.RI
		note.N.Data, note.Tx, note.RI = &nd, &tx, &ri
		signed := appstore.MillisOf(start.Add(time.Duration(i/subs+1) * time.Second))
		note.N.NotificationUUID = jobstest.NextUUID()
		note.N.SignedDate, note.Tx.SignedDate, note.RI.SignedDate = signed, signed, signed
		note.Tx.TransactionID = fmt.Sprintf("%s%06d", tx.OriginalTransactionID, i/subs)
		if c := e.postSigned(note.Sign(b, e.ca)); c != 200 {
			b.Fatalf("webhook answered %d", c)
		}
		uuids[i] = note.N.NotificationUUID
	}
	wctx := e.workContext()
	for _, id := range uuids[:subs] {
		if _, err := e.deps.processNotification(wctx, id); err != nil {
			b.Fatal(err)
		}
	}
	uuids = uuids[subs:]
	runtime.GC()
	backends := backendPIDs(b, e)
	pg0, cpu0 := jobstest.ProcessesCPU(backends...), jobstest.SelfCPU()
	b.ReportAllocs()
	b.ResetTimer()
	for _, id := range uuids {
		res, err := e.deps.processNotification(wctx, id)
		if err != nil {
			b.Fatal(err)
		}
		if res.Changed != 1 || res.ImportEnqueued {
			b.Fatalf("notification %s: %+v, want one subscription changed and no import", id, res)
		}
	}
	b.StopTimer()
	goCPU := jobstest.SelfCPU() - cpu0
	backends = backendPIDs(b, e) // the pool may have opened some meanwhile (they started at 0)
	pgCPU := jobstest.ProcessesCPU(backends...) - pg0
	if n := e.count(`SELECT count(*) FROM notifications WHERE processed_at IS NOT NULL AND process_error IS NULL`); n != subs+b.N {
		b.Fatalf("%d notifications processed, want %d", n, subs+b.N)
	}
	b.ReportMetric(float64(goCPU.Microseconds())/float64(b.N), "go-cpu-us")
	if pgCPU > 0 {
		b.ReportMetric(float64(pgCPU.Microseconds())/float64(b.N), "pg-cpu-us")
	}
}

// backendPIDs returns the process ids of the Postgres backends serving
// clients of e's database (not autovacuum, whose timing is the server's).
func backendPIDs(b *testing.B, e *hookEnv) []int {
	rows, err := e.pool.Query(context.Background(), `SELECT pid FROM pg_stat_activity
		WHERE datname = current_database() AND backend_type = 'client backend'`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	var pids []int
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			b.Fatal(err)
		}
		pids = append(pids, pid)
	}
	return pids
}
