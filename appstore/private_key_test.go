package appstore

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/storesync/storesync/appstore/applevectors"
)

func TestParsePrivateKeyP8(t *testing.T) {
	t.Parallel()
	raw := applevectors.Bytes(t, "tests/resources/certs/testSigningKey.p8")
	k, err := ParsePrivateKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	if k.Curve != elliptic.P256() {
		t.Errorf("curve %s", k.Curve.Params().Name)
	}
	// The same key with CRLF line ends, surrounding text, or flattened to
	// literal \n as in an environment variable.
	for name, variant := range map[string][]byte{
		"crlf":      []byte(strings.ReplaceAll(string(raw), "\n", "\r\n")),
		"text":      append([]byte("key from App Store Connect:\n"), raw...),
		"escaped":   []byte(strings.ReplaceAll(strings.TrimSpace(string(raw)), "\n", `\n`)),
		"no_ending": []byte(strings.TrimSpace(string(raw))),
	} {
		k2, err := ParsePrivateKey(variant)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		} else if !k2.Equal(k) {
			t.Errorf("%s: a different key", name)
		}
	}
	// A SEC1 "EC PRIVATE KEY" P-256 key (Apple's test CA key) parses too.
	sec1, err := ParsePrivateKey(applevectors.Bytes(t, "java/src/test/resources/certs/testCA.key"))
	if err != nil || sec1.Curve != elliptic.P256() {
		t.Errorf("SEC1 key: %v", err)
	}
}

func TestParsePrivateKeyErrors(t *testing.T) {
	t.Parallel()
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384der, _ := x509.MarshalPKCS8PrivateKey(p384)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	rsaDER, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	pemOf := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	garbled := pemOf("PRIVATE KEY", []byte("definitely not DER but secret-ish bytes"))
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"blank", []byte(" \n"), "empty"},
		{"not pem", []byte("MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg"), "not PEM"},
		{"certificate", pemOf("CERTIFICATE", []byte{1, 2, 3}), `"CERTIFICATE"`},
		{"garbled", garbled, "does not parse"},
		{"rsa", pemOf("PRIVATE KEY", rsaDER), "not an EC key"},
		{"p384", pemOf("PRIVATE KEY", p384der), "P-384"},
	} {
		_, err := ParsePrivateKey(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error mentioning %q", tc.name, err, tc.want)
			continue
		}
		// Never echo key material: no line of the PEM body may appear.
		for _, line := range strings.Split(string(tc.in), "\n") {
			if len(line) > 16 && !strings.HasPrefix(line, "-----") && strings.Contains(err.Error(), line) {
				t.Errorf("%s: error %q echoes input %q", tc.name, err, line)
			}
		}
		if strings.Contains(err.Error(), "secret-ish") {
			t.Errorf("%s: error echoes the key bytes", tc.name)
		}
	}
	// A P-384 key is refused by NewClient as well.
	_, err := NewClient(ClientOptions{KeyID: "k", IssuerID: "i", BundleID: "b", PrivateKey: p384, Environment: Sandbox})
	if err == nil || !strings.Contains(err.Error(), "ClientOptions.PrivateKey") {
		t.Errorf("NewClient with a P-384 key: %v", err)
	}
}
