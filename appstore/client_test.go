package appstore

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/storesync/storesync/appstore/applevectors"
)

// testNow is the fixed clock of client tests: 2023-11-14T22:13:10Z.
var testNow = time.UnixMilli(1699999990000).UTC()

// modelFixture reads one of Apple's API response fixtures.
func modelFixture(t *testing.T, name string) []byte {
	return applevectors.Bytes(t, "tests/resources/models/"+name)
}

// testSigningKey is the API key of Apple's client tests.
func testSigningKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ParsePrivateKey(applevectors.Bytes(t, "tests/resources/certs/testSigningKey.p8"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// budgetCall is one call a recordingBudget saw.
type budgetCall struct {
	Env      Environment
	Endpoint Endpoint
	Until    time.Time // Throttle only
}

// recordingBudget is a Budget that never blocks and records every call.
type recordingBudget struct {
	mu        sync.Mutex
	waits     []budgetCall
	throttles []budgetCall
	waitErr   error
}

func (b *recordingBudget) Wait(ctx context.Context, env Environment, ep Endpoint) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.waits = append(b.waits, budgetCall{Env: env, Endpoint: ep})
	if b.waitErr != nil {
		return b.waitErr
	}
	return ctx.Err()
}

func (b *recordingBudget) Throttle(env Environment, ep Endpoint, until time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.throttles = append(b.throttles, budgetCall{Env: env, Endpoint: ep, Until: until})
}

func (b *recordingBudget) Waits() []budgetCall {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]budgetCall(nil), b.waits...)
}

func (b *recordingBudget) Throttles() []budgetCall {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]budgetCall(nil), b.throttles...)
}

// seenRequest is what the fake Apple server received.
type seenRequest struct {
	Method string
	Path   string // decoded, without the environment prefix
	Query  url.Values
	Body   []byte
	Header http.Header
	Env    Environment
}

// reply is one canned answer of the fake server.
type reply struct {
	status int
	body   []byte
	header map[string]string
}

// fakeApple serves /production/... and /sandbox/... from one httptest
// server, answering from a function of the request.
type fakeApple struct {
	srv    *httptest.Server
	mu     sync.Mutex
	seen   []seenRequest
	answer func(r seenRequest) reply
}

func newFakeApple(t *testing.T, answer func(r seenRequest) reply) *fakeApple {
	t.Helper()
	f := &fakeApple{answer: answer}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s := seenRequest{Method: r.Method, Query: r.URL.Query(), Body: body, Header: r.Header.Clone()}
		switch {
		case strings.HasPrefix(r.URL.Path, "/production/"):
			s.Env, s.Path = Production, strings.TrimPrefix(r.URL.Path, "/production")
		case strings.HasPrefix(r.URL.Path, "/sandbox/"):
			s.Env, s.Path = Sandbox, strings.TrimPrefix(r.URL.Path, "/sandbox")
		default:
			http.Error(w, "unknown prefix", http.StatusTeapot)
			return
		}
		f.mu.Lock()
		f.seen = append(f.seen, s)
		f.mu.Unlock()
		rep := f.answer(s)
		for k, v := range rep.header {
			w.Header().Set(k, v)
		}
		if rep.body != nil && w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(rep.status)
		_, _ = w.Write(rep.body)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeApple) Seen() []seenRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seenRequest(nil), f.seen...)
}

// testOptions returns options pointing Production at f's /production and
// the sandbox at f's /sandbox.
func testOptions(t *testing.T, f *fakeApple, b Budget) ClientOptions {
	return ClientOptions{
		KeyID:          "keyId",
		IssuerID:       "issuerId",
		BundleID:       "com.example",
		PrivateKey:     testSigningKey(t),
		Environment:    Production,
		BaseURL:        f.srv.URL + "/production",
		SandboxBaseURL: f.srv.URL + "/sandbox",
		Budget:         b,
		Now:            func() time.Time { return testNow },
		UserAgent:      "storesync/test",
	}
}

