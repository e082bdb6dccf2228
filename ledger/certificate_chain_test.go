package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/storesync/storesync/appstore/applevectors"
	"github.com/storesync/storesync/appstore/sim"
)

// TestCompactJWSAppleVectors: Apple's own signed data loses its chain and
// rebuilds to the same bytes; the vector without an x5c header is refused
// (stored as it came).
func TestCompactJWSAppleVectors(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"testNotification", "transactionInfo", "renewalInfo", "wrongBundleId"} {
		jws := strings.TrimSpace(applevectors.Text(t, "tests/resources/mock_signed_data/"+name))
		compact, sha, chain, ok := CompactJWS(jws)
		if !ok {
			t.Errorf("%s: not compacted", name)
			continue
		}
		if sum := sha256.Sum256([]byte(chain)); !bytes.Equal(sum[:], sha) {
			t.Errorf("%s: chainSHA is not the SHA-256 of the chain", name)
		}
		if !strings.HasPrefix(chain, `["MII`) || len(compact)+len(chain) > len(jws) {
			t.Errorf("%s: chain %.20q…, compact %d bytes of %d", name, chain, len(compact), len(jws))
		}
		if back, err := RebuildJWS(compact, chain); err != nil || back != jws {
			t.Errorf("%s: rebuilt differs (%v)", name, err)
		}
		if !isCompactJWS(compact) || isCompactJWS(jws) {
			t.Errorf("%s: isCompactJWS wrong on compact or original", name)
		}
		// Notifications: the stored form rebuilds exactly too.
		if back, err := encodePayload(jws).rebuild(); err != nil || back != jws {
			t.Errorf("%s: notification form rebuilt differs (%v)", name, err)
		}
	}
	missing := strings.TrimSpace(applevectors.Text(t, "tests/resources/mock_signed_data/missingX5CHeaderClaim"))
	if _, _, _, ok := CompactJWS(missing); ok {
		t.Error("missingX5CHeaderClaim: compacted, want it kept as it came")
	}
}

// TestCompactNotificationNested: a simulator-signed notification keeps its
// chain once for all three JWS, and rebuilds to the same bytes.
func TestCompactNotificationNested(t *testing.T) {
	t.Parallel()
	ca, err := sim.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	jws := simNotification(t, ca, 1)
	p := encodePayload(jws)
	if p.Decoded == "" || p.ChainSHA == nil {
		t.Fatalf("stored form: decoded %t, chain %t; want both", p.Decoded != "", p.ChainSHA != nil)
	}
	// The chain's own certificates, not "MII" (a certificate's usual start,
	// which a signature's base64 can hold by chance).
	var certs []string
	if err := json.Unmarshal([]byte(p.Chain), &certs); err != nil || len(certs) == 0 {
		t.Fatalf("chain %q: %v", p.Chain, err)
	}
	for i, cert := range certs {
		if n := strings.Count(p.Decoded, cert); n != 0 {
			t.Errorf("stored form still holds certificate %d of the chain %d times", i, n)
		}
	}
	if len(p.Decoded) > len(jws)/3 {
		t.Errorf("stored form is %d bytes of %d", len(p.Decoded), len(jws))
	}
	if back, err := p.rebuild(); err != nil || back != jws {
		t.Fatalf("rebuilt differs (%v)", err)
	}
	// A nested JWS signed with another chain stays whole.
	other, err := sim.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	tx, err := other.Sign(map[string]string{"transactionId": "1"})
	if err != nil {
		t.Fatal(err)
	}
	mixed, err := ca.Sign(map[string]any{"notificationType": "DID_RENEW", "data": map[string]string{"signedTransactionInfo": tx}})
	if err != nil {
		t.Fatal(err)
	}
	p = encodePayload(mixed)
	if p.ChainSHA == nil || !strings.Contains(p.Decoded, tx) {
		t.Errorf("nested JWS of another chain: chain %t, kept whole %t", p.ChainSHA != nil, strings.Contains(p.Decoded, tx))
	}
	if back, err := p.rebuild(); err != nil || back != mixed {
		t.Fatalf("mixed chains: rebuilt differs (%v)", err)
	}
}

