//go:build chaos

// The chaos run (make chaos): a migration worked by three `storesync serve`
// processes while one of them is killed with SIGKILL every few seconds and
// restarted, Postgres is restarted once, the simulator injects 5xx and a
// 429 storm, and notifications arrive by webhook throughout. It must end
// with the ledger equal to the simulator's truth, no notification lost and
// no job stuck.
package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/jobs/truthcheck"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations"
	"github.com/storesync/storesync/migrations/localpg"
)

const chaosSubscribers = 600

func TestChaos(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "storesync")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	// A private cluster, so that restarting it disturbs nothing else.
	pg, err := localpg.StartPrivate(ctx, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Stop()
	dbURL := pg.DatabaseURL("storesync_chaos")
	if _, err := migrations.Migrate(ctx, dbURL); err != nil {
		t.Fatal(err)
	}

	simulator, err := sim.New(sim.Options{Seed: 7, Subscribers: chaosSubscribers})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := simulator.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer simulator.Close()
	if _, err := simulator.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	env := os.Environ()
	for k, v := range simulator.Env() {
		env = append(env, k+"="+v)
	}
	env = append(env, "DATABASE_URL="+dbURL, "STORESYNC_RECONCILE_CRON=0 3 1 1 *", "STORESYNC_BACKFILL_CRON=0 3 1 1 *")

	// Three serve processes; process 0 receives the webhooks and is never
	// killed, 1 and 2 are killed in turn.
	ports := []int{freePort(t), freePort(t), freePort(t)}
	procs := make([]*exec.Cmd, 3)
	var logs [3]bytes.Buffer
	var mu sync.Mutex
	start := func(i int) {
		cmd := exec.Command(bin, "serve", "--job-timeout", "10s", "--rescue-after", "15s", "--stop-timeout", "2s")
		cmd.Env = append(append([]string{}, env...), fmt.Sprintf("STORESYNC_LISTEN=127.0.0.1:%d", ports[i]))
		cmd.Stdout, cmd.Stderr = &lockedWriter{w: &logs[i], mu: &mu}, &lockedWriter{w: &logs[i], mu: &mu}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs[i] = cmd
	}
	for i := range procs {
		start(i)
	}
	defer func() {
		for _, p := range procs {
			if p != nil && p.Process != nil {
				p.Process.Signal(syscall.SIGTERM)
				p.Wait()
			}
		}
		if t.Failed() {
			for i := range logs {
				mu.Lock()
				t.Logf("serve %d log (tail):\n%s", i, tail(logs[i].String(), 3000))
				mu.Unlock()
			}
		}
	}()
	waitHTTP(t, ports[0])
	if err := simulator.SetWebhookURL(fmt.Sprintf("http://127.0.0.1:%d/webhooks/appstore", ports[0])); err != nil {
		t.Fatal(err)
	}

	// The import file of every simulated subscription.
	var file strings.Builder
	file.WriteString("original_transaction_id,app_account_token\n")
	for _, tr := range simulator.Truth() {
		fmt.Fprintf(&file, "%s,%s\n", tr.OriginalTransactionID, tr.AppAccountToken)
	}
	csv := filepath.Join(dir, "subscribers.csv")
	os.WriteFile(csv, []byte(file.String()), 0o600)
	run := func(args ...string) string {
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("storesync %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	t.Log(run("import", csv))

	// Chaos while the migration runs.
	if err := simulator.SetFaults(sim.Faults{RetryableErrorShare: 0.05}); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	l := ledger.New(pool)
	kills, restartedPG, storm := 0, false, false
	deadline := time.Now().Add(8 * time.Minute)
	for round := 0; ; round++ {
		if time.Now().After(deadline) {
			t.Fatal("the migration did not finish within 8 minutes of chaos")
		}
		victim := 1 + round%2
		procs[victim].Process.Signal(syscall.SIGKILL)
		procs[victim].Wait()
		kills++
		simulator.Advance(6 * time.Hour) // notifications arrive throughout
		time.Sleep(time.Second)
		start(victim)
		switch {
		case round == 2 && !storm:
			if err := simulator.SetFaults(sim.Faults{RetryableErrorShare: 0.05, RateLimitStorm: 2 * time.Second}); err != nil {
				t.Fatal(err)
			}
			storm = true
		case round == 4 && !restartedPG:
			if err := pg.Restart(); err != nil {
				t.Fatal(err)
			}
			restartedPG = true
		}
		time.Sleep(3 * time.Second)
		var pending int64
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM import_rows WHERE state = 'pending'").Scan(&pending); err != nil {
			continue // the database may be restarting
		}
		if pending == 0 && restartedPG && round >= 5 {
			break
		}
	}
	if err := simulator.SetFaults(sim.Faults{}); err != nil {
		t.Fatal(err)
	}
	simulator.Flush(ctx)
	t.Logf("chaos: %d kills, Postgres restarted, a 2 s 429 storm and 5%% retryable 5xx", kills)

	// Notifications whose delivery hit a dead process or database are in
	// Apple's history: the backfill brings them in, as in production.
	now := simulator.Now()
	t.Log(run("backfill", "--since", now.Add(-29*24*time.Hour).Format(time.RFC3339), "--until", now.Format(time.RFC3339), "--wait"))
	waitIdle(t, ctx, pool)

	if mm, err := truthcheck.Compare(ctx, l, simulator.Truth()); err != nil || len(mm) > 0 {
		t.Fatalf("ledger differs from truth (%v): %d differences, first: %v", err, len(mm), first(mm))
	}
	missing := 0
	for _, e := range []appstore.Environment{appstore.Production, appstore.Sandbox} {
		for _, n := range simulator.Notifications(e) {
			if _, err := l.NotificationByUUID(ctx, n.NotificationUUID); err != nil {
				missing++
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d notifications the simulator sent are not in the ledger", missing)
	}
	// The serves keep inserting periodic jobs (the change feed's fan-out
	// every few seconds), so counting the unfinished jobs at one instant
	// can catch one in flight: a stuck job is one that keeps the queue from
	// ever going quiet again (waitIdle names it).
	waitIdle(t, ctx, pool)
	var discarded int64
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM river_job WHERE state = 'discarded'").Scan(&discarded); err != nil {
		t.Fatal(err)
	}
	if discarded > 0 {
		t.Fatalf("%d jobs discarded", discarded)
	}
	// Three processes sharing one budget must stay under Apple's limit: the
	// only 429s allowed are the storm's (each job meets it once, then
	// snoozes until its end).
	total := simulator.Stats().Total()
	share := 100 * float64(total.RateLimited) / float64(total.Requests)
	t.Logf("Apple calls %d, 429 answers %d (%.2f%%, the 2 s storm included)", total.Requests, total.RateLimited, share)
	if share > 1 {
		t.Fatalf("%.2f%% of Apple calls were answered 429: the shared budget let the processes exceed the limit", share)
	}
}

func waitIdle(t *testing.T, ctx context.Context, pool *pgxpool.Pool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		var pending int64
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE state IN ('available','running','retryable','scheduled','pending')`).Scan(&pending); err == nil && pending == 0 {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	rows, err := pool.Query(ctx, `SELECT kind, state::text, attempt, scheduled_at, coalesce(errors[array_length(errors,1)]->>'error', '')
		FROM river_job WHERE state IN ('available','running','retryable','scheduled','pending') ORDER BY id LIMIT 20`)
	if err == nil {
		for rows.Next() {
			var kind, state, lastErr string
			var attempt int
			var at time.Time
			rows.Scan(&kind, &state, &attempt, &at, &lastErr)
			t.Logf("pending job: %s %s attempt %d at %s: %s", kind, state, attempt, at.Format(time.RFC3339), lastErr)
		}
	}
	t.Fatal("jobs still pending 3 minutes after the chaos stopped")
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func first(mm []truthcheck.Mismatch) any {
	if len(mm) == 0 {
		return nil
	}
	return mm[0]
}
