package appstore

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/storesync/storesync/appstore/applevectors"
)

func TestDetectPayload(t *testing.T) {
	t.Parallel()
	vector := func(rel string) string { return applevectors.Text(t, "tests/resources/"+rel) }
	notification := vector("mock_signed_data/testNotification")
	parts := strings.Split(notification, ".")
	padded := parts[0] + "." + parts[1] + strings.Repeat("=", (4-len(parts[1])%4)%4) + "." + parts[2]
	for _, tc := range []struct {
		name   string
		jws    string
		kind   PayloadKind
		claims PayloadClaims
	}{
		{"notification", notification, PayloadNotification, PayloadClaims{BundleID: "com.example", AppAppleID: 1234, Environment: Sandbox}},
		{"notification without environment", vector("mock_signed_data/wrongBundleId"), PayloadNotification, PayloadClaims{BundleID: "com.example.wrong"}},
		{"transaction", vector("mock_signed_data/transactionInfo"), PayloadTransaction, PayloadClaims{BundleID: "com.example", Environment: Sandbox}},
		// Apple's mock renewal info holds only environment and
		// signedDate: no transactionId, no bundleId, so renewal info, as
		// Apple's SignedDataVerifier verifies it.
		{"bare renewal info", vector("mock_signed_data/renewalInfo"), PayloadRenewalInfo, PayloadClaims{Environment: Sandbox}},
		{"transaction without transactionId", vector("mock_signed_data/transactionInfo"), PayloadTransaction, PayloadClaims{BundleID: "com.example", Environment: Sandbox}},
		{"Xcode transaction", vector("xcode/xcode-signed-transaction"), PayloadTransaction, PayloadClaims{BundleID: "com.example.naturelab.backyardbirds.example", Environment: Xcode}},
		{"Xcode renewal info", vector("xcode/xcode-signed-renewal-info"), PayloadRenewalInfo, PayloadClaims{Environment: Xcode}},
		// The kind and data's identity still read; the environment is
		// read as verification reads it, which refuses padding.
		{"padding tolerated", padded, PayloadNotification, PayloadClaims{BundleID: "com.example", AppAppleID: 1234}},
		{"too many parts", "a.b.c.d", PayloadNotification, PayloadClaims{}},
		{"payload not base64url", "a.!!.c", PayloadNotification, PayloadClaims{}},
		{"payload not an object", "a." + base64.RawURLEncoding.EncodeToString([]byte(`[1]`)) + ".c", PayloadNotification, PayloadClaims{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kind, claims := DetectPayload(tc.jws)
			if kind != tc.kind || claims != tc.claims {
				t.Fatalf("got %v %+v, want %v %+v", kind, claims, tc.kind, tc.claims)
			}
		})
	}
}

func TestParsePayloadKind(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]PayloadKind{
		"": PayloadDetect, "notification": PayloadNotification, "Transaction": PayloadTransaction,
		"renewal": PayloadRenewalInfo, "RenewalInfo": PayloadRenewalInfo,
	} {
		if got, err := ParsePayloadKind(in); err != nil || got != want {
			t.Errorf("%q: %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParsePayloadKind("receipt"); err == nil || !strings.Contains(err.Error(), `"receipt"`) {
		t.Errorf("receipt: %v", err)
	}
}
