package sim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
)

func TestAuthRejectsBadTokensWith401AndNoBody(t *testing.T) {
	t.Parallel()
	s := startTest(t, unlimited(Options{Seed: 1, Subscribers: 20}))
	key, err := parseAPIKey(s.PrivateKeyPEM())
	if err != nil {
		t.Fatal(err)
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	mint := func(k *ecdsa.PrivateKey, kid, iss, bid string, iat, exp time.Time) string {
		tok, err := MintToken(k, kid, iss, bid, iat, exp)
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + tok
	}
	// customClaims signs arbitrary claims, for aud variations.
	customClaims := func(claims map[string]any) string {
		hdr, _ := json.Marshal(map[string]string{"alg": "ES256", "kid": s.KeyID(), "typ": "JWT"})
		body, _ := json.Marshal(claims)
		in := base64.RawURLEncoding.EncodeToString(hdr) + "." + base64.RawURLEncoding.EncodeToString(body)
		sig, err := signES256(key, []byte(in))
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + in + "." + base64.RawURLEncoding.EncodeToString(sig)
	}
	valid := mint(key, s.KeyID(), s.IssuerID(), s.BundleID(), now, now.Add(5*time.Minute))
	cases := []struct {
		name string
		auth string
		want int
	}{
		{"valid", valid, 200},
		{"valid without iat", mint(key, s.KeyID(), s.IssuerID(), s.BundleID(), time.Time{}, now.Add(5*time.Minute)), 200},
		{"valid for exactly 60 minutes", mint(key, s.KeyID(), s.IssuerID(), s.BundleID(), now, now.Add(60*time.Minute)), 200},
		{"missing", "", 401},
		{"not bearer", "Basic dXNlcjpwYXNz", 401},
		{"garbage", "Bearer abc.def.ghi", 401},
		{"expired", mint(key, s.KeyID(), s.IssuerID(), s.BundleID(), now.Add(-20*time.Minute), now.Add(-10*time.Minute)), 401},
		{"lifetime over 60 minutes", mint(key, s.KeyID(), s.IssuerID(), s.BundleID(), now, now.Add(61*time.Minute)), 401},
		{"no iat and exp beyond an hour", mint(key, s.KeyID(), s.IssuerID(), s.BundleID(), time.Time{}, now.Add(2*time.Hour)), 401},
		{"wrong kid", mint(key, "OTHERKEY01", s.IssuerID(), s.BundleID(), now, now.Add(5*time.Minute)), 401},
		{"wrong issuer", mint(key, s.KeyID(), "00000000-0000-0000-0000-000000000000", s.BundleID(), now, now.Add(5*time.Minute)), 401},
		{"wrong bid", mint(key, s.KeyID(), s.IssuerID(), "com.example.other", now, now.Add(5*time.Minute)), 401},
		{"signed by another key", mint(other, s.KeyID(), s.IssuerID(), s.BundleID(), now, now.Add(5*time.Minute)), 401},
		{"wrong aud", customClaims(map[string]any{"iss": s.IssuerID(), "aud": "appstoreconnect-v2", "bid": s.BundleID(), "exp": now.Add(5 * time.Minute).Unix()}), 401},
		{"no exp", customClaims(map[string]any{"iss": s.IssuerID(), "aud": Audience, "bid": s.BundleID(), "iat": now.Unix()}), 401},
		{"aud as array", customClaims(map[string]any{"iss": s.IssuerID(), "aud": []string{Audience}, "bid": s.BundleID(), "exp": now.Add(5 * time.Minute).Unix()}), 200},
	}
	id := s.OriginalTransactionIDs(appstore.Production)[0]
	for _, c := range cases {
		for _, path := range []string{"/inApps/v1/transactions/" + id, "/sandbox/inApps/v1/transactions/" + id} {
			r := callWith(t, s, "GET", path, nil, c.auth)
			if path[1] == 's' && c.want == 200 {
				// Production ids are unknown to the sandbox: auth passed.
				r.wantError(t, 404, 4040010)
				continue
			}
			if r.status != c.want {
				t.Errorf("%s %s: status %d, want %d", c.name, path, r.status, c.want)
			}
			if r.status == http.StatusUnauthorized && len(r.body) != 0 {
				t.Errorf("%s: 401 body %q, want empty", c.name, r.body)
			}
		}
	}
	// A garbage token is rejected every time, not only before caching.
	if r := callWith(t, s, "GET", "/inApps/v1/transactions/"+id, nil, valid+"x"); r.status != 401 {
		t.Errorf("tampered signature: status %d", r.status)
	}
	st := s.Stats().Endpoint(appstore.Production, appstore.EndpointTransaction)
	if st.ByStatus[401] == 0 || st.ByStatus[200] == 0 {
		t.Errorf("stats by status %v: want 401s and 200s counted", st.ByStatus)
	}
}

func TestOptionsValidation(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		opts Options
		want string
	}{
		{"negative subscribers", Options{Subscribers: -1}, "Options.Subscribers"},
		{"bad key id", Options{KeyID: "has space"}, "Options.KeyID"},
		{"bad issuer", Options{IssuerID: "not-a-uuid"}, "Options.IssuerID"},
		{"bad bundle", Options{BundleID: "a b"}, "Options.BundleID"},
		{"negative app id", Options{AppAppleID: -5}, "Options.AppAppleID"},
		{"drop share", Options{DropShare: 1.5}, "Options.DropShare"},
		{"webhook url", Options{WebhookURL: "ftp://x"}, "Options.WebhookURL"},
		{"rate limit endpoint", Options{RateLimits: map[appstore.Endpoint]float64{"nope": 1}}, "unknown endpoint"},
		{"rate limit value", Options{RateLimits: map[appstore.Endpoint]float64{appstore.EndpointHistory: 0}}, "Options.RateLimits[history]"},
		{"start year", Options{Start: time.Date(2050, 1, 1, 0, 0, 0, 0, time.UTC)}, "Options.Start"},
		{"private key", Options{PrivateKeyPEM: []byte("nope")}, "Options.PrivateKeyPEM"},
		{"faults", Options{Faults: Faults{InternalErrorShare: 0.7, HangShare: 0.7}}, "Options.Faults"},
		{"burst", Options{Burst: -time.Second}, "Options.Burst"},
	}
	for _, c := range cases {
		_, err := New(c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one naming %q", c.name, err, c.want)
		}
	}
}