// simNotification returns a DID_RENEW notification signed by ca around
// its signed transaction and renewal info, as Apple nests them.
func simNotification(t testing.TB, ca *sim.CA, i int) string {
	t.Helper()
	otid := fmt.Sprint(4000000000000000 + i)
	tx, err := ca.Sign(map[string]any{"transactionId": otid, "originalTransactionId": otid, "signedDate": 1700000000000 + i})
	if err != nil {
		t.Fatal(err)
	}
	ri, err := ca.Sign(map[string]any{"originalTransactionId": otid, "autoRenewStatus": 1, "signedDate": 1700000000000 + i})
	if err != nil {
		t.Fatal(err)
	}
	n, err := ca.Sign(map[string]any{"notificationType": "DID_RENEW", "notificationUUID": fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
		"data": map[string]any{"bundleId": "com.example", "environment": "Sandbox", "status": 1,
			"signedTransactionInfo": tx, "signedRenewalInfo": ri}, "version": "2.0", "signedDate": 1700000000000 + i})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCompactJWSRefusesWhatWouldNotRebuild: non-canonical input is never
// altered.
func TestCompactJWSRefusesWhatWouldNotRebuild(t *testing.T) {
	t.Parallel()
	seg := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	good := seg(`{"alg":"ES256","x5c":["QUJD"]}`) + ".cGF5.c2ln"
	if _, _, _, ok := CompactJWS(good); !ok {
		t.Fatalf("%s: not compacted", good)
	}
	for name, jws := range map[string]string{
		"padded header":     base64.URLEncoding.EncodeToString([]byte(`{"x5c":["QUJD"]}`)) + ".p.s",
		"trailing bits":     seg(`{"x5c":["QUJD"]}`)[:20] + "x.p.s",
		"no x5c":            seg(`{"alg":"ES256"}`) + ".p.s",
		"x5c not an array":  seg(`{"x5c":"QUJD"}`) + ".p.s",
		"unclosed array":    seg(`{"x5c":["QUJD"`) + ".p.s",
		"invalid chain":     seg(`{"x5c":[QUJD]}`) + ".p.s",
		"not ASCII":         seg(`{"kid":"é","x5c":["QUJD"]}`) + ".p.s",
		"already compact":   seg(`{"x5c":}`) + ".p.s",
		"x5c empty value":   seg(`{"x5c":,"y":["QUJD"]}`) + ".p.s",
		"two segments":      seg(`{"x5c":["QUJD"]}`) + ".p",
		"four segments":     seg(`{"x5c":["QUJD"]}`) + ".p.s.t",
		"no dot":            seg(`{"x5c":["QUJD"]}`),
		"line break":        seg(`{"x5c":["QUJD"]}`)[:4] + "\n" + seg(`{"x5c":["QUJD"]}`)[4:] + ".p.s",
		"standard alphabet": base64.RawStdEncoding.EncodeToString([]byte{0xfb, 0xff}) + ".p.s",
	} {
		if c, _, _, ok := CompactJWS(jws); ok {
			t.Errorf("%s: compacted to %q, want it kept as it came", name, c)
		}
	}
}

// TestHeaderCachesGiveTheSameBytes: compaction and rebuild results
// remembered by header segment (compactedHeaders, rebuiltHeaders) are what
// computing them gives: JWS signed with one leaf (one header segment)
// compact and rebuild exactly, concurrently; a rebuild with another chain
// is not the remembered one; and input around a remembered header that
// would not rebuild (padded header, four segments) is still refused.
func TestHeaderCachesGiveTheSameBytes(t *testing.T) {
	t.Parallel()
	ca, err := sim.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	var jws []string
	for i := range 8 {
		s, err := ca.Sign(map[string]any{"transactionId": fmt.Sprint(i), "signedDate": 1700000000000 + i})
		if err != nil {
			t.Fatal(err)
		}
		jws = append(jws, s)
	}
	first, _, chain, ok := CompactJWS(jws[0])
	if !ok {
		t.Fatal("not compacted")
	}
	header := first[:strings.IndexByte(first, '.')]
	done := make(chan error, len(jws))
	for _, j := range jws {
		go func() {
			for range 20 {
				compact, sha, c, ok := CompactJWS(j)
				if sum := sha256.Sum256([]byte(chain)); !ok || c != chain || !bytes.Equal(sha, sum[:]) ||
					!strings.HasPrefix(compact, header+".") || compact[len(header):] != j[strings.IndexByte(j, '.'):] {
					done <- fmt.Errorf("compacted %.40q… to %.40q…", j, compact)
					return
				}
				if back, err := RebuildJWS(compact, chain); err != nil || back != j {
					done <- fmt.Errorf("rebuilt %.40q… differs (%v)", j, err)
					return
				}
			}
			done <- nil
		}()
	}
	for range jws {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	other := `["QUJD"]`
	if back, err := RebuildJWS(first, other); err != nil || !strings.Contains(mustDecodeHeader(t, back), other) {
		t.Errorf("rebuilt with another chain: %.60q… (%v)", back, err)
	}
	dot := strings.IndexByte(jws[0], '.')
	h := jws[0][:dot]
	for name, j := range map[string]string{
		"padded header": h + strings.Repeat("=", (4-len(h)%4)%4+4) + jws[0][dot:],
		"four segments": jws[0] + ".x",
		"two segments":  h + ".p",
	} {
		if c, _, _, ok := CompactJWS(j); ok {
			t.Errorf("%s: compacted to %.40q…, want it kept as it came", name, c)
		}
	}
}

func mustDecodeHeader(t *testing.T, jws string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(jws[:strings.IndexByte(jws, '.')])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// FuzzCompactJWS: no input panics, and whatever is compacted rebuilds to
// itself, as a JWS and as a notification's stored form.
func FuzzCompactJWS(f *testing.F) {
	for _, name := range []string{"testNotification", "transactionInfo", "missingX5CHeaderClaim"} {
		b, err := applevectors.Read("tests/resources/mock_signed_data/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(strings.TrimSpace(string(b)))
	}
	seg := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	f.Add(seg(`{"x5c" : [ "a", ["]"] ] ,"alg":"x"}`) + ".p.s")
	f.Add(seg(`{"x5c":["QUJD"]}`) + "." + seg(`{"signedTransactionInfo":"`+seg(`{"x5c":["QUJD"]}`)+`.p.s"}`) + ".s")
	f.Add(seg(`{"x5c":["QUJD"]}`) + "." + seg(`{"signedRenewalInfo":"`+seg(`{"x5c":}`)+`.p.s"}`) + ".s")
	f.Fuzz(func(t *testing.T, jws string) {
		if compact, sha, chain, ok := CompactJWS(jws); ok {
			back, err := RebuildJWS(compact, chain)
			if err != nil || back != jws {
				t.Fatalf("compacted %q to %q, rebuilt %q (%v)", jws, compact, back, err)
			}
			if sum := sha256.Sum256([]byte(chain)); !bytes.Equal(sum[:], sha) {
				t.Fatal("chainSHA is not the chain's SHA-256")
			}
		}
		p := encodePayload(jws)
		if back, err := p.rebuild(); err != nil || back != jws {
			t.Fatalf("notification form of %q: %+v rebuilt %q (%v)", jws, p, back, err)
		}
		_, _ = RebuildJWS(jws, "[]") // any input: no panic
		_ = isCompactJWS(jws)
	})
}

// BenchmarkCompactNotificationPayload is the CPU the webhook's write adds
// per notification: the outer and both nested JWS compacted, each checked
// to rebuild exactly.
func BenchmarkCompactNotificationPayload(b *testing.B) {
	ca, err := sim.NewCA()
	if err != nil {
		b.Fatal(err)
	}
	jws := simNotification(b, ca, 1)
	b.SetBytes(int64(len(jws)))
	b.ReportAllocs()
	for range b.N {
		if _, decoded, _, _ := CompactNotificationPayload(jws); decoded == "" {
			b.Fatal("not compacted")
		}
	}
}

// BenchmarkRebuildNotificationPayload is the CPU a read of a stored
// notification costs.
func BenchmarkRebuildNotificationPayload(b *testing.B) {
	ca, err := sim.NewCA()
	if err != nil {
		b.Fatal(err)
	}
	p := encodePayload(simNotification(b, ca, 1))
	b.ReportAllocs()
	for range b.N {
		if _, err := p.rebuild(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestIsJSONChainIsJSONValid: the one-pass chain check answers as
// json.Valid does, on chains and on near misses.
func TestIsJSONChainIsJSONValid(t *testing.T) {
	t.Parallel()
	for _, s := range []string{`[]`, ` [ ] `, `["QUJD"]`, `["QUJD","RA==", "a+/b"]`, "[\n\"QUJD\" ,\t\"RA==\"\r]",
		`[`, `]`, `["QUJD"`, `["QUJD",]`, `[,"QUJD"]`, `["QU"JD"]`, `["QUJD"] x`, `["\u0041"]`, `[1,"a"]`, `["a" "b"]`,
		`[""]`, `["a",""]`, `{"a":1}`, ``, `["a\"b"]`, `[["a"]]`} {
		if got, want := isJSONChain([]byte(s)), json.Valid([]byte(s)); got != want {
			t.Errorf("isJSONChain(%q) = %v, json.Valid says %v", s, got, want)
		}
	}
}

// FuzzIsJSONChain: the one-pass check never disagrees with json.Valid.
func FuzzIsJSONChain(f *testing.F) {
	f.Add(`["QUJD","RA=="]`)
	f.Fuzz(func(t *testing.T, s string) {
		if isArrayOfPlainStrings([]byte(s)) && !json.Valid([]byte(s)) {
			t.Errorf("%q: accepted, json.Valid refuses", s)
		}
	})
}
