package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// runCLI runs one storesync command line in-process with the given
// environment and returns its exit status and output.
func runCLI(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	c := &cli{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return env[k] }}
	code := run(context.Background(), c, args)
	return code, stdout.String(), stderr.String()
}

func TestUnknownCommandAndBadFlagExit2(t *testing.T) {
	t.Parallel()
	code, _, stderr := runCLI(t, nil, "frobnicate")
	if code != 2 || !strings.Contains(stderr, `unknown command "frobnicate"`) || !strings.Contains(stderr, "usage:") {
		t.Fatalf("unknown command: code %d stderr %q", code, stderr)
	}
	code, _, stderr = runCLI(t, nil, "show", "--bogus")
	if code != 2 || !strings.Contains(stderr, "bogus") || !strings.Contains(stderr, "usage: storesync show") {
		t.Fatalf("bad flag: code %d stderr %q", code, stderr)
	}
	code, stdout, _ := runCLI(t, nil, "help", "show")
	if code != 0 || !strings.Contains(stdout, "--original-transaction-id") {
		t.Fatalf("help show: code %d stdout %q", code, stdout)
	}
}

func TestBadConfigurationListsEveryProblemAndExits1(t *testing.T) {
	t.Parallel()
	code, _, stderr := runCLI(t, map[string]string{"DATABASE_URL": "mysql://x", "APPSTORE_RATE_SHARE": "7"}, "migrate")
	if code != 1 || !strings.Contains(stderr, "DATABASE_URL") || !strings.Contains(stderr, "APPSTORE_RATE_SHARE") {
		t.Fatalf("code %d stderr %q", code, stderr)
	}
}

func TestParseFlagsAnyOrder(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"file.csv", "--wait"}, {"--wait", "file.csv"}} {
		fs := newTestFlagSet()
		wait := fs.Bool("wait", false, "")
		rest, err := parseFlags(fs, args)
		if err != nil || !*wait || len(rest) != 1 || rest[0] != "file.csv" {
			t.Fatalf("%v: rest %v wait %v err %v", args, rest, *wait, err)
		}
	}
}

// help lists every command once, by name, each with its summary; each one
// explains itself.
func TestHelpListsEveryCommandByName(t *testing.T) {
	t.Parallel()
	code, stdout, _ := runCLI(t, nil, "help")
	if code != 0 {
		t.Fatalf("help: code %d", code)
	}
	var listed []string
	for _, line := range strings.Split(stdout, "\n") {
		if f := strings.Fields(line); strings.HasPrefix(line, "  ") && len(f) > 1 {
			listed = append(listed, f[0])
		}
	}
	want := []string{"backfill", "compact", "demo", "endpoints", "events", "import", "migrate", "reconcile", "resubmit", "resync", "serve", "show", "sim", "status", "verify"}
	if strings.Join(listed, " ") != strings.Join(want, " ") {
		t.Fatalf("help lists %v, want %v:\n%s", listed, want, stdout)
	}
	for _, c := range commands() {
		if !strings.Contains(stdout, "  "+c.name+strings.Repeat(" ", 11-len(c.name))+c.summary+"\n") {
			t.Errorf("help lacks %s's summary:\n%s", c.name, stdout)
		}
		if code, out, _ := runCLI(t, nil, "help", c.name); code != 0 || !strings.HasPrefix(out, c.summary+"\n\nstoresync ") {
			t.Errorf("help %s: code %d\n%s", c.name, code, out)
		}
	}
}
