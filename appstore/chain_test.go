package appstore

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/storesync/storesync/appstore/applevectors"
)

type chainCasesFile struct {
	Certificates map[string]string `json:"certificates"`
	Cases        []struct {
		Name                   string   `json:"name"`
		TrustedRoots           []string `json:"trustedRoots"`
		X5C                    []string `json:"x5c"`
		EffectiveDateUnix      int64    `json:"effectiveDateUnix"`
		Expect                 string   `json:"expect"`
		ExpectLeafPublicKeyPEM string   `json:"expectLeafPublicKeyPEM"`
	} `json:"cases"`
}

// chainCaseReasons is what the error of a failing chain case must mention,
// so a case cannot pass by failing for the wrong reason.
var chainCaseReasons = map[string]string{
	"test_chain_intermediate_missing_apple_oid": "1.2.840.113635.100.6.2.1",
	"test_chain_leaf_missing_apple_oid":         "1.2.840.113635.100.6.11.1",
	"chain_length_two":                          "x5c holds 2 certificates",
	"leaf_not_base64":                           "x5c[0]",
	"leaf_base64_but_not_der":                   "x5c[0]",
	"trusted_root_not_a_certificate":            "trusted root 0",
	"test_chain_against_real_apple_root":        "not issued by a trusted root",
	"test_chain_expired":                        "is not valid at 2042",
	"real_apple_chain_2021_leaf_at_2025":        "is not valid at 2025",
	"real_apple_chain_2025_leaf_at_2023":        "is not valid at 2023",
}

func loadChainCases(t *testing.T) chainCasesFile {
	t.Helper()
	var f chainCasesFile
	if err := json.Unmarshal(applevectors.Bytes(t, "derived/x509/chain-cases.json"), &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) < 13 {
		t.Fatalf("chain-cases.json holds %d cases, want at least 13", len(f.Cases))
	}
	return f
}

// TestVerifyChainCases runs every case of derived/x509/chain-cases.json
// against verifyChain with the case's trusted roots and effective time.
func TestVerifyChainCases(t *testing.T) {
	t.Parallel()
	f := loadChainCases(t)
	for _, c := range f.Cases {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			var rootDER [][]byte
			for _, name := range c.TrustedRoots {
				b64, ok := f.Certificates[name]
				if !ok {
					t.Fatalf("unknown certificate %q", name)
				}
				der, err := base64.StdEncoding.DecodeString(b64)
				if err != nil {
					t.Fatalf("trusted root %q: %v", name, err)
				}
				rootDER = append(rootDER, der)
			}
			var x5c []string
			for _, name := range c.X5C {
				b64, ok := f.Certificates[name]
				if !ok {
					t.Fatalf("unknown certificate %q", name)
				}
				x5c = append(x5c, b64)
			}
			at := time.Unix(c.EffectiveDateUnix, 0)

			var got *verifiedChain
			roots, err := parseRoots(rootDER)
			if err == nil {
				got, err = verifyChain(x5c, roots, at)
			}
			if status := StatusOf(err); status.String() != c.Expect {
				t.Fatalf("status %v (%v), want %s", status, err, c.Expect)
			}
			if c.Expect != "OK" {
				var ve *VerificationError
				if !errors.As(err, &ve) || ve.Reason == "" {
					t.Fatalf("error %v is not a *VerificationError with a reason", err)
				}
				if want := chainCaseReasons[c.Name]; !strings.Contains(err.Error(), want) {
					t.Fatalf("error %q does not name the failed check (%q)", err, want)
				}
				return
			}
			if got == nil || got.key == nil {
				t.Fatal("OK without a leaf key")
			}
			if !got.validAt(at) {
				t.Errorf("validity window %v..%v excludes the effective time %v", got.notBefore, got.notAfter, at)
			}
			if c.ExpectLeafPublicKeyPEM != "" {
				want := strings.ReplaceAll(c.ExpectLeafPublicKeyPEM, `\n`, "\n")
				blk, _ := pem.Decode([]byte(want))
				if blk == nil {
					t.Fatalf("expectLeafPublicKeyPEM does not decode: %q", want)
				}
				der, err := x509.MarshalPKIXPublicKey(got.key)
				if err != nil {
					t.Fatal(err)
				}
				if hex.EncodeToString(der) != hex.EncodeToString(blk.Bytes) {
					t.Errorf("leaf key %x, want %x", der, blk.Bytes)
				}
			}
		})
	}
}

