package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/storesync/storesync/appstore/applevectors"
	"github.com/storesync/storesync/appstore/sim"
)

// runVerifyCLI runs "storesync verify args..." in-process.
func runVerifyCLI(t *testing.T, stdin string, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	c := &cli{stdin: strings.NewReader(stdin), stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return env[k] }}
	code := run(context.Background(), c, append([]string{"verify"}, args...))
	return code, stdout.String(), stderr.String()
}

func decodeOutput(t *testing.T, stdout string) map[string]any {
	t.Helper()
	var m map[string]any
	d := json.NewDecoder(strings.NewReader(stdout))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout)
	}
	return m
}

func TestVerifyCommandVectors(t *testing.T) {
	t.Parallel()
	root := applevectors.Path(t, "tests/resources/certs/testCA.der")
	testNotification := applevectors.Text(t, "tests/resources/mock_signed_data/testNotification")
	sandbox := []string{"--root", root, "--bundle-id", "com.example", "--environment", "sandbox"}

	for _, tc := range []struct {
		name   string
		args   []string
		stdin  string
		env    map[string]string
		code   int
		stdout []string // substrings of stdout
		stderr []string // substrings of stderr
	}{
		{name: "notification as argument", args: append(sandbox, "--app-apple-id", "1234", testNotification), code: 0,
			stdout: []string{`"notificationType": "TEST"`, `"environment": "Sandbox"`, `"signedDate": 1681314324000`}},
		{name: "notification on stdin", args: append(sandbox, "-"), stdin: testNotification + "\n", code: 0,
			stdout: []string{`"notificationUUID": "9ad56bd2-0bc6-42e0-af24-fd996d87a1e6"`}},
		{name: "settings from the environment", stdin: testNotification, code: 0,
			env:    map[string]string{"APPSTORE_ROOT_CERTS": " " + root + " ,", "APPSTORE_BUNDLE_ID": "com.example", "APPSTORE_ENVIRONMENT": "SANDBOX"},
			stdout: []string{`"notificationType": "TEST"`}},
		{name: "flags win over the environment", args: append(sandbox, testNotification), code: 0,
			env: map[string]string{"APPSTORE_BUNDLE_ID": "com.other", "APPSTORE_ENVIRONMENT": "production", "APPSTORE_ROOT_CERTS": "/nonexistent"}},
		{name: "Production verifier", args: []string{"--root", root, "--bundle-id", "com.example", "--environment", "Production", "--app-apple-id", "1234", testNotification},
			code: 1, stderr: []string{"INVALID_ENVIRONMENT"}},
		{name: "Production verifier, other app id", args: []string{"--root", root, "--bundle-id", "com.example", "--environment", "production", "--app-apple-id", "1235", testNotification},
			code: 1, stderr: []string{"INVALID_APP_IDENTIFIER", "appAppleId 1234"}},
		{name: "wrong bundle", args: append(sandbox, applevectors.Text(t, "tests/resources/mock_signed_data/wrongBundleId")),
			code: 1, stderr: []string{"INVALID_APP_IDENTIFIER", "com.example.wrong"}},
		{name: "missing x5c", args: append(sandbox, applevectors.Text(t, "tests/resources/mock_signed_data/missingX5CHeaderClaim")),
			code: 1, stderr: []string{"VERIFICATION_FAILURE", "x5c"}},
		{name: "Apple's root does not trust the test chain", args: []string{"--bundle-id", "com.example", "--environment", "sandbox", testNotification},
			code: 1, stderr: []string{"VERIFICATION_FAILURE", "trusted root"}},
		{name: "transaction", args: append(sandbox, applevectors.Text(t, "tests/resources/mock_signed_data/transactionInfo")), code: 0,
			stdout: []string{`"bundleId": "com.example"`, `"signedDate": 1672956154000`}},
		{name: "transaction, other bundle", args: []string{"--root", root, "--bundle-id", "com.example.x", "--environment", "sandbox", applevectors.Text(t, "tests/resources/mock_signed_data/transactionInfo")},
			code: 1, stderr: []string{"INVALID_APP_IDENTIFIER"}},
		{name: "transaction at 2042", args: append(sandbox, "--at", "2042-04-12T20:20:46Z", applevectors.Text(t, "tests/resources/mock_signed_data/transactionInfo")),
			code: 1, stderr: []string{"VERIFICATION_FAILURE", "not valid at 2042"}},
		{name: "renewal info", args: append(sandbox, "--kind", "renewal", applevectors.Text(t, "tests/resources/mock_signed_data/renewalInfo")), code: 0,
			stdout: []string{`"environment": "Sandbox"`}},
		{name: "bare renewal info detected", args: append(sandbox, applevectors.Text(t, "tests/resources/mock_signed_data/renewalInfo")), code: 0,
			stdout: []string{`"environment": "Sandbox"`, `"signedDate": 1672956154000`}},
		{name: "bare renewal info, Production", args: []string{"--root", root, "--bundle-id", "com.example", "--environment", "production", applevectors.Text(t, "tests/resources/mock_signed_data/renewalInfo")},
			code: 1, stderr: []string{"INVALID_ENVIRONMENT", `renewal info environment "Sandbox"`}},
		{name: "Xcode transaction", args: []string{"--environment", "xcode", "--bundle-id", "com.example.naturelab.backyardbirds.example", applevectors.Text(t, "tests/resources/xcode/xcode-signed-transaction")},
			code:   0,
			stdout: []string{`"purchaseDate": 1697679936049.7297`, `"transactionId": "0"`},
			stderr: []string{"not checked"}},
		{name: "Xcode renewal info detected", args: []string{"--environment", "Xcode", applevectors.Text(t, "tests/resources/xcode/xcode-signed-renewal-info")},
			code: 0, stdout: []string{`"autoRenewProductId": "pass.premium"`}},
		{name: "claims as defaults", args: []string{"--root", root, testNotification}, code: 0,
			stdout: []string{`"notificationType": "TEST"`}, stderr: []string{`no environment given; using the payload's own claim "Sandbox"`, `"com.example"`}},
		{name: "too many parts", args: append(sandbox, "a.b.c.d"), code: 1, stderr: []string{"VERIFICATION_FAILURE"}},
		{name: "missing root file", args: []string{"--root", "/nonexistent/root.der", testNotification}, code: 1, stderr: []string{"/nonexistent/root.der"}},
		{name: "bad --at", args: append(sandbox, "--at", "yesterday", testNotification), code: 2, stderr: []string{"RFC 3339"}},
		{name: "bad environment", args: []string{"--environment", "staging", testNotification}, code: 2, stderr: []string{"staging"}},
		{name: "bad app apple id", args: append(sandbox, "--app-apple-id", "abc", testNotification), code: 2, stderr: []string{`"abc"`}},
		{name: "bad app apple id in the environment", args: append(sandbox, testNotification), env: map[string]string{"APPSTORE_APP_APPLE_ID": "x"}, code: 2, stderr: []string{"APPSTORE_APP_APPLE_ID"}},
		{name: "bad kind", args: append(sandbox, "--kind", "receipt", testNotification), code: 2, stderr: []string{"--kind"}},
		{name: "two arguments", args: append(sandbox, testNotification, testNotification), code: 2, stderr: []string{"at most one"}},
		{name: "empty stdin", args: sandbox, code: 2, stderr: []string{"no JWS"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runVerifyCLI(t, tc.stdin, tc.env, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout %s\nstderr %s", code, tc.code, stdout, stderr)
			}
			if code == 0 {
				decodeOutput(t, stdout)
			} else if stdout != "" {
				t.Errorf("output on failure: %s", stdout)
			}
			for _, s := range tc.stdout {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout)
				}
			}
			for _, s := range tc.stderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
		})
	}
}

