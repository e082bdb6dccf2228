package appstore

import (
	"crypto/ecdsa"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/storesync/storesync/appstore/applevectors"
)

func TestTokenVerifiesAndExpires(t *testing.T) {
	t.Parallel()
	key := testSigningKey(t)
	s := tokenSigner{keyID: "keyId", issuerID: "issuerId", bundleID: "com.example", key: key}
	now := time.Now()
	raw, err := s.sign(now)
	if err != nil {
		t.Fatal(err)
	}
	// Full validation, as Apple would: signature, exp, iat, aud.
	var claims jwt.MapClaims
	_, err = jwt.ParseWithClaims(raw, &claims, func(*jwt.Token) (any, error) { return &key.PublicKey, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithAudience("appstoreconnect-v1"),
		jwt.WithIssuer("issuerId"), jwt.WithIssuedAt(), jwt.WithExpirationRequired())
	if err != nil {
		t.Fatalf("fresh token refused: %v", err)
	}
	exp, _ := claims.GetExpirationTime()
	iat, _ := claims.GetIssuedAt()
	if d := exp.Sub(iat.Time); d != TokenLifetime || d > time.Hour {
		t.Errorf("lifetime %v, want %v (never more than an hour)", d, TokenLifetime)
	}
	// A token made 6 minutes ago has expired.
	old, _ := s.sign(now.Add(-6 * time.Minute))
	_, err = jwt.Parse(old, func(*jwt.Token) (any, error) { return &key.PublicKey, nil })
	if err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("6-minute-old token: %v, want expired", err)
	}
	// Another key does not verify it.
	other := testSigningKeyOther(t)
	if _, err := jwt.Parse(raw, func(*jwt.Token) (any, error) { return &other.PublicKey, nil }); err == nil {
		t.Error("token verifies with an unrelated key")
	}
}

func testSigningKeyOther(t *testing.T) *ecdsa.PrivateKey {
	k, err := ParsePrivateKey(applevectors.Bytes(t, "java/src/test/resources/certs/testLeaf.key"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// BenchmarkToken measures signing one bearer token, done once per request.
func BenchmarkToken(b *testing.B) {
	s := tokenSigner{keyID: "keyId", issuerID: "issuerId", bundleID: "com.example", key: testSigningKey(b)}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.sign(now); err != nil {
			b.Fatal(err)
		}
	}
}