// TestVerifyChainSkew checks Apple's ±60 s tolerance on certificate
// validity at both ends of the test chain's life: it starts with the leaf
// and ends with the intermediate.
func TestVerifyChainSkew(t *testing.T) {
	t.Parallel()
	f := loadChainCases(t)
	roots := mustRoots(t, f.Certificates["root"])
	x5c := []string{f.Certificates["leaf"], f.Certificates["inter"], f.Certificates["root"]}
	leaf, err := parseX5CEntry(x5c[0])
	if err != nil {
		t.Fatal(err)
	}
	inter, err := parseX5CEntry(x5c[1])
	if err != nil {
		t.Fatal(err)
	}
	if !inter.NotAfter.Before(leaf.NotAfter) || !leaf.NotBefore.After(inter.NotBefore) {
		t.Fatal("test chain no longer starts with the leaf and ends with the intermediate")
	}
	for _, c := range []struct {
		name string
		at   time.Time
		ok   bool
	}{
		{"60s before notBefore", leaf.NotBefore.Add(-60 * time.Second), true},
		{"61s before notBefore", leaf.NotBefore.Add(-61 * time.Second), false},
		{"60s after notAfter", inter.NotAfter.Add(60 * time.Second), true},
		{"61s after notAfter", inter.NotAfter.Add(61 * time.Second), false},
	} {
		_, err := verifyChain(x5c, roots, c.at)
		if (err == nil) != c.ok {
			t.Errorf("%s: err %v, want ok=%v", c.name, err, c.ok)
		}
		if err != nil && StatusOf(err) != VerificationFailure {
			t.Errorf("%s: status %v, want VERIFICATION_FAILURE", c.name, StatusOf(err))
		}
	}
}

// TestVerifyChainIgnoresX5C2 shows x5c[2] is neither trusted nor required:
// any bytes there verify as long as leaf and intermediate reach a
// configured root, and the genuine root in x5c[2] does not help a chain
// whose configured root is another.
func TestVerifyChainIgnoresX5C2(t *testing.T) {
	t.Parallel()
	f := loadChainCases(t)
	at := time.Unix(1761962975, 0)
	roots := mustRoots(t, f.Certificates["root"])
	for _, third := range []string{"", "not base64!", f.Certificates["appleRoot"]} {
		if _, err := verifyChain([]string{f.Certificates["leaf"], f.Certificates["inter"], third}, roots, at); err != nil {
			t.Errorf("x5c[2]=%.20q: %v", third, err)
		}
	}
	apple := mustRoots(t, f.Certificates["appleRoot"])
	_, err := verifyChain([]string{f.Certificates["leaf"], f.Certificates["inter"], f.Certificates["root"]}, apple, at)
	if StatusOf(err) != VerificationFailure {
		t.Errorf("test chain under Apple's root: %v, want VERIFICATION_FAILURE", err)
	}
}

