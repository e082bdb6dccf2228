package appstore

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/storesync/storesync/appstore/applevectors"
)

// TestPeekTransactionIDsReadsWhatVerificationDecodes signs Apple's model
// transaction and renewal info with the test chain: the peeked ids must be
// the ones the verifier returns for the same bytes.
func TestPeekTransactionIDsReadsWhatVerificationDecodes(t *testing.T) {
	t.Parallel()
	c := loadTestChain(t)
	v := newTestVerifier(t, c, nil)

	txJWS := c.sign(t, sandboxModel(t, "signedTransaction.json"))
	tx, err := v.VerifyTransaction(txJWS)
	if err != nil {
		t.Fatal(err)
	}
	otid, tid, err := PeekTransactionIDs(txJWS)
	if err != nil || otid != tx.OriginalTransactionID || tid != tx.TransactionID || otid == "" || tid == "" || otid == tid {
		t.Fatalf("transaction: peeked %q %q %v, verified %q %q", otid, tid, err, tx.OriginalTransactionID, tx.TransactionID)
	}

	riJWS := c.sign(t, sandboxModel(t, "signedRenewalInfo.json"))
	ri, err := v.VerifyRenewalInfo(riJWS)
	if err != nil {
		t.Fatal(err)
	}
	otid, tid, err = PeekTransactionIDs(riJWS)
	if err != nil || otid != ri.OriginalTransactionID || otid == "" || tid != "" {
		t.Fatalf("renewal info: peeked %q %q %v, verified %q", otid, tid, err, ri.OriginalTransactionID)
	}

	// Apple's signed vectors without ids: no error, empty ids.
	for _, name := range []string{"transactionInfo", "renewalInfo"} {
		otid, tid, err := PeekTransactionIDs(string(applevectors.Bytes(t, "tests/resources/mock_signed_data/"+name)))
		if err != nil || otid != "" || tid != "" {
			t.Errorf("%s: %q %q %v", name, otid, tid, err)
		}
	}
}

// TestPeekTransactionIDsDoesNotVerify: a broken signature or a chain from
// nowhere is still read. This is the documented contract (the caller
// vouches for the bytes), asserted so nobody relies on the opposite.
func TestPeekTransactionIDsDoesNotVerify(t *testing.T) {
	t.Parallel()
	c := loadTestChain(t)
	payload := []byte(`{"originalTransactionId":"77","transactionId":"78","bundleId":"com.attacker"}`)
	h, _ := json.Marshal(map[string]any{"alg": "none"})
	unsigned := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(payload) + "."
	signed := c.sign(t, payload)
	forged := signed[:strings.LastIndexByte(signed, '.')+1] + "AAAA"
	for _, jws := range []string{unsigned, forged} {
		if otid, tid, err := PeekTransactionIDs(jws); err != nil || otid != "77" || tid != "78" {
			t.Errorf("%.40s...: %q %q %v", jws, otid, tid, err)
		}
		if _, err := newTestVerifier(t, c, nil).VerifyTransaction(jws); err == nil {
			t.Errorf("the verifier accepted %.40s...", jws)
		}
	}
}

// TestPeekTransactionIDsAgreesWithEncodingJSON covers payloads the fast
// reader hands to encoding/json (escapes, keys differing in case,
// repeated keys, null), each compared with what decoding into
// TransactionPayload, as verification does, gives.
func TestPeekTransactionIDsAgreesWithEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, p := range []string{
		`{"originalTransactionId":"1","transactionId":"2"}`,
		`{"transactionId":"2","price":10990,"advancedCommerceInfo":{"items":[{"SKU":"x"}]},"originalTransactionId":"1"}`,
		`{"originalTransactionId":"1\u00322","transactionId":"2"}`,
		`{"OriginalTransactionID":"9","transactionId":"2"}`,
		`{"originalTransactionId":"1","originalTransactionId":"3"}`,
		`{"originalTransactionId":null,"transactionId":"é"}`,
		` { "originalTransactionId" : "1" } `,
	} {
		var want TransactionPayload
		if err := json.Unmarshal([]byte(p), &want); err != nil {
			t.Fatal(err)
		}
		jws := "e30." + base64.RawURLEncoding.EncodeToString([]byte(p)) + ".c2ln"
		otid, tid, err := PeekTransactionIDs(jws)
		if err != nil || otid != want.OriginalTransactionID || tid != want.TransactionID {
			t.Errorf("%s: peeked %q %q %v, want %q %q", p, otid, tid, err, want.OriginalTransactionID, want.TransactionID)
		}
	}
}

func TestPeekTransactionIDsRejectsWhatDoesNotDecode(t *testing.T) {
	t.Parallel()
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, jws := range []string{
		"",
		"a.b",
		"a.b.c.d",
		"e30.!!!.c2ln",
		"e30." + enc(`[]`) + ".c2ln",
		"e30." + enc(`null`) + ".c2ln",
		"e30." + enc(`{"originalTransactionId":12345}`) + ".c2ln",
		"e30." + enc(`{"originalTransactionId":"1"`) + ".c2ln",
	} {
		otid, tid, err := PeekTransactionIDs(jws)
		if StatusOf(err) != VerificationFailure || otid != "" || tid != "" {
			t.Errorf("%q: %q %q %v, want VERIFICATION_FAILURE and no ids", jws, otid, tid, err)
		}
	}
}

// compareTransactionIDDecoders fails t if the fast reader of
// PeekTransactionIDs accepts b with a result other than encoding/json's.
func compareTransactionIDDecoders(t *testing.T, b []byte) {
	var fast transactionIDs
	if !fast.decodeFast(string(b)) {
		return
	}
	var slow transactionIDs
	if err := json.Unmarshal(b, &slow); err != nil {
		t.Fatalf("fast path accepted %q, encoding/json rejects it: %v", b, err)
	}
	if fast != slow {
		t.Fatalf("id decoders differ on %q: fast %+v, slow %+v", b, fast, slow)
	}
}