// TestVerifyCommandInnerFields signs a notification carrying a signed
// transaction and signed renewal info with Apple's test leaf: the output
// shows both decoded beside the raw strings, and a forged inner field fails.
func TestVerifyCommandInnerFields(t *testing.T) {
	t.Parallel()
	s := newTestSigner(t)
	model := func(name string) []byte {
		return bytes.ReplaceAll([]byte(applevectors.Text(t, "tests/resources/models/"+name)), []byte(`"LocalTesting"`), []byte(`"Sandbox"`))
	}
	notification := func(tx, renewal string) string {
		var m map[string]any
		if err := json.Unmarshal(model("signedNotification.json"), &m); err != nil {
			t.Fatal(err)
		}
		data := m["data"].(map[string]any)
		data["signedTransactionInfo"], data["signedRenewalInfo"] = tx, renewal
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return s.sign(t, s.leafKey, b)
	}
	tx := s.sign(t, s.leafKey, model("signedTransaction.json"))
	renewal := s.sign(t, s.leafKey, model("signedRenewalInfo.json"))
	args := []string{"--root", applevectors.Path(t, "tests/resources/certs/testCA.der"), "--bundle-id", "com.example", "--environment", "sandbox"}

	code, stdout, stderr := runVerifyCLI(t, notification(tx, renewal), nil, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	out := decodeOutput(t, stdout)
	data := out["data"].(map[string]any)
	txInfo, _ := data["transactionInfo"].(map[string]any)
	renewalInfo, _ := data["renewalInfo"].(map[string]any)
	if data["signedTransactionInfo"] != tx || data["signedRenewalInfo"] != renewal {
		t.Error("raw inner strings not kept")
	}
	if txInfo["transactionId"] != "23456" || txInfo["expiresDate"] != json.Number("1698149000000") {
		t.Errorf("transactionInfo %v", txInfo)
	}
	if renewalInfo["autoRenewProductId"] != "com.example.product.2" || renewalInfo["environment"] != "Sandbox" {
		t.Errorf("renewalInfo %v", renewalInfo)
	}
	if out["notificationType"] != "SUBSCRIBED" {
		t.Errorf("notificationType %v", out["notificationType"])
	}

	// The same transaction signed by a key that is not the leaf's.
	forged := s.sign(t, s.interKey, model("signedTransaction.json"))
	code, stdout, stderr = runVerifyCLI(t, notification(forged, renewal), nil, args...)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "VERIFICATION_FAILURE") || !strings.Contains(stderr, "data.signedTransactionInfo") {
		t.Fatalf("forged inner transaction: exit %d stderr %s", code, stderr)
	}
	// The transaction alone is detected and verified as a transaction.
	code, stdout, stderr = runVerifyCLI(t, tx, nil, args...)
	if code != 0 || decodeOutput(t, stdout)["transactionId"] != "23456" {
		t.Fatalf("transaction: exit %d stderr %s", code, stderr)
	}
	code, stdout, stderr = runVerifyCLI(t, renewal, nil, args...)
	if code != 0 || decodeOutput(t, stdout)["autoRenewStatus"] != json.Number("1") {
		t.Fatalf("renewal info: exit %d stderr %s", code, stderr)
	}
}

