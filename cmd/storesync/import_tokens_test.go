package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/storesync/storesync/migrations/migrationstest"
)

// The token flags' usage errors, and a dry run that imports nothing and
// says why each row would be skipped on an empty ledger.
func TestImportSetAppAccountTokenFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"import", "a.csv", "--dry-run"},
		{"import", "a.csv", "--overwrite-app-account-token"},
		{"import", "-", "--set-app-account-token"},
	} {
		code, _, stderr := runCLI(t, nil, args...)
		if code != 2 || !strings.Contains(stderr, "--set-app-account-token") {
			t.Errorf("%v: code %d, stderr %q", args, code, stderr)
		}
	}
	env := map[string]string{"DATABASE_URL": migrationstest.NewDatabaseURL(t)}
	file := filepath.Join(t.TempDir(), "subs.csv")
	text := "original_transaction_id,app_account_token,customer_id\n" +
		"2000000000000001,6f1c2b3a-0000-4000-8000-00000000abcd,c-1\n" +
		"2000000000000002,,\n"
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI(t, env, "import", file, "--set-app-account-token", "--dry-run")
	if code != 0 {
		t.Fatalf("code %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"line 2: skipped 2000000000000001: not in the ledger yet", "line 3: skipped 2000000000000002: neither app_account_token nor customer_id",
		"dry run: 0 appAccountTokens would be set", "nothing was changed"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "enqueued") {
		t.Fatalf("the dry run imported:\n%s", stdout)
	}
}