// TestVerifyChainRejectsSwappedRoles: an intermediate in the leaf slot, or
// the leaf in the intermediate slot, must not verify.
func TestVerifyChainRejectsSwappedRoles(t *testing.T) {
	t.Parallel()
	f := loadChainCases(t)
	at := time.Unix(1761962975, 0)
	roots := mustRoots(t, f.Certificates["root"])
	for name, x5c := range map[string][]string{
		"intermediate as leaf": {f.Certificates["inter"], f.Certificates["inter"], f.Certificates["root"]},
		"leaf as intermediate": {f.Certificates["leaf"], f.Certificates["leaf"], f.Certificates["root"]},
		"root as intermediate": {f.Certificates["leaf"], f.Certificates["root"], f.Certificates["root"]},
		"base64url entry":      {strings.NewReplacer("+", "-", "/", "_").Replace(f.Certificates["leaf"]), f.Certificates["inter"], ""},
	} {
		if _, err := verifyChain(x5c, roots, at); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
}

// TestParseRoots accepts DER and PEM, and rejects garbage as
// INVALID_CERTIFICATE.
func TestParseRoots(t *testing.T) {
	t.Parallel()
	pemCA := applevectors.Bytes(t, "java/src/test/resources/certs/testCA.pem")
	derCA := applevectors.Bytes(t, "tests/resources/certs/testCA.der")
	roots, err := parseRoots([][]byte{pemCA, derCA, AppleRootCAG3()})
	if err != nil {
		t.Fatal(err)
	}
	if len(roots) != 3 || !roots[0].Equal(roots[1]) {
		t.Fatalf("PEM and DER of the test CA parse differently: %d roots", len(roots))
	}
	for name, in := range map[string][][]byte{
		"none":                    nil,
		"garbage":                 {[]byte("abc")},
		"PEM without certificate": {[]byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n")},
	} {
		if _, err := parseRoots(in); StatusOf(err) != InvalidCertificate {
			t.Errorf("%s: %v, want INVALID_CERTIFICATE", name, err)
		}
	}
}

// TestEmbeddedAppleRootPinned pins the embedded Apple Root CA - G3.
func TestEmbeddedAppleRootPinned(t *testing.T) {
	t.Parallel()
	sum := sha256.Sum256(AppleRootCAG3())
	const want = "63343ABFB89A6A03EBB57E9B3F5FA7BE7C4F5C756F3017B3A8C488C3653E9179"
	if got := strings.ToUpper(hex.EncodeToString(sum[:])); got != want {
		t.Fatalf("embedded root SHA-256 %s, want %s", got, want)
	}
	c, err := x509.ParseCertificate(AppleRootCAG3())
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject.CommonName != "Apple Root CA - G3" || c.NotAfter.Year() != 2039 {
		t.Errorf("embedded root is %q until %v", c.Subject.CommonName, c.NotAfter)
	}
	AppleRootCAG3()[0] ^= 0xff // callers get a copy
	if sum2 := sha256.Sum256(AppleRootCAG3()); sum2 != sum {
		t.Error("AppleRootCAG3 returns the embedded slice itself")
	}
}

// TestChainCacheBoundedAndExpiring checks eviction, the validity window and
// the online TTL of the chain cache.
func TestChainCacheBoundedAndExpiring(t *testing.T) {
	t.Parallel()
	now := time.Unix(1761962975, 0)
	vc := &verifiedChain{notBefore: now.Add(-time.Hour), notAfter: now.Add(time.Hour)}
	c := newChainCache(2)
	c.put("a", "x", vc, now)
	c.put("b", "x", vc, now)
	c.put("b", "x", vc, now) // refresh, no growth
	c.put("c", "x", vc, now)
	if c.len() != 2 {
		t.Fatalf("cache holds %d entries, want 2", c.len())
	}
	if c.get("a", "x", now, now, 0) != nil {
		t.Error("oldest entry not evicted")
	}
	if c.get("c", "x", now, now, 0) == nil || c.get("c", "y", now, now, 0) != nil {
		t.Error("lookup does not key on both strings")
	}
	if c.get("c", "x", now.Add(2*time.Hour), now, 0) != nil {
		t.Error("entry used outside its validity window")
	}
	if c.get("c", "x", now, now.Add(chainCacheTTL-time.Second), chainCacheTTL) == nil {
		t.Error("online entry expired early")
	}
	if c.get("c", "x", now, now.Add(chainCacheTTL), chainCacheTTL) != nil {
		t.Error("online entry used after 15 minutes")
	}
	var disabled *chainCache
	disabled.put("a", "x", vc, now)
	if disabled.get("a", "x", now, now, 0) != nil {
		t.Error("disabled cache returned an entry")
	}
}

func mustRoots(t *testing.T, b64 ...string) []*x509.Certificate {
	t.Helper()
	var ders [][]byte
	for _, s := range b64 {
		der, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		ders = append(ders, der)
	}
	roots, err := parseRoots(ders)
	if err != nil {
		t.Fatal(err)
	}
	return roots
}

// mintLeaf issues a leaf under the test intermediate with Apple's leaf OID
// (and an OCSP responder URL when ocspURL is set).
func mintLeaf(t testing.TB, c *testChain, cn, ocspURL string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return mintCert(t, &x509.Certificate{
		Subject:         pkix.Name{CommonName: cn},
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtraExtensions: []pkix.Extension{{Id: oidAppleLeaf, Value: asn1NULL}},
		OCSPServer:      nonEmpty(ocspURL),
	}, c.inter, c.interKey, &key.PublicKey), key
}

var asn1NULL = []byte{0x05, 0x00}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// mintCert signs tmpl (valid 2023-02-01 to 2032-12-01, random serial) for
// pub with parent's key.
func mintCert(t testing.TB, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, pub *ecdsa.PublicKey) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Date(2023, 2, 1, 0, 0, 0, 0, time.UTC)
	tmpl.NotAfter = time.Date(2032, 12, 1, 0, 0, 0, 0, time.UTC)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// ocspPKI is the test PKI re-issued with OCSP responder URLs pointing at an
// httptest responder signed by the test CA and intermediate keys.
type ocspPKI struct {
	*testChain
	inter, leaf *x509.Certificate // the online-checkable ones
	srv         *httptest.Server
	// answer decides the response to a request for cert (issued by issuer,
	// whose key is issuerKey); nil means "good, signed by the issuer".
	answer   atomic.Pointer[func(w http.ResponseWriter, req *ocsp.Request, cert, issuer *x509.Certificate, issuerKey *ecdsa.PrivateKey)]
	requests atomic.Int32
	paths    chan string
}

func newOCSPPKI(t *testing.T) *ocspPKI {
	t.Helper()
	p := &ocspPKI{testChain: loadTestChain(t), paths: make(chan string, 100)}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	p.inter = mintCert(t, &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{"Online Intermediate"}},
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		ExtraExtensions:       []pkix.Extension{{Id: oidAppleIntermediate, Value: asn1NULL}},
		OCSPServer:            []string{p.srv.URL + "/inter"},
	}, p.ca, p.caKey, &p.interKey.PublicKey)
	p.leaf = mintCert(t, &x509.Certificate{
		Subject:         pkix.Name{Organization: []string{"Online Leaf"}},
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtraExtensions: []pkix.Extension{{Id: oidAppleLeaf, Value: asn1NULL}},
		OCSPServer:      []string{p.srv.URL + "/leaf"},
	}, p.inter, p.interKey, &p.leafKey.PublicKey)
	return p
}

