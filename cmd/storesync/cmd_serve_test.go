package main

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/appstore/sim/simtest"
	"github.com/storesync/storesync/jobs/jobstest"
	"github.com/storesync/storesync/ledger"
)

// TestMain lets a test start this test binary as the storesync command
// (STORESYNC_EXEC_MAIN=1, arguments as for storesync), to run real
// processes that can be killed.
func TestMain(m *testing.M) {
	if os.Getenv("STORESYNC_EXEC_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

func TestServeUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"serve", "extra"}, {"serve", "--bulk-workers", "0"}, {"serve", "--history-workers", "0"}, {"serve", "--history-workers", "1001"}, {"serve", "--receipt-workers", "0"}, {"serve", "--token-workers", "1001"}, {"serve", "--job-timeout", "10s", "--rescue-after", "5s"}} {
		code, _, stderr := runCLI(t, nil, args...)
		if code != 2 || !strings.Contains(stderr, "usage: storesync serve") {
			t.Errorf("%v: code %d, stderr %q", args, code, stderr)
		}
	}
	code, _, stderr := runCLI(t, map[string]string{}, "serve")
	if code != 1 || !strings.Contains(stderr, "APPSTORE_KEY_ID") {
		t.Fatalf("serve without credentials: code %d, stderr %q", code, stderr)
	}
}

// startServe runs `storesync serve` in-process until the test ends.
func startServe(t *testing.T, env map[string]string, args ...string) *syncBuffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan int, 1)
	c := &cli{stdin: strings.NewReader(""), stdout: out, stderr: out, getenv: func(k string) string { return env[k] }}
	go func() { done <- run(ctx, c, append([]string{"serve"}, args...)) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 || !strings.Contains(out.String(), "stopped") {
				t.Errorf("serve exited %d:\n%s", code, out.String())
			}
		case <-time.After(60 * time.Second):
			t.Errorf("serve did not stop within 60s:\n%s", out.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "serving on") {
		select {
		case code := <-done:
			t.Fatalf("serve exited %d:\n%s", code, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return out
}

func openTestPool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// serve, import --wait and status together against the simulator.
func TestServeImportWaitAndStatus(t *testing.T) {
	t.Parallel()
	simulator := simtest.StartTest(t, sim.Options{Seed: 3, Subscribers: 60})
	env := simCLIEnv(t, simulator)
	startServe(t, env, "--bulk-workers", "8")
	truths := simulator.Truth()
	file := truthFile(t, truths, "not-a-number,,\n")

	code, stdout, stderr := runCLI(t, env, "import", file, "--wait")
	if code != 0 {
		t.Fatalf("import --wait: code %d\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{"1 rejected", "finished: " + withCommas(int64(len(truths))) + " subscriptions migrated, 0 failed"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("import output lacks %q:\n%s", want, stdout)
		}
	}
	if b, err := os.ReadFile(file + ".rejects"); err != nil || !strings.HasPrefix(string(b), strconv.Itoa(len(truths)+2)+",") {
		t.Errorf("rejects %q, %v", b, err)
	}
	pool := openTestPool(t, env["DATABASE_URL"])
	jobstest.RequireLedgerEqualsTruth(t, ledger.New(pool), truths)

	code, stdout, stderr = runCLI(t, env, "status")
	if code != 0 {
		t.Fatalf("status: code %d\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{"== Job queue ==", "import", "bulk", "== Imports ==", "finished", "== Apple rate budget ==",
		string(appstore.EndpointStatuses), string(appstore.EndpointHistory)} {
		if !strings.Contains(stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, stdout)
		}
	}

	// Transactions stored with their chain inside (as before migration
	// 011): serve compacts them online, and the ledger is unchanged.
	ctx := context.Background()
	tag, err := pool.Exec(ctx, `UPDATE transactions SET jws = storesync_jws(jws, jws_chain), jws_chain = NULL`)
	if err != nil || tag.RowsAffected() == 0 {
		t.Fatalf("decompacting: %v (%d rows)", err, tag.RowsAffected())
	}
	code, stdout, stderr = runCLI(t, env, "compact", "--again", "--wait")
	if want := withCommas(tag.RowsAffected()) + " compacted"; code != 0 || !strings.Contains(stdout, "pass 2 done") || !strings.Contains(stdout, want) {
		t.Fatalf("compact --again --wait: code %d, want %q\n%s%s", code, want, stdout, stderr)
	}
	var left int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM transactions WHERE jws_chain IS NULL`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d transactions left uncompacted (%v)", left, err)
	}
	jobstest.RequireLedgerEqualsTruth(t, ledger.New(pool), truths)
}

// A serve process killed with SIGKILL mid-migration, and another started:
// the orphaned jobs are worked again and the ledger ends equal to the
// truth, with no row failed.
func TestServeKilledMidMigrationResumes(t *testing.T) {
	t.Parallel()
	simulator := simtest.StartTest(t, sim.Options{Seed: 4, Subscribers: 120})
	// A slow Apple, so the kill lands mid-migration.
	for _, ep := range []appstore.Endpoint{appstore.EndpointStatuses, appstore.EndpointHistory} {
		if err := simulator.SetRateLimit(appstore.Production, ep, 15); err != nil {
			t.Fatal(err)
		}
	}
	env := simCLIEnv(t, simulator)
	env["APPSTORE_RATE_LIMITS"] = "statuses=15,history=15"
	serveArgs := []string{"serve", "--bulk-workers", "12", "--job-timeout", "5s", "--rescue-after", "6s"}
	truths := simulator.Truth()
	file := truthFile(t, truths, "")
	if code, out, errOut := runCLI(t, env, "import", file); code != 0 {
		t.Fatalf("import: %d\n%s%s", code, out, errOut)
	}
	pool := openTestPool(t, env["DATABASE_URL"])
	l := ledger.New(pool)

	first := startServeProcess(t, env, serveArgs...)
	waitImported(t, pool, func(p ledger.ImportProgress) bool { return p.Done >= p.Total/4 }, time.Minute)
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	var orphans int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE state = 'running'`).Scan(&orphans); err != nil {
		t.Fatal(err)
	}
	startServeProcess(t, env, serveArgs...)
	p := waitImported(t, pool, func(p ledger.ImportProgress) bool { return p.Finished() }, 3*time.Minute)
	if p.Failed != 0 {
		t.Fatalf("rows failed after the kill: %+v", p)
	}
	jobstest.RequireLedgerEqualsTruth(t, l, truths)
	t.Logf("killed with %d jobs running; all %d subscriptions migrated after the restart", orphans, len(truths))
}

// startServeProcess starts this test binary as `storesync serve` in a
// process of its own, stopped (SIGKILL) when the test ends.
func startServeProcess(t testing.TB, env map[string]string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "STORESYNC_EXEC_MAIN=1")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Stopped as an operator would (SIGTERM), so it writes what it
		// writes on exit (a --cpu-profile); killed if it hangs.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("serve process %d output:\n%s", cmd.Process.Pid, out.String())
		}
	})
	return cmd
}

// waitImported polls the progress of every import row until done says so.
func waitImported(t *testing.T, pool *pgxpool.Pool, done func(ledger.ImportProgress) bool, within time.Duration) ledger.ImportProgress {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var p ledger.ImportProgress
		err := pool.QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE state = 'pending'),
			count(*) FILTER (WHERE state = 'done'), count(*) FILTER (WHERE state = 'failed') FROM import_rows`).Scan(
			&p.Total, &p.Pending, &p.Done, &p.Failed)
		if err != nil {
			t.Fatal(err)
		}
		if done(p) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("import progress %+v after %s", p, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
