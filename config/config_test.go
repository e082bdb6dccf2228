package config_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/config"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// newKeyPEM generates a throwaway P-256 key in the .p8 (PKCS#8 PEM) form.
func newKeyPEM(t *testing.T) []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	c, err := config.Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.DatabaseURL != config.DefaultDatabaseURL || c.Environment != appstore.Production || c.RateShare != 1 ||
		c.Listen != ":8080" || c.ReconcileCron != "0 3 * * *" || c.ReconcileBudget.Fraction != 0.25 {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	if err := c.RequireAppStore(); err == nil || len(err.(config.Problems)) != 5 {
		t.Fatalf("RequireAppStore on empty config: want 5 problems, got %v", err)
	}
}

func TestLoadReportsEveryProblemAtOnce(t *testing.T) {
	t.Parallel()
	_, err := config.Load(env(map[string]string{
		"DATABASE_URL":               "mysql://x",
		"APPSTORE_ENVIRONMENT":       "staging",
		"APPSTORE_SANDBOX_FALLBACK":  "maybe",
		"APPSTORE_BASE_URL":          "ftp://x",
		"APPSTORE_PRIVATE_KEY_FILE":  "/nonexistent/key.p8",
		"APPSTORE_APP_APPLE_ID":      "abc",
		"APPSTORE_ROOT_CERTS":        "/nonexistent/root.pem",
		"APPSTORE_RATE_LIMITS":       "statuses=50,bogus=3,history=-1,transaction",
		"APPSTORE_RATE_SHARE":        "1.5",
		"STORESYNC_LISTEN":           "nope",
		"STORESYNC_ADMIN_TOKEN":      "short",
		"STORESYNC_RECONCILE_CRON":   "every night",
		"STORESYNC_BACKFILL_CRON":    "61 * * * *",
		"STORESYNC_RECONCILE_BUDGET": "200%",
	}))
	problems, ok := err.(config.Problems)
	if !ok {
		t.Fatalf("want config.Problems, got %T %v", err, err)
	}
	for _, name := range []string{"DATABASE_URL", "APPSTORE_ENVIRONMENT", "APPSTORE_SANDBOX_FALLBACK",
		"APPSTORE_BASE_URL", "APPSTORE_PRIVATE_KEY_FILE", "APPSTORE_APP_APPLE_ID", "APPSTORE_ROOT_CERTS",
		"bogus", "history=", "transaction", "APPSTORE_RATE_SHARE", "STORESYNC_LISTEN", "STORESYNC_ADMIN_TOKEN",
		"STORESYNC_RECONCILE_CRON", "STORESYNC_BACKFILL_CRON", "STORESYNC_RECONCILE_BUDGET"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("problems do not mention %s:\n%v", name, err)
		}
	}
	if len(problems) != 16 {
		t.Errorf("want 16 problems, got %d:\n%v", len(problems), err)
	}
}

