package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestSimServesAndPrintsSettings runs `storesync sim` in-process, reads the
// printed settings, calls the API with them and stops it.
func TestSimServesAndPrintsSettings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		c := &cli{stdin: strings.NewReader(""), stdout: pw, stderr: pw, getenv: func(string) string { return "" }}
		done <- run(ctx, c, []string{"sim", "--subscribers", "50", "--listen", "127.0.0.1:0", "--seed", "3", "--dir", dir})
		pw.Close()
	}()
	exports := map[string]string{}
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		line := sc.Text()
		if k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "="); ok && strings.HasPrefix(line, "export ") {
			exports[k] = strings.Trim(v, "'")
		}
		if strings.HasPrefix(line, "Serving until interrupted") {
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	for _, k := range []string{"APPSTORE_BASE_URL", "APPSTORE_ENVIRONMENT", "APPSTORE_KEY_ID", "APPSTORE_ISSUER_ID",
		"APPSTORE_PRIVATE_KEY_FILE", "APPSTORE_BUNDLE_ID", "APPSTORE_APP_APPLE_ID", "APPSTORE_ROOT_CERTS",
		"APPSTORE_SANDBOX_FALLBACK", "APPSTORE_SANDBOX_BASE_URL"} {
		if exports[k] == "" {
			t.Errorf("no export line for %s (got %v)", k, exports)
		}
	}
	for _, k := range []string{"APPSTORE_PRIVATE_KEY_FILE", "APPSTORE_ROOT_CERTS"} {
		if _, err := os.Stat(exports[k]); err != nil {
			t.Errorf("%s: %v", k, err)
		}
	}
	base := exports["APPSTORE_BASE_URL"]
	resp, err := http.Get(base + "/sim/token")
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp, err = http.Get(base + "/sim/ids")
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	lines := strings.Split(strings.TrimSpace(string(ids)), "\n")
	if len(lines) < 2 || lines[0] != "original_transaction_id,app_account_token" {
		t.Fatalf("ids CSV %q", ids)
	}
	otid, _, _ := strings.Cut(lines[1], ",")
	req, _ := http.NewRequest("GET", base+"/inApps/v1/subscriptions/"+otid, nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("statuses with the printed settings: %d", resp.StatusCode)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sim did not stop")
	}

	// A second run on the same directory keeps the root and the key.
	root1, _ := os.ReadFile(exports["APPSTORE_ROOT_CERTS"])
	key1, _ := os.ReadFile(exports["APPSTORE_PRIVATE_KEY_FILE"])
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	code, _, stderr := runCLIContext(t, ctx2, "sim", "--subscribers", "5", "--listen", "127.0.0.1:0", "--dir", dir)
	if code != 0 {
		t.Fatalf("second run: %d %s", code, stderr)
	}
	root2, _ := os.ReadFile(exports["APPSTORE_ROOT_CERTS"])
	key2, _ := os.ReadFile(exports["APPSTORE_PRIVATE_KEY_FILE"])
	if string(root1) != string(root2) || string(key1) != string(key2) {
		t.Fatal("second run on the same --dir replaced the root or the key")
	}
}

func runCLIContext(t *testing.T, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr strings.Builder
	c := &cli{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }}
	code := run(ctx, c, args)
	return code, stdout.String(), stderr.String()
}

func TestSimBadFlagsExit2(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"sim", "--subscribers", "0"},
		{"sim", "--drop-share", "2"},
		{"sim", "--start", "yesterday"},
		{"sim", "--webhook", "not a url", "--dir", t.TempDir()},
		{"sim", "extra"},
	} {
		code, _, stderr := runCLI(t, nil, args...)
		if code != 2 || !strings.Contains(stderr, "usage: storesync sim") {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
}
