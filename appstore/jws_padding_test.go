package appstore

import (
	"strings"
	"testing"

	"github.com/storesync/storesync/appstore/applevectors"
)

// padded appends base64 '=' padding to seg, as a standard (not JWS)
// encoder would; ok is false when seg needs none.
func padded(seg string) (string, bool) {
	if len(seg)%4 == 0 {
		return seg, false
	}
	return seg + strings.Repeat("=", 4-len(seg)%4), true
}

// Apple's SignedDataVerifier refuses a JWS whose segments carry '='
// padding (JWS compact serialization is unpadded base64url): storesync
// must decide the same, for every segment, and so must PeekTransactionIDs.
func TestPaddedSegmentsAreVerificationFailures(t *testing.T) {
	t.Parallel()
	v, err := NewVerifier(VerifierOptions{
		RootCertificates: [][]byte{applevectors.Bytes(t, "tests/resources/certs/testCA.der")},
		Environment:      Sandbox, BundleID: "com.example", AppAppleID: 1234,
	})
	if err != nil {
		t.Fatal(err)
	}
	jws := applevectors.Text(t, "tests/resources/mock_signed_data/testNotification")
	if _, err := v.VerifyNotification(jws); err != nil {
		t.Fatalf("the unpadded vector must verify: %v", err)
	}
	parts := strings.Split(jws, ".")
	tried := 0
	for i, name := range []string{"header", "payload", "signature"} {
		seg, ok := padded(parts[i])
		if !ok {
			continue
		}
		tried++
		p := append([]string(nil), parts...)
		p[i] = seg
		_, err := v.VerifyNotification(strings.Join(p, "."))
		wantStatus(t, "padded "+name, err, VerificationFailure)
	}
	if tried == 0 {
		t.Fatal("no segment of the vector needs padding: the test proves nothing")
	}
	if _, err := parseJWS(parts[0] + "==." + parts[1] + "." + parts[2]); StatusOf(err) != VerificationFailure {
		t.Fatalf("a header with stray padding parsed: %v", err)
	}
}
