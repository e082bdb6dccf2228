package appstore

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Apple's marker extensions: the App Store receipt-signing leaf carries
// oidAppleLeaf and the Worldwide Developer Relations intermediate carries
// oidAppleIntermediate. A chain to Apple's root without them is some other
// Apple certificate and must not sign App Store data.
var (
	oidAppleLeaf         = asn1.ObjectIdentifier{1, 2, 840, 113635, 100, 6, 11, 1}
	oidAppleIntermediate = asn1.ObjectIdentifier{1, 2, 840, 113635, 100, 6, 2, 1}
)

// clockSkew widens every certificate's validity at both ends, as Apple's
// Node library does (MAX_SKEW), so a payload signed in the first or last
// minute of a certificate's life is not rejected for clock drift.
const clockSkew = 60 * time.Second

// chainCacheTTL bounds how long an online-checked chain is trusted without
// asking OCSP again (Apple's libraries use 15 minutes too).
const chainCacheTTL = 15 * time.Minute

// defaultChainCacheSize is how many distinct (leaf, intermediate) pairs are
// remembered. Apple rotates its leaf every year or two, so a handful is
// plenty; the bound only stops a stream of forged headers from growing
// memory.
const defaultChainCacheSize = 64

// verifiedChain is what a verified x5c chain yields.
type verifiedChain struct {
	key *ecdsa.PublicKey // the leaf's P-256 key, which must have signed the JWS
	// notBefore and notAfter bound the effective times at which the chain
	// is valid: the intersection of the leaf's, the intermediate's and the
	// root's validity, each widened by clockSkew.
	notBefore, notAfter time.Time
	leaf, intermediate  *x509.Certificate
	root                *x509.Certificate
}

func (c *verifiedChain) validAt(t time.Time) bool {
	return !t.Before(c.notBefore) && !t.After(c.notAfter)
}

// parseRoots parses trusted roots given as DER or PEM (a PEM input may hold
// several certificates). An entry that parses as neither is
// INVALID_CERTIFICATE, as in Apple's verifier.
func parseRoots(roots [][]byte) ([]*x509.Certificate, error) {
	if len(roots) == 0 {
		return nil, verificationErr(InvalidCertificate, "no trusted root certificates", nil)
	}
	var out []*x509.Certificate
	for i, b := range roots {
		certs, err := parseCertificates(b)
		if err != nil {
			return nil, verificationErr(InvalidCertificate,
				fmt.Sprintf("trusted root %d is not a DER or PEM certificate", i), err)
		}
		out = append(out, certs...)
	}
	return out, nil
}

// parseCertificates parses one DER certificate or the CERTIFICATE blocks of
// a PEM text.
func parseCertificates(b []byte) ([]*x509.Certificate, error) {
	if !bytes.Contains(b, []byte("-----BEGIN")) {
		c, err := x509.ParseCertificate(b)
		if err != nil {
			return nil, err
		}
		return []*x509.Certificate{c}, nil
	}
	var out []*x509.Certificate
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("PEM holds no CERTIFICATE block")
	}
	return out, nil
}