func (p *ocspPKI) sign(t *testing.T, payload []byte) string {
	return signJWS(t, p.leafKey, map[string]any{"alg": "ES256", "x5c": []string{b64(p.leaf.Raw), b64(p.inter.Raw), b64(p.ca.Raw)}}, payload)
}

func (p *ocspPKI) serve(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	p.paths <- r.URL.Path
	body, _ := io.ReadAll(r.Body)
	req, err := ocsp.ParseRequest(body)
	if err != nil || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/ocsp-request" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	cert, issuer, issuerKey := p.leaf, p.inter, p.interKey
	if r.URL.Path == "/inter" {
		cert, issuer, issuerKey = p.inter, p.ca, p.caKey
	}
	if f := p.answer.Load(); f != nil {
		(*f)(w, req, cert, issuer, issuerKey)
		return
	}
	writeOCSP(w, req, ocsp.Good, issuer, issuer, issuerKey, nil)
}

// writeOCSP answers req with status, the response naming responder and
// signed by key; embed is added to the response's certificates.
func writeOCSP(w http.ResponseWriter, req *ocsp.Request, status int, issuer, responder *x509.Certificate, key *ecdsa.PrivateKey, embed *x509.Certificate) {
	now := time.Now()
	tmpl := ocsp.Response{
		Status: status, SerialNumber: req.SerialNumber, IssuerHash: req.HashAlgorithm,
		ThisUpdate: now.Add(-time.Hour), NextUpdate: now.Add(time.Hour), Certificate: embed,
	}
	if status == ocsp.Revoked {
		tmpl.RevokedAt = now.Add(-2 * time.Hour)
	}
	der, err := ocsp.CreateResponse(issuer, responder, tmpl, key)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	_, _ = w.Write(der)
}

func (p *ocspPKI) setAnswer(f func(w http.ResponseWriter, req *ocsp.Request, cert, issuer *x509.Certificate, issuerKey *ecdsa.PrivateKey)) {
	p.answer.Store(&f)
}

func (p *ocspPKI) verifier(t *testing.T, now func() time.Time) *Verifier {
	return newTestVerifier(t, p.testChain, func(o *VerifierOptions) {
		o.OnlineChecks = true
		o.HTTPClient = p.srv.Client()
		o.Now = now
	})
}

// TestOCSPGoodAndCached: both certificates are checked (intermediate
// first), and the result is reused for 15 minutes.
func TestOCSPGoodAndCached(t *testing.T) {
	t.Parallel()
	p := newOCSPPKI(t)
	clock := time.Now()
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	v := p.verifier(t, now)
	jws := p.sign(t, sandboxModel(t, "signedNotification.json"))
	if _, err := v.VerifyNotification(jws); err != nil {
		t.Fatal(err)
	}
	if got := []string{<-p.paths, <-p.paths}; got[0] != "/inter" || got[1] != "/leaf" {
		t.Errorf("OCSP requests %v, want /inter then /leaf", got)
	}
	mu.Lock()
	clock = clock.Add(chainCacheTTL - time.Second)
	mu.Unlock()
	if _, err := v.VerifyNotification(jws); err != nil {
		t.Fatal(err)
	}
	if n := p.requests.Load(); n != 2 {
		t.Errorf("%d OCSP requests within 15 minutes, want 2", n)
	}
	mu.Lock()
	clock = clock.Add(2 * time.Second)
	mu.Unlock()
	if _, err := v.VerifyNotification(jws); err != nil {
		t.Fatal(err)
	}
	if n := p.requests.Load(); n != 4 {
		t.Errorf("%d OCSP requests after 15 minutes, want 4", n)
	}
}

