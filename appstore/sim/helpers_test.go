package sim

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
)

// unlimited is a test world without rate limits, so tests that make many
// calls are not throttled.
func unlimited(opts Options) Options {
	opts.DisableRateLimits = true
	return opts
}

// response is one HTTP answer read in full.
type response struct {
	status int
	header http.Header
	body   []byte
}

// call sends an API request with a fresh valid token.
func call(t testing.TB, s *Simulator, method, path string, body any) response {
	t.Helper()
	tok, err := s.Token()
	if err != nil {
		t.Fatal(err)
	}
	return callWith(t, s, method, path, body, "Bearer "+tok)
}

// callWith sends a request with the given Authorization header ("" = none).
func callWith(t testing.TB, s *Simulator, method, path string, body any, auth string) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.BaseURL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// decode unmarshals a 200 answer's body into v.
func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200; body %s", r.status, r.body)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
}

// wantError checks an Apple-shaped error answer.
func (r response) wantError(t testing.TB, status, code int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error content-type %q, want application/json", ct)
	}
	var e appstore.ErrorResponse
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body %s: %v", r.body, err)
	}
	if int(e.ErrorCode) != code || e.ErrorMessage == "" {
		t.Fatalf("error %d %q, want code %d with a message", e.ErrorCode, e.ErrorMessage, code)
	}
}

// verifyJWS checks a JWS the way Apple's libraries do, with crypto/x509 and
// ecdsa only: three-certificate x5c, leaf and intermediate marker
// extensions, chain to the simulator's root at the payload's signedDate,
// ES256 signature by the leaf. It decodes the payload into v.
func verifyJWS(t testing.TB, s *Simulator, jws string, v any) {
	t.Helper()
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		t.Fatalf("JWS has %d parts", len(parts))
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	var hdr struct {
		Alg string   `json:"alg"`
		X5c []string `json:"x5c"`
	}
	if err := json.Unmarshal(hb, &hdr); err != nil {
		t.Fatal(err)
	}
	if hdr.Alg != "ES256" || len(hdr.X5c) != 3 {
		t.Fatalf("header alg %q with %d certificates, want ES256 with 3", hdr.Alg, len(hdr.X5c))
	}
	var certs []*x509.Certificate
	for _, c := range hdr.X5c {
		der, err := base64.StdEncoding.DecodeString(c)
		if err != nil {
			t.Fatalf("x5c entry is not standard base64: %v", err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, cert)
	}
	hasExt := func(c *x509.Certificate, oid []int) bool {
		return slices.ContainsFunc(c.Extensions, func(e pkix.Extension) bool { return e.Id.Equal(oid) })
	}
	if !hasExt(certs[0], OIDAppleLeaf) {
		t.Fatal("leaf lacks extension 1.2.840.113635.100.6.11.1")
	}
	if !hasExt(certs[1], OIDAppleIntermediate) {
		t.Fatal("intermediate lacks extension 1.2.840.113635.100.6.2.1")
	}
	pb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var signed struct {
		SignedDate int64 `json:"signedDate"`
	}
	if err := json.Unmarshal(pb, &signed); err != nil {
		t.Fatal(err)
	}
	if signed.SignedDate == 0 {
		t.Fatal("payload has no signedDate")
	}
	root, err := x509.ParseCertificate(s.RootDER())
	if err != nil {
		t.Fatal(err)
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	inters.AddCert(certs[1])
	if _, err := certs[0].Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inters,
		CurrentTime: time.UnixMilli(signed.SignedDate),
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		t.Fatalf("chain does not verify to the simulator root: %v", err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		t.Fatalf("signature: %d bytes, err %v; want raw 64-byte r||s", len(sig), err)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	pub := certs[0].PublicKey.(*ecdsa.PublicKey)
	if !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		t.Fatal("ES256 signature does not verify with the leaf key")
	}
	if v != nil {
		if err := json.Unmarshal(pb, v); err != nil {
			t.Fatal(err)
		}
	}
}

// decodeJWS decodes a JWS payload without verifying (for bulk checks after
// verifyJWS proved the format).
func decodeJWS(t testing.TB, jws string, v any) {
	t.Helper()
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		t.Fatalf("JWS has %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// pageAllHistory pages Get Transaction History for id with the given extra
// query and returns every transaction in order and the final revision.
func pageAllHistory(t testing.TB, s *Simulator, prefix, id, query string) ([]appstore.TransactionPayload, string) {
	t.Helper()
	var out []appstore.TransactionPayload
	rev := ""
	for page := 0; ; page++ {
		if page > 1000 {
			t.Fatal("history paging does not end")
		}
		q := query
		if rev != "" {
			q = joinQuery(q, "revision="+rev)
		}
		var h appstore.HistoryResponse
		call(t, s, "GET", prefix+"/inApps/v2/history/"+id+"?"+q, nil).decode(t, &h)
		for _, jws := range h.SignedTransactions {
			var p appstore.TransactionPayload
			decodeJWS(t, jws, &p)
			out = append(out, p)
		}
		if h.Revision == "" {
			t.Fatal("history response without revision")
		}
		rev = h.Revision
		if !h.HasMore {
			return out, rev
		}
	}
}

func joinQuery(a, b string) string {
	if a == "" {
		return b
	}
	return a + "&" + b
}

// startTest starts a simulator on a loopback port for t, closed when the
// test ends (simtest.StartTest for this package's own tests, which cannot
// import simtest).
func startTest(t testing.TB, opts Options) *Simulator {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
