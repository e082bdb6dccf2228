package appstore

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha1"
	_ "crypto/sha512" // SHA-384/512 CertIDs
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"time"

	"golang.org/x/crypto/ocsp"
)

// DefaultOCSPTimeout bounds one OCSP request when VerifierOptions.HTTPClient
// is nil. It is short because a webhook waits on it: a slow responder turns
// into a RETRYABLE_VERIFICATION_FAILURE, and Apple retries the notification.
const DefaultOCSPTimeout = 5 * time.Second

// maxOCSPResponse bounds how much of a responder's answer is read.
const maxOCSPResponse = 1 << 20

// checkOCSP asks the OCSP responders named in cert's Authority Information
// Access extension whether cert, issued by issuer, is revoked, as Apple's
// verifier does:
//
//   - a network error or an HTTP status other than 200 is
//     RETRYABLE_VERIFICATION_FAILURE (the answer is unknown, not bad);
//   - the response must be signed by issuer itself, or by a responder
//     certificate that issuer signed, that is valid now and that carries the
//     OCSP-signing extended key usage;
//   - one of its single responses must say "good" for cert's serial number
//     with issuer's name and key hashes, and be current (thisUpdate and
//     nextUpdate, give or take clockSkew);
//   - anything else (no responder URL, revoked, unknown, unsuccessful or
//     unparsable answer) is VERIFICATION_FAILURE.
func checkOCSP(ctx context.Context, client *http.Client, cert, issuer *x509.Certificate, now time.Time) error {
	role := fmt.Sprintf("OCSP for %q", cert.Subject)
	if len(cert.OCSPServer) == 0 {
		return verificationErr(VerificationFailure, role+": certificate names no OCSP responder", nil)
	}
	req, err := ocsp.CreateRequest(cert, issuer, &ocsp.RequestOptions{Hash: crypto.SHA256})
	if err != nil {
		return verificationErr(VerificationFailure, role+": cannot build request", err)
	}
	var last error
	for _, url := range cert.OCSPServer {
		body, err := postOCSP(ctx, client, url, req)
		if err != nil {
			return verificationErr(RetryableVerificationFailure, role+": responder "+url+" did not answer", err)
		}
		last = evaluateOCSP(body, cert, issuer, now)
		if last == nil {
			return nil
		}
	}
	return verificationErr(VerificationFailure, role, last)
}

func postOCSP(ctx context.Context, client *http.Client, url string, req []byte) ([]byte, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(req))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/ocsp-request")
	hreq.Header.Set("Accept", "application/ocsp-response")
	resp, err := client.Do(hreq)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("HTTP status %d", resp.StatusCode)
	}
	return io.ReadAll(io.LimitReader(resp.Body, maxOCSPResponse))
}

// evaluateOCSP checks one DER OCSP response; nil means cert is good.
func evaluateOCSP(der []byte, cert, issuer *x509.Certificate, now time.Time) error {
	// Without an issuer, x/crypto only checks the response against the
	// certificate it embeds (if any); who may sign is decided below.
	resp, err := ocsp.ParseResponseForCert(der, cert, nil)
	if err != nil {
		return fmt.Errorf("unusable response: %w", err)
	}
	signer, err := ocspSigner(resp, issuer, now)
	if err != nil {
		return err
	}
	if err := signer.CheckSignature(resp.SignatureAlgorithm, resp.TBSResponseData, resp.Signature); err != nil {
		return fmt.Errorf("response signature: %w", err)
	}
	singles, err := parseSingleResponses(resp.TBSResponseData)
	if err != nil {
		return fmt.Errorf("unusable response data: %w", err)
	}
	var found error = errors.New("no status for this certificate")
	for _, s := range singles {
		if s.CertID.SerialNumber == nil || s.CertID.SerialNumber.Cmp(cert.SerialNumber) != 0 ||
			!issuerHashesMatch(s.CertID, issuer) {
			continue
		}
		switch {
		case s.Status.Class != asn1.ClassContextSpecific || s.Status.Tag == 2:
			found = errors.New("status unknown")
		case s.Status.Tag == 1:
			found = fmt.Errorf("revoked")
			if resp.Status == ocsp.Revoked && !resp.RevokedAt.IsZero() {
				found = fmt.Errorf("revoked at %s", resp.RevokedAt.UTC().Format(time.RFC3339))
			}
		case s.ThisUpdate.After(now.Add(clockSkew)):
			found = fmt.Errorf("response not yet valid (thisUpdate %s)", s.ThisUpdate.UTC().Format(time.RFC3339))
		case !s.NextUpdate.IsZero() && s.NextUpdate.Before(now.Add(-clockSkew)):
			found = fmt.Errorf("response stale (nextUpdate %s)", s.NextUpdate.UTC().Format(time.RFC3339))
		case s.Status.Tag == 0:
			return nil
		}
	}
	return found
}

