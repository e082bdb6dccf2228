package ledger

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/storesync/storesync/appstore/applevectors"
)

// TestSignedPayloadDecodedRoundTrip: Apple's own signed data decodes and
// re-encodes to the same bytes; what cannot is refused, so it is stored as
// it came.
func TestSignedPayloadDecodedRoundTrip(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"testNotification", "transactionInfo", "renewalInfo", "wrongBundleId", "missingX5CHeaderClaim"} {
		jws := strings.TrimSpace(applevectors.Text(t, "tests/resources/mock_signed_data/"+name))
		decoded, ok := decodeSignedPayload(jws)
		if !ok {
			t.Errorf("%s: not decoded", name)
			continue
		}
		if !strings.Contains(decoded, `"`) || len(decoded) >= len(jws) {
			t.Errorf("%s: decoded form %.80q… does not hold the payload's JSON", name, decoded)
		}
		if back, err := encodeSignedPayload(decoded); err != nil || back != jws {
			t.Errorf("%s: re-encoded differs (%v)", name, err)
		}
	}

	seg := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	canonical := "eyJhbGciOiJFUzI1NiJ9." + seg(`{"a":"b.c"}`) + ".c2ln"
	if _, ok := decodeSignedPayload(canonical); !ok {
		t.Fatalf("%s: not decoded", canonical)
	}
	for name, jws := range map[string]string{
		"padded":             "h." + base64.URLEncoding.EncodeToString([]byte(`{"a":1}`)) + ".s",
		"line break":         "h." + seg(`{"a":"bcdef"}`)[:5] + "\n" + seg(`{"a":"bcdef"}`)[5:] + ".s",
		"trailing bits":      "h.eyJ.s", // canonical is "eyI"
		"standard alphabet":  "h." + base64.RawStdEncoding.EncodeToString([]byte{0xfb, 0xff}) + ".s",
		"not ASCII":          "h." + seg(`{"a":"é"}`) + ".s",
		"NUL":                "h." + seg("{\"a\":\"\x00\"}") + ".s",
		"two segments":       "h." + seg(`{}`),
		"four segments":      "h." + seg(`{}`) + "." + seg(`{}`) + ".s",
		"no dot":             seg(`{}`),
		"payload not base64": "h.{}.s",
	} {
		if d, ok := decodeSignedPayload(jws); ok {
			t.Errorf("%s: decoded %q, want it kept as it came", name, d)
		}
	}
	if _, err := encodeSignedPayload("no dots"); err == nil {
		t.Error("a stored form without dots re-encoded")
	}
}

// FuzzSignedPayloadDecoded: whatever decodes re-encodes to the same bytes.
func FuzzSignedPayloadDecoded(f *testing.F) {
	f.Add("eyJhbGciOiJFUzI1NiJ9.eyJhIjoxfQ.c2ln")
	f.Add("h.eyJ.s")
	f.Add("h..s")
	f.Add("a.b\n.c")
	f.Fuzz(func(t *testing.T, jws string) {
		decoded, ok := decodeSignedPayload(jws)
		if !ok {
			return
		}
		back, err := encodeSignedPayload(decoded)
		if err != nil || back != jws {
			t.Fatalf("%q decoded to %q, re-encoded to %q (%v)", jws, decoded, back, err)
		}
	})
}

// FuzzIsPlainASCII: the word-at-a-time check agrees with the plain loop.
func FuzzIsPlainASCII(f *testing.F) {
	f.Add([]byte("eyJhbGciOiJFUzI1NiJ9"))
	f.Add([]byte("0123456\x00abcdefgh"))
	f.Add([]byte("01234567\x80"))
	f.Add([]byte("\x01\x01\x01\x01\x01\x01\x01\x01\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		want := true
		for _, c := range b {
			if c == 0 || c >= 0x80 {
				want = false
			}
		}
		if got := isPlainASCII(b); got != want {
			t.Fatalf("isPlainASCII(%q) = %v, want %v", b, got, want)
		}
	})
}
