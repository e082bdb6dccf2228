package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/migrations/migrationstest"
)

// runCLIInput runs one command line in-process with stdin and ctx.
func runCLIInput(t *testing.T, ctx context.Context, env map[string]string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	c := &cli{stdin: strings.NewReader(stdin), stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return env[k] }}
	code := run(ctx, c, args)
	return code, stdout.String(), stderr.String()
}

// syncBuffer is a bytes.Buffer safe to read while a command writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// simCLIEnv is the environment of a storesync pointed at sim and at a
// fresh migrated database.
func simCLIEnv(t testing.TB, simulator *sim.Simulator) map[string]string {
	t.Helper()
	if _, err := simulator.WriteFiles(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	env := simulator.Env()
	env["DATABASE_URL"] = migrationstest.NewDatabaseURL(t)
	env["STORESYNC_LISTEN"] = "127.0.0.1:0"
	return env
}

// truthFile writes an import CSV of truths (customer id = account id).
func truthFile(t *testing.T, truths []sim.SubscriptionTruth, extra string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("original_transaction_id,app_account_token,customer_id\n")
	for _, tr := range truths {
		fmt.Fprintf(&b, "%s,%s,%s\n", tr.OriginalTransactionID, tr.AppAccountToken, tr.AccountID)
	}
	b.WriteString(extra)
	path := filepath.Join(t.TempDir(), "subscribers.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestImportUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"import"}, {"import", "a.csv", "b.csv"}, {"import", "a.csv", "--batch", "0"}, {"import", "--bogus", "a.csv"}} {
		code, _, stderr := runCLI(t, nil, args...)
		if code != 2 || !strings.Contains(stderr, "usage: storesync import") {
			t.Errorf("%v: code %d, stderr %q", args, code, stderr)
		}
	}
	code, _, stderr := runCLI(t, map[string]string{"DATABASE_URL": migrationstest.DatabaseURL("unused")}, "import", filepath.Join(t.TempDir(), "missing.csv"))
	if code != 1 || !strings.Contains(stderr, "opening the import file") || !strings.Contains(stderr, "missing.csv") {
		t.Fatalf("missing file: code %d, stderr %q", code, stderr)
	}
}

// Import without workers: rows are validated, rejects written with their
// line numbers, jobs enqueued once; a second run enqueues nothing.
func TestImportEnqueuesOnceAndWritesRejects(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": migrationstest.NewDatabaseURL(t)}
	dir := t.TempDir()
	file := filepath.Join(dir, "subs.csv")
	text := "original_transaction_id,app_account_token,customer_id\n" +
		"2000000000000001,6f1c2b3a-0000-4000-8000-00000000abcd,c-1\n" +
		"20000000x,,c-2\n" +
		"2000000000000002,,c-3\n" +
		"2000000000000001,,c-1\n"
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI(t, env, "import", file)
	if code != 0 {
		t.Fatalf("code %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"4 rows read", "2 enqueued", "1 duplicates or already imported", "1 rejected", file + ".rejects"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	rejects, err := os.ReadFile(file + ".rejects")
	if err != nil || !strings.HasPrefix(string(rejects), `3,"original_transaction_id ""20000000x"" is not a decimal number",20000000x,,c-2`) {
		t.Fatalf("rejects %q, %v", rejects, err)
	}

	// Again, from standard input as JSON Lines with a --rejects path.
	jsonl := `{"original_transaction_id":"2000000000000001"}` + "\n" + `{"originalTransactionId":"2000000000000003","customerId":"c-9"}` + "\n"
	code, stdout, stderr = runCLIInput(t, context.Background(), env, jsonl, "import", "-", "--rejects", filepath.Join(dir, "r.csv"))
	if code != 0 || !strings.Contains(stdout, "1 enqueued, 1 duplicates") {
		t.Fatalf("stdin import: code %d\n%s%s", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "r.csv")); !os.IsNotExist(err) {
		t.Fatalf("a rejects file was written without rejects: %v", err)
	}

	code, stdout, _ = runCLI(t, env, "import", file, "--wait")
	if code != 0 || !strings.Contains(stdout, "0 enqueued") || !strings.Contains(stdout, "nothing new to import") {
		t.Fatalf("re-import: code %d\n%s", code, stdout)
	}
}

// Ctrl-C while following stops following, not the import: the rows stay
// pending for serve to work.
func TestImportWaitInterruptedStopsFollowingOnly(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": migrationstest.NewDatabaseURL(t)}
	file := filepath.Join(t.TempDir(), "subs.csv")
	if err := os.WriteFile(file, []byte("2000000000000001\n2000000000000002\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	c := &cli{stdin: strings.NewReader(""), stdout: out, stderr: out, getenv: func(k string) string { return env[k] }}
	done := make(chan int, 1)
	go func() { done <- run(ctx, c, []string{"import", file, "--wait"}) }()
	for !strings.Contains(out.String(), "2 enqueued") {
		time.Sleep(10 * time.Millisecond)
	}
	cancel() // no serve process runs: without the interrupt this would wait forever
	select {
	case code := <-done:
		if code != 0 || !strings.Contains(out.String(), "stopped following import run 1 (0 of 2 rows finished); the import goes on") {
			t.Fatalf("code %d:\n%s", code, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("import --wait ignored the interrupt:\n%s", out.String())
	}
	code, stdout, _ := runCLI(t, env, "status")
	if code != 0 || !strings.Contains(stdout, "migrating") {
		t.Fatalf("status after the interrupt: %d\n%s", code, stdout)
	}
}
