package jobstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore/sim"
)

// Chain is a three-certificate chain built by a test, to sign JWS that the
// simulator's CA cannot produce (no Apple markers, an OCSP responder).
type Chain struct {
	// Root is the self-signed root: trust it (Root.Raw) or leave it out.
	Root *x509.Certificate
	// X5C is the x5c header of what the chain signs: leaf, intermediate,
	// root, base64 DER.
	X5C     []string
	leafKey *ecdsa.PrivateKey
}

// NewChain returns a fresh chain valid from 2020 to 2045. markers puts
// Apple's marker OIDs on the intermediate and the leaf (without them
// Apple's verifier must refuse it); a non-empty ocspURL names the OCSP
// responder of both.
func NewChain(t testing.TB, markers bool, ocspURL string) *Chain {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	rootKey, interKey, leafKey := key(), key(), key()
	nb, na := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2045, 1, 1, 0, 0, 0, 0, time.UTC)
	null := []byte{0x05, 0x00}
	serial := int64(1)
	issue := func(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) *x509.Certificate {
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore, tmpl.NotAfter = nb, na
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	rootT := &x509.Certificate{Subject: pkix.Name{CommonName: "test root"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, SubjectKeyId: []byte{1}}
	root := issue(rootT, rootT, &rootKey.PublicKey, rootKey)
	interT := &x509.Certificate{Subject: pkix.Name{CommonName: "test intermediate"}, IsCA: true, BasicConstraintsValid: true,
		MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign, SubjectKeyId: []byte{2}}
	leafT := &x509.Certificate{Subject: pkix.Name{CommonName: "test leaf"}, KeyUsage: x509.KeyUsageDigitalSignature, SubjectKeyId: []byte{3}}
	if markers {
		interT.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 2, 840, 113635, 100, 6, 2, 1}, Value: null}}
		leafT.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 2, 840, 113635, 100, 6, 11, 1}, Value: null}}
	}
	if ocspURL != "" {
		interT.OCSPServer = []string{ocspURL}
		leafT.OCSPServer = []string{ocspURL}
	}
	inter := issue(interT, root, &interKey.PublicKey, rootKey)
	leaf := issue(leafT, inter, &leafKey.PublicKey, interKey)
	enc := base64.StdEncoding.EncodeToString
	return &Chain{Root: root, X5C: []string{enc(leaf.Raw), enc(inter.Raw), enc(root.Raw)}, leafKey: leafKey}
}

// Sign returns payload as a JWS with header {alg, x5c}, signed ES256 by
// the leaf whatever alg claims (so a test can claim another algorithm).
func (c *Chain) Sign(t testing.TB, alg string, payload any) string {
	t.Helper()
	body, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := sim.SignJWS(c.leafKey, map[string]any{"alg": alg, "x5c": c.X5C}, body)
	if err != nil {
		t.Fatal(err)
	}
	return jws
}

// SignNote signs a test notification and both its inner payloads with the
// chain; n must have Data, Tx and RI.
func (c *Chain) SignNote(t testing.TB, n *Note) string {
	p := n.N
	d := *p.Data
	p.Data = &d
	d.SignedTransactionInfo = c.Sign(t, "ES256", n.Tx)
	d.SignedRenewalInfo = c.Sign(t, "ES256", n.RI)
	return c.Sign(t, "ES256", p)
}
