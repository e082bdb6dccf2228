package appstore

import (
	"errors"
	"reflect"
	"testing"

	"github.com/storesync/storesync/appstore/applevectors"
)

// FuzzVerifyNotification feeds arbitrary strings to the verifier, read
// three ways: as a compact JWS (verified by a Sandbox verifier trusting the
// test CA and by a LocalTesting one, which skips the signature); as a
// notification payload (the fast JSON reader must agree with encoding/json
// whenever it accepts, for the payload, for a JWS header and for the ids
// PeekTransactionIDs reads); and as a payload signed with the test leaf, so
// the fuzzer reaches the checks after the signature. Nothing may panic,
// every failure must be a *VerificationError, and success must return a
// payload.
//
// Run: go test -run XXX -fuzz FuzzVerifyNotification -fuzztime 60s ./appstore/
func FuzzVerifyNotification(f *testing.F) {
	c := loadTestChain(f)
	for _, dir := range []string{"tests/resources/mock_signed_data", "tests/resources/xcode"} {
		for _, name := range applevectors.Names(f, dir) {
			f.Add(string(applevectors.Bytes(f, dir+"/"+name)))
		}
	}
	for _, name := range []string{"signedNotification.json", "signedSummaryNotification.json",
		"signedExternalPurchaseTokenSandboxNotification.json", "signedRescindConsentNotification.json"} {
		payload := sandboxModel(f, name)
		f.Add(string(payload))
		f.Add(c.sign(f, payload))
	}
	f.Add(`{"alg":"ES256","x5c":["a","b","c"],"kid":"x"}`)
	f.Add(`{"data":{"bundleId":"com.example","environment":"Sandbox","appAppleId":1.5e3}}`)
	f.Add("a.b.c")
	f.Add("a.b.c.d")

	sandbox := newTestVerifier(f, c, func(o *VerifierOptions) { o.ChainCacheSize = 4 })
	local := newTestVerifier(f, c, func(o *VerifierOptions) { o.Environment = LocalTesting })

	f.Fuzz(func(t *testing.T, in string) {
		for _, v := range []*Verifier{sandbox, local} {
			checkOutcome(t, in, v)
		}
		_, _ = PeekNotificationEnvironment(in)
		if otid, tid, err := PeekTransactionIDs(in); err != nil && (otid != "" || tid != "" || StatusOf(err) != VerificationFailure) {
			t.Fatalf("PeekTransactionIDs(%q): %q %q %v", in, otid, tid, err)
		}

		// As JSON: the fast readers against encoding/json.
		compareDecoders(t, []byte(in))
		compareHeaderDecoders(t, []byte(in))
		compareTransactionIDDecoders(t, []byte(in))

		// As a payload with a valid signature.
		if len(in) < 4096 && isJSONObject([]byte(in)) {
			checkOutcome(t, c.sign(t, []byte(in)), sandbox)
		}
	})
}

func checkOutcome(t *testing.T, jws string, v *Verifier) {
	n, err := v.VerifyNotification(jws)
	var ve *VerificationError
	switch {
	case err == nil && n == nil:
		t.Fatalf("no error and no payload for %q", jws)
	case err != nil && !errors.As(err, &ve):
		t.Fatalf("error %v is not a *VerificationError", err)
	case err != nil && (ve.Status == VerificationOK || ve.Status == RetryableVerificationFailure):
		t.Fatalf("offline verification gave status %v", ve.Status)
	}
}

// compareHeaderDecoders fails t if the fast header reader accepts b with a
// result other than the general path's.
func compareHeaderDecoders(t *testing.T, b []byte) {
	var fast compactJWS
	if !fast.decodeHeaderFast(string(b)) {
		return
	}
	var slow compactJWS
	if err := slow.decodeHeaderSlow(b); err != nil {
		t.Fatalf("fast header path accepted %q, encoding/json rejects it: %v", b, err)
	}
	if fast.alg != slow.alg || fast.hasX5C != slow.hasX5C || !reflect.DeepEqual(fast.x5c, slow.x5c) {
		t.Fatalf("header decoders differ on %q: fast %q %v %q, slow %q %v %q", b,
			fast.alg, fast.hasX5C, fast.x5c, slow.alg, slow.hasX5C, slow.x5c)
	}
}