// TestOCSPFailures covers every way an online check fails.
func TestOCSPFailures(t *testing.T) {
	t.Parallel()
	type answerFunc = func(w http.ResponseWriter, req *ocsp.Request, cert, issuer *x509.Certificate, issuerKey *ecdsa.PrivateKey)
	onLeaf := func(f answerFunc) answerFunc {
		return func(w http.ResponseWriter, req *ocsp.Request, cert, issuer *x509.Certificate, issuerKey *ecdsa.PrivateKey) {
			if req.SerialNumber.Cmp(cert.SerialNumber) == 0 && cert.IsCA {
				writeOCSP(w, req, ocsp.Good, issuer, issuer, issuerKey, nil)
				return
			}
			f(w, req, cert, issuer, issuerKey)
		}
	}
	responderKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		answer func(p *ocspPKI) answerFunc
		closed bool
		want   VerificationStatus
		reason string
	}{
		{name: "leaf revoked", want: VerificationFailure, reason: "revoked", answer: func(*ocspPKI) answerFunc {
			return onLeaf(func(w http.ResponseWriter, req *ocsp.Request, _, issuer *x509.Certificate, key *ecdsa.PrivateKey) {
				writeOCSP(w, req, ocsp.Revoked, issuer, issuer, key, nil)
			})
		}},
		{name: "intermediate revoked", want: VerificationFailure, reason: "Online Intermediate", answer: func(*ocspPKI) answerFunc {
			return func(w http.ResponseWriter, req *ocsp.Request, cert, issuer *x509.Certificate, key *ecdsa.PrivateKey) {
				writeOCSP(w, req, ocsp.Revoked, issuer, issuer, key, nil)
			}
		}},
		{name: "status unknown", want: VerificationFailure, reason: "unknown", answer: func(*ocspPKI) answerFunc {
			return onLeaf(func(w http.ResponseWriter, req *ocsp.Request, _, issuer *x509.Certificate, key *ecdsa.PrivateKey) {
				writeOCSP(w, req, ocsp.Unknown, issuer, issuer, key, nil)
			})
		}},
		{name: "HTTP 500", want: RetryableVerificationFailure, reason: "did not answer", answer: func(*ocspPKI) answerFunc {
			return onLeaf(func(w http.ResponseWriter, _ *ocsp.Request, _, _ *x509.Certificate, _ *ecdsa.PrivateKey) {
				http.Error(w, "down", http.StatusInternalServerError)
			})
		}},
		{name: "responder unreachable", closed: true, want: RetryableVerificationFailure, reason: "did not answer"},
		{name: "garbage body", want: VerificationFailure, reason: "unusable response", answer: func(*ocspPKI) answerFunc {
			return onLeaf(func(w http.ResponseWriter, _ *ocsp.Request, _, _ *x509.Certificate, _ *ecdsa.PrivateKey) {
				_, _ = w.Write([]byte("not DER"))
			})
		}},
		{name: "tryLater", want: VerificationFailure, reason: "unusable response", answer: func(*ocspPKI) answerFunc {
			return onLeaf(func(w http.ResponseWriter, _ *ocsp.Request, _, _ *x509.Certificate, _ *ecdsa.PrivateKey) {
				_, _ = w.Write(ocsp.TryLaterErrorResponse)
			})
		}},
		{name: "signed by the root instead of the leaf's issuer", want: VerificationFailure, reason: "responder", answer: func(p *ocspPKI) answerFunc {
			return onLeaf(func(w http.ResponseWriter, req *ocsp.Request, _, _ *x509.Certificate, _ *ecdsa.PrivateKey) {
				writeOCSP(w, req, ocsp.Good, p.inter, p.ca, p.caKey, nil)
			})
		}},
		{name: "issuer name but wrong key", want: VerificationFailure, reason: "signature", answer: func(p *ocspPKI) answerFunc {
			return onLeaf(func(w http.ResponseWriter, req *ocsp.Request, _, issuer *x509.Certificate, _ *ecdsa.PrivateKey) {
				writeOCSP(w, req, ocsp.Good, issuer, issuer, p.caKey, nil)
			})
		}},
		{name: "another serial", want: VerificationFailure, reason: "no response matching", answer: func(*ocspPKI) answerFunc {
			return onLeaf(func(w http.ResponseWriter, req *ocsp.Request, _, issuer *x509.Certificate, key *ecdsa.PrivateKey) {
				other := *req
				other.SerialNumber = new(big.Int).Add(req.SerialNumber, big.NewInt(1))
				writeOCSP(w, &other, ocsp.Good, issuer, issuer, key, nil)
			})
		}},
		{name: "issuer hashes of another CA", want: VerificationFailure, reason: "no status", answer: func(p *ocspPKI) answerFunc {
			return onLeaf(func(w http.ResponseWriter, req *ocsp.Request, _, issuer *x509.Certificate, key *ecdsa.PrivateKey) {
				writeOCSP(w, req, ocsp.Good, p.ca, issuer, key, nil) // CertID names the root, signed by the issuer
			})
		}},
		{name: "stale response", want: VerificationFailure, reason: "stale", answer: func(*ocspPKI) answerFunc {
			return onLeaf(func(w http.ResponseWriter, req *ocsp.Request, _, issuer *x509.Certificate, key *ecdsa.PrivateKey) {
				der, _ := ocsp.CreateResponse(issuer, issuer, ocsp.Response{Status: ocsp.Good, SerialNumber: req.SerialNumber,
					IssuerHash: req.HashAlgorithm, ThisUpdate: time.Now().Add(-48 * time.Hour), NextUpdate: time.Now().Add(-24 * time.Hour)}, key)
				_, _ = w.Write(der)
			})
		}},
		{name: "delegated responder without OCSP-signing usage", want: VerificationFailure, reason: "OCSP-signing", answer: func(p *ocspPKI) answerFunc {
			return onLeaf(func(w http.ResponseWriter, req *ocsp.Request, _, issuer *x509.Certificate, key *ecdsa.PrivateKey) {
				resp := mintCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "responder"}}, issuer, key, &responderKey.PublicKey)
				writeOCSP(w, req, ocsp.Good, issuer, resp, responderKey, resp)
			})
		}},
		{name: "delegated responder not issued by the issuer", want: VerificationFailure, reason: "not issued", answer: func(p *ocspPKI) answerFunc {
			return onLeaf(func(w http.ResponseWriter, req *ocsp.Request, _, issuer *x509.Certificate, _ *ecdsa.PrivateKey) {
				resp := mintCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "responder"},
					ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}}, p.ca, p.caKey, &responderKey.PublicKey)
				writeOCSP(w, req, ocsp.Good, issuer, resp, responderKey, resp)
			})
		}},
		{name: "delegated responder with OCSP-signing usage", want: VerificationOK, answer: func(p *ocspPKI) answerFunc {
			return onLeaf(func(w http.ResponseWriter, req *ocsp.Request, _, issuer *x509.Certificate, key *ecdsa.PrivateKey) {
				resp := mintCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "responder"},
					ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}}, issuer, key, &responderKey.PublicKey)
				writeOCSP(w, req, ocsp.Good, issuer, resp, responderKey, resp)
			})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newOCSPPKI(t)
			if tc.answer != nil {
				p.setAnswer(tc.answer(p))
			}
			if tc.closed {
				p.srv.Close()
			}
			_, err := p.verifier(t, nil).VerifyNotification(p.sign(t, sandboxModel(t, "signedNotification.json")))
			wantStatus(t, tc.name, err, tc.want)
			if err != nil && !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("error %q does not mention %q", err, tc.reason)
			}
		})
	}
}

// TestOCSPNoResponderURL: Apple's test leaf names no OCSP responder, so an
// online check of it cannot succeed.
func TestOCSPNoResponderURL(t *testing.T) {
	t.Parallel()
	c := loadTestChain(t)
	v := newTestVerifier(t, c, func(o *VerifierOptions) { o.OnlineChecks = true })
	_, err := v.VerifyNotification(c.sign(t, sandboxModel(t, "signedNotification.json")))
	wantStatus(t, "no AIA", err, VerificationFailure)
	if !strings.Contains(err.Error(), "no OCSP responder") {
		t.Errorf("error %q does not say why", err)
	}
}
