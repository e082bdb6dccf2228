package sim

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
)

func controlCall(t *testing.T, s *Simulator, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.BaseURL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestControlEndpoints(t *testing.T) {
	t.Parallel()
	s := startTest(t, unlimited(Options{Seed: 5, Subscribers: 200}))
	code, tok := controlCall(t, s, "GET", "/sim/token", "")
	id := s.OriginalTransactionIDs(appstore.Production)[0]
	if code != 200 || callWith(t, s, "GET", "/inApps/v1/transactions/"+id, nil, "Bearer "+strings.TrimSpace(string(tok))).status != 200 {
		t.Fatalf("/sim/token gave %d %q, not a usable token", code, tok)
	}
	code, b := controlCall(t, s, "POST", "/sim/advance?d=36h", "")
	var rep AdvanceReport
	if code != 200 || json.Unmarshal(b, &rep) != nil || rep.To.Sub(rep.From) != 36*time.Hour || !s.Now().Equal(rep.To) {
		t.Fatalf("/sim/advance: %d %s", code, b)
	}
	if code, _ := controlCall(t, s, "POST", "/sim/advance?d=soon", ""); code != 400 {
		t.Errorf("bad duration: %d", code)
	}
	code, b = controlCall(t, s, "GET", "/sim/truth/"+id, "")
	var tr SubscriptionTruth
	want, _ := s.TruthOf(id)
	if code != 200 || json.Unmarshal(b, &tr) != nil || tr.LatestTransactionID != want.LatestTransactionID || tr.Status != want.Status {
		t.Fatalf("/sim/truth: %d %s", code, b)
	}
	if code, _ := controlCall(t, s, "GET", "/sim/truth/1", ""); code != 404 {
		t.Errorf("unknown truth: %d", code)
	}
	code, b = controlCall(t, s, "GET", "/sim/ids?env=all", "")
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if code != 200 || len(lines) != 1+len(s.Truth()) {
		t.Fatalf("/sim/ids?env=all: %d, %d lines for %d subscriptions", code, len(lines), len(s.Truth()))
	}
	code, b = controlCall(t, s, "POST", "/sim/faults", `{"retryableErrorShare":0.25,"latency":"5ms","rateLimitStorm":"0s","endpoints":["history"]}`)
	if code != 200 || s.Faults().RetryableErrorShare != 0.25 || s.Faults().Latency != 5*time.Millisecond {
		t.Fatalf("/sim/faults: %d %s -> %+v", code, b, s.Faults())
	}
	if code, _ := controlCall(t, s, "POST", "/sim/faults", `{"latency":"fast"}`); code != 400 {
		t.Errorf("bad fault duration: %d", code)
	}
	if code, _ := controlCall(t, s, "POST", "/sim/faults", `{"typo":1}`); code != 400 {
		t.Errorf("unknown fault field: %d", code)
	}
	code, b = controlCall(t, s, "GET", "/sim/faults", "")
	var f Faults
	if code != 200 || json.Unmarshal(b, &f) != nil || f.Latency != 5*time.Millisecond || len(f.Endpoints) != 1 {
		t.Fatalf("GET /sim/faults: %d %s", code, b)
	}
	code, b = controlCall(t, s, "POST", "/sim/mutate?otid="+id+"&kind=refund", "")
	if code != 200 || !bytes.Contains(b, []byte(`"status":"revoked"`)) {
		t.Fatalf("/sim/mutate: %d %s", code, b)
	}
	if code, _ := controlCall(t, s, "POST", "/sim/mutate?otid="+id+"&kind=explode", ""); code != 400 {
		t.Errorf("bad mutation kind: %d", code)
	}
	code, b = controlCall(t, s, "GET", "/sim/stats", "")
	var st Stats
	if code != 200 || json.Unmarshal(b, &st) != nil || st.Endpoint(appstore.Production, appstore.EndpointTransaction).ByStatus[200] != 1 {
		t.Fatalf("/sim/stats: %d %s", code, b)
	}
	code, b = controlCall(t, s, "GET", "/sim/root.pem", "")
	if code != 200 || !bytes.Equal(b, s.RootPEM()) {
		t.Fatalf("/sim/root.pem: %d", code)
	}
	if code, _ := controlCall(t, s, "POST", "/sim/webhook?url=nope", ""); code != 400 {
		t.Errorf("bad webhook url: %d", code)
	}
}

func TestLatencyFault(t *testing.T) {
	t.Parallel()
	s := startTest(t, unlimited(Options{Seed: 5, Subscribers: 20, Faults: Faults{Latency: 150 * time.Millisecond}}))
	id := s.OriginalTransactionIDs(appstore.Production)[0]
	start := time.Now()
	if r := call(t, s, "GET", "/inApps/v1/transactions/"+id, nil); r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	if el := time.Since(start); el < 150*time.Millisecond {
		t.Fatalf("answered after %s, want at least the 150ms latency", el)
	}
}

func TestWriteFilesAndEnv(t *testing.T) {
	t.Parallel()
	s := startTest(t, Options{Seed: 5, Subscribers: 10})
	dir := t.TempDir()
	f, err := s.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(f.PrivateKeyPath)
	if err != nil || !bytes.Equal(key, s.PrivateKeyPEM()) {
		t.Fatalf("key file: %v", err)
	}
	if fi, _ := os.Stat(f.PrivateKeyPath); fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	if root, _ := os.ReadFile(f.RootCertPath); !bytes.Equal(root, s.RootPEM()) {
		t.Error("root file differs from RootPEM")
	}
	env := s.Env()
	for k, v := range map[string]string{
		"APPSTORE_BASE_URL": s.BaseURL(), "APPSTORE_SANDBOX_BASE_URL": s.BaseURL() + "/sandbox",
		"APPSTORE_ENVIRONMENT": "production", "APPSTORE_KEY_ID": DefaultKeyID, "APPSTORE_ISSUER_ID": DefaultIssuerID,
		"APPSTORE_BUNDLE_ID": DefaultBundleID, "APPSTORE_APP_APPLE_ID": "1234567890", "APPSTORE_SANDBOX_FALLBACK": "true",
		"APPSTORE_PRIVATE_KEY_FILE": f.PrivateKeyPath, "APPSTORE_ROOT_CERTS": f.RootCertPath,
	} {
		if env[k] != v {
			t.Errorf("Env()[%s] = %q, want %q", k, env[k], v)
		}
	}
	// A simulator given that key accepts tokens minted with it.
	s2 := startTest(t, Options{Seed: 5, Subscribers: 10, PrivateKeyPEM: key})
	tok, _ := s.Token()
	if r := callWith(t, s2, "GET", "/inApps/v1/transactions/"+s2.OriginalTransactionIDs(appstore.Production)[0], nil, "Bearer "+tok); r.status != 200 {
		t.Fatalf("token of the same key rejected: %d", r.status)
	}
}