// testSigner signs JWS with Apple's test PKI (Java library resources).
type testSigner struct {
	leafKey, interKey *ecdsa.PrivateKey
	x5c               []string
}

func newTestSigner(t *testing.T) *testSigner {
	t.Helper()
	const dir = "java/src/test/resources/certs/"
	key := func(name string) *ecdsa.PrivateKey {
		blk, _ := pem.Decode([]byte(applevectors.Text(t, dir+name)))
		if blk == nil {
			t.Fatalf("%s: no PEM", name)
		}
		k, err := x509.ParseECPrivateKey(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	cert := func(name string) string {
		blk, _ := pem.Decode([]byte(applevectors.Text(t, dir+name)))
		if blk == nil {
			t.Fatalf("%s: no PEM", name)
		}
		return base64.StdEncoding.EncodeToString(blk.Bytes)
	}
	return &testSigner{
		leafKey: key("testLeaf.key"), interKey: key("testIntermediate.key"),
		x5c: []string{cert("testLeaf.pem"), cert("testIntermediate.pem"), cert("testCA.pem")},
	}
}

func (s *testSigner) sign(t *testing.T, key *ecdsa.PrivateKey, payload []byte) string {
	t.Helper()
	jws, err := sim.SignJWS(key, map[string]any{"alg": "ES256", "x5c": s.x5c}, payload)
	if err != nil {
		t.Fatal(err)
	}
	return jws
}