// ocspSigner returns the certificate whose key must have signed resp: the
// one among issuer and the responder certificate embedded in resp that
// matches the response's responder ID. A delegated responder must be signed
// by issuer, be valid now and carry the OCSP-signing extended key usage.
func ocspSigner(resp *ocsp.Response, issuer *x509.Certificate, now time.Time) (*x509.Certificate, error) {
	candidates := []*x509.Certificate{issuer}
	if resp.Certificate != nil {
		candidates = append(candidates, resp.Certificate)
	}
	var signer *x509.Certificate
	for _, c := range candidates {
		if resp.ResponderKeyHash != nil {
			if h, err := publicKeyHash(c, crypto.SHA1); err == nil && bytes.Equal(h, resp.ResponderKeyHash) {
				signer = c
				break
			}
		} else if bytes.Equal(resp.RawResponderName, c.RawSubject) {
			signer = c
			break
		}
	}
	switch {
	case signer == nil:
		return nil, errors.New("responder is neither the issuer nor a certificate in the response")
	case bytes.Equal(signer.Raw, issuer.Raw):
		return signer, nil
	}
	if err := signer.CheckSignatureFrom(issuer); err != nil {
		return nil, fmt.Errorf("responder certificate %q not issued by %q: %w", signer.Subject, issuer.Subject, err)
	}
	if !inSkewedValidity(signer, now) {
		return nil, fmt.Errorf("responder certificate %q not valid now", signer.Subject)
	}
	for _, u := range signer.ExtKeyUsage {
		if u == x509.ExtKeyUsageOCSPSigning {
			return signer, nil
		}
	}
	return nil, fmt.Errorf("responder certificate %q lacks the OCSP-signing key usage", signer.Subject)
}

// The parts of RFC 6960 ResponseData that x/crypto/ocsp does not expose:
// every SingleResponse with its full CertID (issuer name and key hashes).
type ocspResponseData struct {
	Version     int `asn1:"optional,explicit,tag:0,default:0"`
	ResponderID asn1.RawValue
	ProducedAt  time.Time `asn1:"generalized"`
	Responses   []ocspSingleResponse
	Extensions  asn1.RawValue `asn1:"optional,explicit,tag:1"`
}

type ocspSingleResponse struct {
	CertID     ocspCertID
	Status     asn1.RawValue
	ThisUpdate time.Time     `asn1:"generalized"`
	NextUpdate time.Time     `asn1:"generalized,explicit,tag:0,optional"`
	Extensions asn1.RawValue `asn1:"explicit,tag:1,optional"`
}

type ocspCertID struct {
	HashAlgorithm  pkix.AlgorithmIdentifier
	IssuerNameHash []byte
	IssuerKeyHash  []byte
	SerialNumber   *big.Int
}

func parseSingleResponses(tbs []byte) ([]ocspSingleResponse, error) {
	var rd ocspResponseData
	rest, err := asn1.Unmarshal(tbs, &rd)
	if err != nil {
		return nil, err
	}
	if len(rest) > 0 {
		return nil, errors.New("trailing data")
	}
	return rd.Responses, nil
}

var ocspHashes = []struct {
	oid  asn1.ObjectIdentifier
	hash crypto.Hash
}{
	{asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}, crypto.SHA1},
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}, crypto.SHA256},
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}, crypto.SHA384},
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}, crypto.SHA512},
}

// issuerHashesMatch reports whether id names issuer (hash of its subject
// name and of its public key, with the hash id declares).
func issuerHashesMatch(id ocspCertID, issuer *x509.Certificate) bool {
	for _, h := range ocspHashes {
		if !id.HashAlgorithm.Algorithm.Equal(h.oid) {
			continue
		}
		name := h.hash.New()
		name.Write(issuer.RawSubject)
		key, err := publicKeyHash(issuer, h.hash)
		return err == nil && bytes.Equal(name.Sum(nil), id.IssuerNameHash) && bytes.Equal(key, id.IssuerKeyHash)
	}
	return false
}

// publicKeyHash hashes the subjectPublicKey BIT STRING of c, as OCSP
// CertIDs and responder key hashes do.
func publicKeyHash(c *x509.Certificate, h crypto.Hash) ([]byte, error) {
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(c.RawSubjectPublicKeyInfo, &spki); err != nil {
		return nil, err
	}
	if h == crypto.SHA1 {
		sum := sha1.Sum(spki.PublicKey.RightAlign())
		return sum[:], nil
	}
	d := h.New()
	d.Write(spki.PublicKey.RightAlign())
	return d.Sum(nil), nil
}