// verifyChain checks an x5c header at effective time at, exactly as Apple's
// SignedDataVerifier does, without any online check:
//
//   - x5c must hold exactly 3 entries (else INVALID_CHAIN_LENGTH);
//   - x5c[0] (leaf) and x5c[1] (intermediate) must be standard base64 of
//     DER certificates (else INVALID_CERTIFICATE); x5c[2] is ignored, never
//     trusted: the path must end at one of roots;
//   - the intermediate must be a CA whose signature and issuer name lead to
//     a trusted root, and the leaf must be signed by and named after the
//     intermediate;
//   - leaf, intermediate and root must be valid at at, give or take
//     clockSkew;
//   - the leaf must carry Apple's receipt-signing OID and the intermediate
//     the WWDR OID;
//   - the leaf's key must be ECDSA P-256 (ES256).
//
// Every failure after parsing is VERIFICATION_FAILURE.
func verifyChain(x5c []string, roots []*x509.Certificate, at time.Time) (*verifiedChain, error) {
	if len(roots) == 0 {
		return nil, verificationErr(InvalidCertificate, "no trusted root certificates", nil)
	}
	if len(x5c) != 3 {
		return nil, verificationErr(InvalidChainLength,
			fmt.Sprintf("x5c holds %d certificates, want 3", len(x5c)), nil)
	}
	leaf, err := parseX5CEntry(x5c[0])
	if err != nil {
		return nil, verificationErr(InvalidCertificate, "x5c[0] (leaf) is not a base64 DER certificate", err)
	}
	inter, err := parseX5CEntry(x5c[1])
	if err != nil {
		return nil, verificationErr(InvalidCertificate, "x5c[1] (intermediate) is not a base64 DER certificate", err)
	}
	fail := func(format string, args ...any) error {
		return verificationErr(VerificationFailure, fmt.Sprintf(format, args...), nil)
	}

	if !inter.BasicConstraintsValid || !inter.IsCA {
		return nil, fail("intermediate %q is not a CA", inter.Subject)
	}
	// Find the trusted root that issued the intermediate. Several roots
	// could share a name (a renewed root), so prefer one valid at `at`.
	var root *x509.Certificate
	for _, r := range roots {
		if !bytes.Equal(inter.RawIssuer, r.RawSubject) || inter.CheckSignatureFrom(r) != nil {
			continue
		}
		if root == nil || (!inSkewedValidity(root, at) && inSkewedValidity(r, at)) {
			root = r
		}
	}
	if root == nil {
		return nil, fail("intermediate %q is not issued by a trusted root", inter.Subject)
	}
	if !bytes.Equal(leaf.RawIssuer, inter.RawSubject) {
		return nil, fail("leaf issuer %q is not the intermediate %q", leaf.Issuer, inter.Subject)
	}
	if err := leaf.CheckSignatureFrom(inter); err != nil {
		return nil, verificationErr(VerificationFailure, "leaf is not signed by the intermediate", err)
	}
	for _, c := range []struct {
		role string
		cert *x509.Certificate
	}{{"leaf", leaf}, {"intermediate", inter}, {"root", root}} {
		if !inSkewedValidity(c.cert, at) {
			return nil, fail("%s %q is not valid at %s (valid %s to %s)", c.role, c.cert.Subject,
				at.UTC().Format(time.RFC3339), c.cert.NotBefore.UTC().Format(time.RFC3339),
				c.cert.NotAfter.UTC().Format(time.RFC3339))
		}
		// OpenSSL, which Apple's Python verifier relies on, rejects a
		// critical extension it does not understand; so do we.
		if len(c.cert.UnhandledCriticalExtensions) > 0 {
			return nil, fail("%s %q has unhandled critical extension %v", c.role, c.cert.Subject,
				c.cert.UnhandledCriticalExtensions)
		}
	}
	if !hasExtension(leaf, oidAppleLeaf) {
		return nil, fail("leaf lacks Apple's receipt-signing extension %v", oidAppleLeaf)
	}
	if !hasExtension(inter, oidAppleIntermediate) {
		return nil, fail("intermediate lacks Apple's WWDR extension %v", oidAppleIntermediate)
	}
	key, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || key.Curve != elliptic.P256() {
		return nil, fail("leaf key is not ECDSA P-256, so it cannot have made an ES256 signature")
	}

	vc := &verifiedChain{key: key, leaf: leaf, intermediate: inter, root: root}
	vc.notBefore, vc.notAfter = leaf.NotBefore, leaf.NotAfter
	for _, c := range []*x509.Certificate{inter, root} {
		if c.NotBefore.After(vc.notBefore) {
			vc.notBefore = c.NotBefore
		}
		if c.NotAfter.Before(vc.notAfter) {
			vc.notAfter = c.NotAfter
		}
	}
	vc.notBefore, vc.notAfter = vc.notBefore.Add(-clockSkew), vc.notAfter.Add(clockSkew)
	return vc, nil
}

// parseX5CEntry decodes standard base64 (with padding; line breaks are not
// allowed, as in Apple's strict decode) and parses the DER certificate.
func parseX5CEntry(s string) (*x509.Certificate, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("line break in base64")
	}
	der, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func inSkewedValidity(c *x509.Certificate, t time.Time) bool {
	return !t.Before(c.NotBefore.Add(-clockSkew)) && !t.After(c.NotAfter.Add(clockSkew))
}

func hasExtension(c *x509.Certificate, oid asn1.ObjectIdentifier) bool {
	for _, e := range c.Extensions {
		if e.Id.Equal(oid) {
			return true
		}
	}
	return false
}

// chainKey identifies a chain by the exact x5c strings Apple sent, so a
// cache hit needs no base64 decoding or certificate parsing.
type chainKey struct{ leaf, intermediate string }

type chainEntry struct {
	chain *verifiedChain
	// checkedAt is when the chain was verified; with online checks the
	// entry is only used until checkedAt+chainCacheTTL.
	checkedAt time.Time
}

// chainCache remembers verified chains. It is bounded (oldest entry out
// first) and safe for concurrent use; siblings made by WithEnvironment
// share one.
type chainCache struct {
	mu    sync.RWMutex
	m     map[chainKey]chainEntry
	order []chainKey // insertion order, for eviction
	size  int
}

func newChainCache(size int) *chainCache {
	return &chainCache{m: make(map[chainKey]chainEntry, size), size: size}
}

// get returns the cached chain for (leaf, intermediate) if it is valid at
// effective time at and, when ttl > 0, was checked within ttl before now.
func (c *chainCache) get(leaf, intermediate string, at, now time.Time, ttl time.Duration) *verifiedChain {
	if c == nil {
		return nil
	}
	c.mu.RLock()
	e, ok := c.m[chainKey{leaf, intermediate}]
	c.mu.RUnlock()
	if !ok || !e.chain.validAt(at) || (ttl > 0 && now.Sub(e.checkedAt) >= ttl) {
		return nil
	}
	return e.chain
}

func (c *chainCache) put(leaf, intermediate string, chain *verifiedChain, now time.Time) {
	if c == nil {
		return
	}
	// Clone so the entry does not pin the whole decoded header it came
	// from.
	k := chainKey{strings.Clone(leaf), strings.Clone(intermediate)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; !ok {
		for len(c.order) >= c.size {
			delete(c.m, c.order[0])
			c.order = c.order[1:]
		}
		c.order = append(c.order, k)
	}
	c.m[k] = chainEntry{chain: chain, checkedAt: now}
}

func (c *chainCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
