package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseEntitlementsGrants(t *testing.T) {
	e, err := ParseEntitlements("e.json", []byte(`{"products": [
  {"productId": "pro.monthly", "entitlements": ["pro", "cloud", "pro"]},
  {"productId": "pro.test", "entitlements": ["pro"], "sandbox": true}
]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		product, env string
		want         []string
	}{
		{"pro.monthly", "Production", []string{"cloud", "pro"}},
		{"pro.monthly", "Sandbox", nil}, // a test purchase never unlocks production access
		{"pro.monthly", "Xcode", nil},
		{"pro.test", "Sandbox", []string{"pro"}},
		{"pro.test", "Production", []string{"pro"}},
		{"unknown", "Production", nil},
	} {
		if got := e.Grants(c.product, c.env); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Grants(%s, %s) = %v, want %v", c.product, c.env, got, c.want)
		}
	}
	var none *Entitlements
	if none.Grants("pro.monthly", "Production") != nil {
		t.Error("nil Entitlements granted something")
	}
}

func TestParseEntitlementsNamesLineEntryAndFix(t *testing.T) {
	_, err := ParseEntitlements("e.json", []byte(`{"products": [
  {"productId": "a", "entitlements": ["pro"]},
  {"productId": "a", "entitlements": ["pro"]},
  {"productId": "b", "entitlements": []},
  {"productId": "c", "entitlements": ["pro"], "sandbx": true},
  {"entitlements": ["pro"]},
  {"productId": "d", "entitlements": ["has space"]}
]}`))
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{
		`line 3: products entry 2 repeats productId "a": merge`,
		`line 4: products entry 3 (b) grants no entitlements`,
		`line 5: products entry 4: json: unknown field "sandbx"`,
		`line 6: products entry 5 has no productId`,
		`line 7: products entry 6 (d): entitlement "has space" is not a name`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	for _, bad := range []string{`{"products": [`, `[]`, `{}`, `{"product": []}`} {
		if _, err := ParseEntitlements("e.json", []byte(bad)); err == nil || !strings.Contains(err.Error(), "e.json line") {
			t.Errorf("%s: error %v does not name the line", bad, err)
		}
	}
}

func TestLoadReadsEntitlementsAndAPITokens(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "e.json")
	if err := os.WriteFile(f, []byte(`{"products": [{"productId": "p", "entitlements": ["pro"]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"STORESYNC_ENTITLEMENTS_FILE": f,
		"STORESYNC_API_TOKENS":        "0123456789abcdef, fedcba9876543210",
	}
	c, err := Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if len(c.APITokens) != 2 || c.Entitlements.Grants("p", "Production")[0] != "pro" {
		t.Fatalf("tokens %d, grants %v", len(c.APITokens), c.Entitlements.Grants("p", "Production"))
	}
	if strings.Contains(c.String(), "0123456789abcdef") {
		t.Fatal("String() leaks an API token")
	}
	env["STORESYNC_API_TOKENS"] = "short-secret,"
	env["STORESYNC_ENTITLEMENTS_FILE"] = filepath.Join(dir, "missing.json")
	_, err = Load(func(k string) string { return env[k] })
	if err == nil || strings.Contains(err.Error(), "short-secret") ||
		!strings.Contains(err.Error(), "STORESYNC_API_TOKENS token 1 is shorter") ||
		!strings.Contains(err.Error(), "STORESYNC_ENTITLEMENTS_FILE") {
		t.Fatalf("error: %v", err)
	}
}
