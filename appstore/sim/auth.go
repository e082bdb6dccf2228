package sim

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"time"
)

// Audience is the aud claim every App Store Server API JWT carries.
const Audience = "appstoreconnect-v1"

// maxTokenLifetime is Apple's limit on exp - iat (docs/appstore-api.md §1.2).
const maxTokenLifetime = 60 * time.Minute

// authenticator checks request JWTs against the simulator's API key and
// identities. Verified tokens are cached (they cannot change, only expire),
// so a client that reuses a token costs no signature check per request.
type authenticator struct {
	key                     *ecdsa.PrivateKey
	keyPEM                  []byte
	keyID, issuer, bundleID string

	mu    sync.Mutex
	cache map[string]time.Time // token -> exp
}

const authCacheMax = 8192

func newAuthenticator(keyPEM []byte, keyID, issuer, bundleID string) (*authenticator, error) {
	if keyPEM == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, err
		}
		keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	key, err := parseAPIKey(keyPEM)
	if err != nil {
		return nil, err
	}
	return &authenticator{
		key: key, keyPEM: bytes.Clone(keyPEM),
		keyID: keyID, issuer: issuer, bundleID: bundleID,
		cache: make(map[string]time.Time),
	}, nil
}

// parseAPIKey reads a P-256 private key from PEM: PKCS#8 ("PRIVATE KEY", the
// .p8 format App Store Connect hands out) or SEC 1 ("EC PRIVATE KEY"). The
// error never quotes the key.
func parseAPIKey(b []byte) (*ecdsa.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("sim: Options.PrivateKeyPEM: no PEM block found: pass the contents of a .p8 file")
	}
	var k any
	var err error
	switch blk.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("sim: Options.PrivateKeyPEM: PEM block %q: want PRIVATE KEY (PKCS#8, a .p8 file)", blk.Type)
	}
	if err != nil {
		return nil, errors.New("sim: Options.PrivateKeyPEM: not a valid private key")
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, errors.New("sim: Options.PrivateKeyPEM: want a P-256 EC key (ES256)")
	}
	return ek, nil
}

// jwtClaims are the claims the App Store Server API reads.
type jwtClaims struct {
	Iss string   `json:"iss"`
	Iat *float64 `json:"iat,omitempty"`
	Exp *float64 `json:"exp,omitempty"`
	Aud audience `json:"aud"`
	Bid string   `json:"bid"`
}

// audience accepts a string or an array of strings, as RFC 7519 allows.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*a = audience{s}
		return nil
	}
	var ss []string
	if err := json.Unmarshal(b, &ss); err != nil {
		return err
	}
	*a = ss
	return nil
}

// authorized reports whether the Authorization header carries a JWT Apple
// would accept at wall time now.
func (a *authenticator) authorized(header string, now time.Time) bool {
	token, ok := strings.CutPrefix(header, "Bearer ")
	if !ok {
		return false
	}
	token = strings.TrimSpace(token)
	a.mu.Lock()
	exp, hit := a.cache[token]
	a.mu.Unlock()
	if hit {
		return now.Before(exp)
	}
	exp, ok = a.verify(token, now)
	if !ok {
		return false
	}
	a.mu.Lock()
	if len(a.cache) >= authCacheMax {
		clear(a.cache)
	}
	a.cache[token] = exp
	a.mu.Unlock()
	return true
}

// verify checks signature, header and claims; it returns the expiry.
func (a *authenticator) verify(token string, now time.Time) (time.Time, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	var hdr struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if !decodeSegment(parts[0], &hdr) || hdr.Alg != "ES256" || hdr.Kid != a.keyID {
		return time.Time{}, false
	}
	var c jwtClaims
	if !decodeSegment(parts[1], &c) {
		return time.Time{}, false
	}
	if c.Iss != a.issuer || c.Bid != a.bundleID || len(c.Aud) != 1 || c.Aud[0] != Audience || c.Exp == nil {
		return time.Time{}, false
	}
	exp := time.UnixMilli(int64(*c.Exp * 1000))
	if !now.Before(exp) {
		return time.Time{}, false
	}
	// Without iat (Apple's own libraries omit it) the hour counts from now.
	issued := now
	if c.Iat != nil {
		issued = time.UnixMilli(int64(*c.Iat * 1000))
	}
	if exp.Sub(issued) > maxTokenLifetime {
		return time.Time{}, false
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return time.Time{}, false
	}
	digest := sha256.Sum256([]byte(token[:len(parts[0])+1+len(parts[1])]))
	r := new(big.Int).SetBytes(sig[:32])
	s := new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(&a.key.PublicKey, digest[:], r, s) {
		return time.Time{}, false
	}
	return exp, true
}

func decodeSegment(seg string, v any) bool {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return false
	}
	return json.Unmarshal(b, v) == nil
}

// MintToken returns an App Store Server API JWT signed with key, shaped the
// way Apple documents it: header {alg ES256, kid, typ JWT}, claims iss, iat,
// exp, aud "appstoreconnect-v1", bid. A zero iat omits the claim (as Apple's
// Python library does). Tests use it to mint both valid and broken tokens.
func MintToken(key *ecdsa.PrivateKey, keyID, issuerID, bundleID string, iat, exp time.Time) (string, error) {
	claims := map[string]any{"iss": issuerID, "exp": exp.Unix(), "aud": Audience, "bid": bundleID}
	if !iat.IsZero() {
		claims["iat"] = iat.Unix()
	}
	body, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	return SignJWS(key, map[string]string{"alg": "ES256", "kid": keyID, "typ": "JWT"}, body)
}

// token mints a valid token for the simulator's own key, valid 30 minutes.
func (a *authenticator) token(now time.Time) (string, error) {
	return MintToken(a.key, a.keyID, a.issuer, a.bundleID, now, now.Add(30*time.Minute))
}
