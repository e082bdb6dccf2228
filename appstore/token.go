package appstore

import (
	"crypto/ecdsa"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Bearer token facts (docs/appstore-api.md §1.2).
const (
	// tokenAudience is the aud claim Apple requires.
	tokenAudience = "appstoreconnect-v1"
	// TokenLifetime is how long each bearer token is valid. Apple rejects
	// tokens living longer than 60 minutes; a token is made per request, so
	// a short life only limits the damage of a leaked token.
	TokenLifetime = 5 * time.Minute
)

// tokenSigner makes the ES256 bearer JWT of each request.
type tokenSigner struct {
	keyID, issuerID, bundleID string
	key                       *ecdsa.PrivateKey
}

// sign returns a token issued at now: header {alg ES256, kid, typ JWT},
// claims {iss, iat, exp = iat + TokenLifetime, aud, bid}.
func (s *tokenSigner) sign(now time.Time) (string, error) {
	iat := now.Unix()
	// MapClaims keeps aud a plain string; RegisteredClaims may marshal it as
	// an array, which Apple's examples never use.
	t := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"iss": s.issuerID,
		"iat": iat,
		"exp": iat + int64(TokenLifetime/time.Second),
		"aud": tokenAudience,
		"bid": s.bundleID,
	})
	t.Header["kid"] = s.keyID
	t.Header["typ"] = "JWT"
	signed, err := t.SignedString(s.key)
	if err != nil {
		// The jwt error names the failure, not the key; still, keep it short.
		return "", fmt.Errorf("appstore: signing the bearer token failed: %w", err)
	}
	return signed, nil
}
