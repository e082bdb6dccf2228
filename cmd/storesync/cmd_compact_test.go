package main

import (
	"strings"
	"testing"

	"github.com/storesync/storesync/migrations/migrationstest"
)

// TestCompactCommand: on a new database the pass is already done and
// compact says so; --again starts a pass, enqueues its job (worked by a
// serve, none here) and status shows it running.
func TestCompactCommand(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": migrationstest.NewDatabaseURL(t)}
	code, stdout, stderr := runCLI(t, env, "compact")
	if code != 0 || !strings.Contains(stdout, "nothing to compact: pass 1 done") {
		t.Fatalf("compact on a new database: code %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(t, env, "status")
	if code != 0 || !strings.Contains(stdout, "== Certificate compaction ==\npass 1 done") {
		t.Fatalf("status: code %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(t, env, "compact", "--again")
	if code != 0 || !strings.Contains(stdout, "enqueued the certificate compaction (job ") {
		t.Fatalf("compact --again: code %d\n%s%s", code, stdout, stderr)
	}
	_, stdout, _ = runCLI(t, env, "status")
	if !strings.Contains(stdout, "pass 2 running (0 of 4 tables done, now transactions): 0 rows walked") {
		t.Fatalf("status while a pass waits for serve:\n%s", stdout)
	}
	if code, _, stderr := runCLI(t, env, "compact", "extra"); code != 2 || !strings.Contains(stderr, `unexpected argument "extra"`) {
		t.Fatalf("compact extra: code %d %q", code, stderr)
	}
}
