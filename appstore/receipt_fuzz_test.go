package appstore

import (
	"encoding/base64"
	"testing"

	"github.com/storesync/storesync/appstore/applevectors"
)

// FuzzExtractTransactionID feeds hostile bytes (as base64, since that is
// what the parsers take) to both receipt parsers: nothing may panic, a
// success must return a non-empty id, and the id is never longer than the
// input (the parsers only slice it, so memory stays bounded by the input,
// itself bounded by MaxReceiptLength; nesting is bounded by berMaxDepth).
//
// Run: go test -run XXX -fuzz FuzzExtractTransactionID -fuzztime 60s ./appstore/
func FuzzExtractTransactionID(f *testing.F) {
	for _, rel := range []string{
		"tests/resources/xcode/xcode-app-receipt-with-transaction",
		"tests/resources/xcode/xcode-app-receipt-empty",
		"tests/resources/mock_signed_data/legacyTransaction",
	} {
		b, err := base64.StdEncoding.DecodeString(string(applevectors.Bytes(f, rel)))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("\x30\x80\x30\x80\x30\x80"))
	f.Add([]byte("\x04\x84\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		in := base64.StdEncoding.EncodeToString(raw)
		for _, extract := range []func(string) (string, error){
			ExtractTransactionIDFromAppReceipt, ExtractTransactionIDFromTransactionReceipt,
		} {
			id, err := extract(in)
			if err == nil && (id == "" || len(id) > len(raw)) {
				t.Fatalf("success with id %q from %d bytes", id, len(raw))
			}
			if err != nil && id != "" {
				t.Fatalf("error %v with id %q", err, id)
			}
		}
	})
}