func newTestClient(t *testing.T, f *fakeApple, b Budget, edit func(*ClientOptions)) *Client {
	t.Helper()
	o := testOptions(t, f, b)
	if edit != nil {
		edit(&o)
	}
	c, err := NewClient(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkBearer verifies the request's token with the public half of the
// test key and checks every header and claim Apple requires.
func checkBearer(t *testing.T, key *ecdsa.PrivateKey, h http.Header) string {
	t.Helper()
	raw, ok := strings.CutPrefix(h.Get("Authorization"), "Bearer ")
	if !ok {
		t.Fatalf("Authorization = %q, want a Bearer token", h.Get("Authorization"))
	}
	tok, err := jwt.Parse(raw, func(*jwt.Token) (any, error) { return &key.PublicKey, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithoutClaimsValidation())
	if err != nil {
		t.Fatalf("bearer token does not verify with the test key: %v", err)
	}
	wantHeader := map[string]any{"alg": "ES256", "kid": "keyId", "typ": "JWT"}
	if !reflect.DeepEqual(tok.Header, wantHeader) {
		t.Errorf("token header = %v, want %v", tok.Header, wantHeader)
	}
	// Decode the claims ourselves to see their JSON types (aud a string).
	var claims map[string]any
	seg := strings.Split(raw, ".")[1]
	b, err := jwt.NewParser().DecodeSegment(seg)
	if err != nil || json.Unmarshal(b, &claims) != nil {
		t.Fatalf("claims do not decode: %v", err)
	}
	want := map[string]any{
		"iss": "issuerId",
		"iat": float64(testNow.Unix()),
		"exp": float64(testNow.Unix() + 300),
		"aud": "appstoreconnect-v1",
		"bid": "com.example",
	}
	if !reflect.DeepEqual(claims, want) {
		t.Errorf("token claims = %v, want %v", claims, want)
	}
	return raw
}

// checkHeaders checks the non-auth headers of a request.
func checkHeaders(t *testing.T, s seenRequest) {
	t.Helper()
	if got := s.Header.Get("Accept"); got != "application/json" {
		t.Errorf("Accept = %q", got)
	}
	if got := s.Header.Get("User-Agent"); got != "storesync/test" {
		t.Errorf("User-Agent = %q", got)
	}
	ct := s.Header.Get("Content-Type")
	if len(s.Body) > 0 && ct != "application/json" {
		t.Errorf("Content-Type = %q with a body, want application/json", ct)
	}
	if len(s.Body) == 0 && ct != "" {
		t.Errorf("Content-Type = %q without a body, want none", ct)
	}
}

// jsonEqual compares two JSON documents by value.
func jsonEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("body %q is not JSON: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("body = %s, want %s", got, want)
	}
}

func asAPIError(t *testing.T, err error) *APIError {
	t.Helper()
	var e *APIError
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *APIError", err, err)
	}
	return e
}

func TestNewClientDefaults(t *testing.T) {
	t.Parallel()
	key := testSigningKey(t)
	for _, tc := range []struct {
		env      Environment
		fallback bool
		wantBase string
	}{
		{Production, false, DefaultProductionBaseURL},
		{Production, true, DefaultProductionBaseURL},
		{Sandbox, false, DefaultSandboxBaseURL},
	} {
		c, err := NewClient(ClientOptions{KeyID: "k", IssuerID: "i", BundleID: "b", PrivateKey: key, Environment: tc.env, SandboxFallback: tc.fallback})
		if err != nil {
			t.Fatal(err)
		}
		if c.Environment() != tc.env || c.baseURLs[tc.env] != tc.wantBase {
			t.Errorf("%s: env %s base %q", tc.env, c.Environment(), c.baseURLs[tc.env])
		}
		if c.http.Timeout != DefaultHTTPTimeout {
			t.Errorf("default HTTP timeout = %v", c.http.Timeout)
		}
		if !strings.HasPrefix(c.userAgent, "storesync/") {
			t.Errorf("default User-Agent = %q", c.userAgent)
		}
		rb, ok := c.budget.(*RateBudget)
		if !ok {
			t.Fatalf("default budget is %T", c.budget)
		}
		if got, want := rb.Limit(tc.env, EndpointStatuses), DefaultRateLimit(EndpointStatuses, tc.env); got != want {
			t.Errorf("%s statuses limit = %v, want %v", tc.env, got, want)
		}
		if tc.fallback {
			if c.baseURLs[Sandbox] != DefaultSandboxBaseURL {
				t.Errorf("fallback sandbox base = %q", c.baseURLs[Sandbox])
			}
			if got := rb.Limit(Sandbox, EndpointHistory); got != 5 {
				t.Errorf("fallback sandbox history limit = %v, want 5", got)
			}
		}
	}
}

func TestNewClientValidation(t *testing.T) {
	t.Parallel()
	key := testSigningKey(t)
	valid := ClientOptions{KeyID: "k", IssuerID: "i", BundleID: "b", PrivateKey: key, Environment: Production}
	for _, tc := range []struct {
		name string
		edit func(*ClientOptions)
		want []string
	}{
		{"no key id", func(o *ClientOptions) { o.KeyID = " " }, []string{"ClientOptions.KeyID", "APPSTORE_KEY_ID"}},
		{"no issuer", func(o *ClientOptions) { o.IssuerID = "" }, []string{"ClientOptions.IssuerID", "APPSTORE_ISSUER_ID"}},
		{"no bundle", func(o *ClientOptions) { o.BundleID = "" }, []string{"ClientOptions.BundleID", "APPSTORE_BUNDLE_ID"}},
		{"no private key", func(o *ClientOptions) { o.PrivateKey = nil }, []string{"ClientOptions.PrivateKey", "ParsePrivateKey"}},
		{"no environment", func(o *ClientOptions) { o.Environment = "" }, []string{"ClientOptions.Environment", "Production or Sandbox"}},
		{"xcode", func(o *ClientOptions) { o.Environment = Xcode }, []string{"ClientOptions.Environment", `"Xcode"`, "no App Store Server API"}},
		{"local testing", func(o *ClientOptions) { o.Environment = LocalTesting }, []string{"ClientOptions.Environment", `"LocalTesting"`}},
		{"fallback in sandbox", func(o *ClientOptions) { o.Environment, o.SandboxFallback = Sandbox, true }, []string{"ClientOptions.SandboxFallback"}},
		{"relative base", func(o *ClientOptions) { o.BaseURL = "localhost:8080" }, []string{"ClientOptions.BaseURL", "absolute"}},
		{"base with query", func(o *ClientOptions) { o.BaseURL = "http://h/?a=b" }, []string{"ClientOptions.BaseURL", "query"}},
		{"bad sandbox base", func(o *ClientOptions) { o.SandboxBaseURL = "ftp://h" }, []string{"ClientOptions.SandboxBaseURL"}},
		{"every problem", func(o *ClientOptions) { *o = ClientOptions{} }, []string{"KeyID", "IssuerID", "BundleID", "PrivateKey", "Environment"}},
	} {
		o := valid
		tc.edit(&o)
		_, err := NewClient(o)
		if err == nil {
			t.Errorf("%s: NewClient accepted %+v", tc.name, o)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", tc.name, err, w)
			}
		}
	}
	if _, err := NewClient(valid); err != nil {
		t.Errorf("valid options refused: %v", err)
	}
}