func TestPrivateKeyIsValidatedAndNeverPrinted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "AuthKey.p8")
	keyPEM := newKeyPEM(t)
	os.WriteFile(good, keyPEM, 0o600)
	bad := filepath.Join(dir, "bad.p8")
	os.WriteFile(bad, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600)

	c, err := config.Load(env(map[string]string{
		"APPSTORE_PRIVATE_KEY_FILE": good, "APPSTORE_KEY_ID": "ABC123", "APPSTORE_ISSUER_ID": "iss",
		"APPSTORE_BUNDLE_ID": "com.example", "APPSTORE_APP_APPLE_ID": "123", "STORESYNC_ADMIN_TOKEN": "0123456789abcdef0123",
		"DATABASE_URL": "postgres://u:hunter2@db/storesync",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RequireAppStore(); err != nil {
		t.Fatal(err)
	}
	s := c.String()
	for _, secret := range []string{"hunter2", "0123456789abcdef0123", string(keyPEM[28:60])} {
		if strings.Contains(s, secret) {
			t.Fatalf("String() leaks a secret: %s", s)
		}
	}
	_, err = config.Load(env(map[string]string{"APPSTORE_PRIVATE_KEY_FILE": bad}))
	if err == nil || !strings.Contains(err.Error(), "APPSTORE_PRIVATE_KEY_FILE") || strings.Contains(err.Error(), "AAAA") {
		t.Fatalf("bad key: want an error naming the variable without its content, got %v", err)
	}
}

func TestEffectiveRateLimits(t *testing.T) {
	t.Parallel()
	c, err := config.Load(env(map[string]string{"APPSTORE_RATE_LIMITS": "statuses=20", "APPSTORE_RATE_SHARE": "0.5", "APPSTORE_ENVIRONMENT": "Sandbox"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Environment != appstore.Sandbox {
		t.Fatalf("environment names are case-insensitive: got %s", c.Environment)
	}
	prod := c.EffectiveRateLimits(appstore.Production)
	sand := c.EffectiveRateLimits(appstore.Sandbox)
	// The override is the configured (sandbox) environment's limit; other
	// endpoints keep Apple's defaults, 10% in the sandbox.
	if sand[appstore.EndpointStatuses] != 10 || sand[appstore.EndpointHistory] != 2.5 || prod[appstore.EndpointHistory] != 25 {
		t.Fatalf("limits: prod %v sandbox %v", prod, sand)
	}
}

func TestOverriddenBaseURLWithFallbackNeedsSandboxURL(t *testing.T) {
	t.Parallel()
	base := map[string]string{"APPSTORE_BASE_URL": "http://127.0.0.1:9000", "APPSTORE_SANDBOX_FALLBACK": "true"}
	if _, err := config.Load(env(base)); err == nil || !strings.Contains(err.Error(), "APPSTORE_SANDBOX_BASE_URL") {
		t.Fatalf("want a problem naming APPSTORE_SANDBOX_BASE_URL, got %v", err)
	}
	base["APPSTORE_SANDBOX_BASE_URL"] = "http://127.0.0.1:9000/sandbox"
	c, err := config.Load(env(base))
	if err != nil || c.SandboxBaseURL != "http://127.0.0.1:9000/sandbox" {
		t.Fatalf("got %+v, %v", c, err)
	}
}

func TestIngestSettings(t *testing.T) {
	t.Parallel()
	c, err := config.Load(env(map[string]string{"STORESYNC_INGEST_BUSY_RATE": "250", "STORESYNC_INGEST_YIELD_WORKERS": "3", "STORESYNC_INGEST_YIELD_RATE": "2.5"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.IngestBusyRate != 250 || c.IngestYieldWorkers != 3 || c.IngestYieldRate != 2.5 {
		t.Fatalf("busy rate %g, yield workers %d, yield rate %g; want 250, 3 and 2.5", c.IngestBusyRate, c.IngestYieldWorkers, c.IngestYieldRate)
	}
	if s := c.String(); !strings.Contains(s, "ingest_busy_rate=250") || !strings.Contains(s, "ingest_yield_workers=3") || !strings.Contains(s, "ingest_yield_rate=2.5") {
		t.Fatalf("String() does not show the ingest settings: %s", s)
	}
	_, err = config.Load(env(map[string]string{"STORESYNC_INGEST_BUSY_RATE": "0.5", "STORESYNC_INGEST_YIELD_WORKERS": "0", "STORESYNC_INGEST_YIELD_RATE": "0"}))
	problems, ok := err.(config.Problems)
	if !ok || len(problems) != 3 || !strings.Contains(err.Error(), "STORESYNC_INGEST_BUSY_RATE") ||
		!strings.Contains(err.Error(), "STORESYNC_INGEST_YIELD_WORKERS") || !strings.Contains(err.Error(), "STORESYNC_INGEST_YIELD_RATE") {
		t.Fatalf("want one problem each for the three bad ingest settings, got %v", err)
	}
}
