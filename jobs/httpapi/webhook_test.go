package httpapi

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/jobs"
	"github.com/storesync/storesync/jobs/jobstest"
	"github.com/storesync/storesync/ledger"
)

// TestWebhookRejectsWhatDoesNotVerify posts every kind of bad input and
// requires a 4xx with nothing stored and nothing enqueued.
func TestWebhookRejectsWhatDoesNotVerify(t *testing.T) {
	t.Parallel()
	noMarkers := jobstest.NewChain(t, false, "")
	withMarkers := jobstest.NewChain(t, true, "") // the control: same construction, markers present
	e := newHookEnv(t, hookEnvOptions{ExtraRoots: [][]byte{noMarkers.Root.Raw, withMarkers.Root.Raw}})
	other := jobstest.NewChain(t, true, "") // its root is not trusted
	now := time.Now()
	good := func() *jobstest.Note { return jobstest.NewNote(appstore.Production, now) }
	b64 := base64.RawURLEncoding.EncodeToString

	cases := []struct {
		name string
		body func() []byte
		want int
	}{
		{"forged signature", func() []byte {
			s := good().Sign(t, e.ca)
			i := strings.LastIndexByte(s, '.')
			sig, _ := base64.RawURLEncoding.DecodeString(s[i+1:])
			sig[10] ^= 0xff
			return wrap(s[:i+1] + b64(sig))
		}, 400},
		{"chain from an untrusted root", func() []byte { return wrap(other.SignNote(t, good())) }, 400},
		{"missing Apple marker OIDs", func() []byte { return wrap(noMarkers.SignNote(t, good())) }, 400},
		{"alg none", func() []byte {
			hdr, _ := json.Marshal(map[string]any{"alg": "none", "x5c": other.X5C})
			body, _ := json.Marshal(good().N)
			return wrap(b64(hdr) + "." + b64(body) + ".")
		}, 400},
		{"alg HS256", func() []byte {
			hdr, _ := json.Marshal(map[string]any{"alg": "HS256", "typ": "JWT"})
			body, _ := json.Marshal(good().N)
			mac := hmac.New(sha256.New, e.ca.Leaf.RawSubjectPublicKeyInfo)
			mac.Write([]byte(b64(hdr) + "." + b64(body)))
			return wrap(b64(hdr) + "." + b64(body) + "." + b64(mac.Sum(nil)))
		}, 400},
		{"tampered payload", func() []byte {
			s := good().Sign(t, e.ca)
			parts := strings.Split(s, ".")
			raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
			raw = []byte(strings.Replace(string(raw), `"DID_RENEW"`, `"REFUND"`, 1))
			return wrap(parts[0] + "." + b64(raw) + "." + parts[2])
		}, 400},
		{"tampered inner transaction", func() []byte {
			// The webhook does not verify inner fields (processing does);
			// the outer signature covers their bytes. Swap in another
			// inner transaction, itself validly signed by the trusted CA.
			n := good()
			s := n.Sign(t, e.ca)
			parts := strings.Split(s, ".")
			raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
			var p appstore.NotificationPayload
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Fatal(err)
			}
			n.Tx.ExpiresDate = appstore.MillisOf(now.Add(10 * 365 * 24 * time.Hour))
			longer, err := e.ca.Sign(n.Tx)
			if err != nil {
				t.Fatal(err)
			}
			swapped := strings.Replace(string(raw), p.Data.SignedTransactionInfo, longer, 1)
			if swapped == string(raw) {
				t.Fatal("inner transaction not swapped")
			}
			return wrap(parts[0] + "." + b64([]byte(swapped)) + "." + parts[2])
		}, 400},
		{"tampered inner renewal info", func() []byte {
			s := good().Sign(t, e.ca)
			parts := strings.Split(s, ".")
			raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
			var p appstore.NotificationPayload
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Fatal(err)
			}
			// The same renewal info with another key's signature.
			ri := p.Data.SignedRenewalInfo
			forged := other.Sign(t, "ES256", good().RI)
			swapped := strings.Replace(string(raw), ri, ri[:strings.LastIndexByte(ri, '.')]+forged[strings.LastIndexByte(forged, '.'):], 1)
			return wrap(parts[0] + "." + b64([]byte(swapped)) + "." + parts[2])
		}, 400},
		{"wrong bundle id", func() []byte {
			n := good()
			n.N.Data.BundleID = "com.attacker.app"
			return wrap(n.Sign(t, e.ca))
		}, 400},
		{"wrong app Apple id", func() []byte {
			n := good()
			n.N.Data.AppAppleID = 42
			return wrap(n.Sign(t, e.ca))
		}, 400},
		{"claims Xcode (unsigned environment)", func() []byte {
			n := jobstest.NewNote(appstore.Xcode, now)
			return wrap(n.Sign(t, e.ca))
		}, 400},
		{"truncated JWS", func() []byte {
			s := good().Sign(t, e.ca)
			return wrap(s[:len(s)/2])
		}, 400},
		{"non-JSON body", func() []byte { return []byte("signedPayload=eyJhbGciOiJFUzI1NiJ9") }, 400},
		{"JSON without signedPayload", func() []byte { return []byte(`{"payload":"x"}`) }, 400},
		{"oversized body", func() []byte {
			return wrap(strings.Repeat("A", MaxWebhookBody))
		}, 413},
	}
	for _, c := range cases {
		if got := e.post(c.body()); got != c.want {
			t.Errorf("%s: status %d, want %d", c.name, got, c.want)
		}
	}
	if n := e.count(`SELECT count(*) FROM notifications`); n != 0 {
		t.Fatalf("%d notifications stored from bad input", n)
	}
	if n := e.count(`SELECT count(*) FROM river_job`); n != 0 {
		t.Fatalf("%d jobs enqueued from bad input", n)
	}
	// Only what verified but names another app or environment is kept
	// aside; forgeries and malformed input are not.
	if n := e.count(`SELECT count(*) FROM kept_aside_notifications`); n != 3 {
		t.Fatalf("%d kept aside, want 3 (wrong bundle id, wrong app Apple id, Xcode)", n)
	}
	if n := e.count(`SELECT count(*) FROM kept_aside_notifications WHERE reason = 'INVALID_APP_IDENTIFIER'`); n != 2 {
		t.Fatalf("%d kept aside as INVALID_APP_IDENTIFIER, want 2", n)
	}
	if n := e.count(`SELECT count(*) FROM kept_aside_notifications WHERE reason = 'INVALID_ENVIRONMENT' AND claimed_environment = 'Xcode'`); n != 1 {
		t.Fatalf("%d kept aside as INVALID_ENVIRONMENT claiming Xcode, want 1", n)
	}
	if got := counterValue(e.deps.Metrics.WebhookAnswers.WithLabelValues(webhookKeptAside)); got != 3 {
		t.Fatalf("kept-aside answers counted %v, want 3", got)
	}
	// The control: the same pipeline stores a good one, in either environment.
	if got := e.postSigned(good().Sign(t, e.ca)); got != 200 {
		t.Fatalf("good production notification: status %d", got)
	}
	if got := e.postSigned(jobstest.NewNote(appstore.Sandbox, now).Sign(t, e.ca)); got != 200 {
		t.Fatalf("good sandbox notification: status %d", got)
	}
	if got := e.postSigned(withMarkers.SignNote(t, good())); got != 200 {
		t.Fatalf("good notification from a trusted chain with markers: status %d", got)
	}
	if n := e.count(`SELECT count(*) FROM notifications`); n != 3 {
		t.Fatalf("want 3 notifications stored, got %d", n)
	}
	if n := e.count(`SELECT count(*) FROM notifications WHERE environment = 'Sandbox'`); n != 1 {
		t.Fatalf("sandbox notification not recorded under its environment")
	}
	if got := counterValue(e.deps.Metrics.VerifyFailures.WithLabelValues("VERIFICATION_FAILURE")); got < 7 {
		t.Fatalf("verification failures counted: %v", got)
	}
	if got := counterValue(e.deps.Metrics.VerifyFailures.WithLabelValues("INVALID_APP_IDENTIFIER")); got != 2 {
		t.Fatalf("INVALID_APP_IDENTIFIER counted %v, want 2 (bundle id, app Apple id)", got)
	}
	if got := counterValue(e.deps.Metrics.WebhookAnswers.WithLabelValues(webhookStored)); got != 3 {
		t.Fatalf("stored answers counted %v, want 3", got)
	}
}

func wrap(signed string) []byte {
	b, _ := json.Marshal(map[string]string{"signedPayload": signed})
	return b
}

// TestWebhookDuplicateIsANoOp delivers one notification many times, some
// concurrently: every answer is 200, one row and one job exist.
func TestWebhookDuplicateIsANoOp(t *testing.T) {
	t.Parallel()
	e := newHookEnv(t, hookEnvOptions{})
	n := jobstest.NewNote(appstore.Production, time.Now())
	signed := n.Sign(t, e.ca)
	var wg sync.WaitGroup
	codes := make(chan int, 8)
	for range 8 {
		wg.Add(1)
		go func() { defer wg.Done(); codes <- e.postSigned(signed) }()
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Fatalf("duplicate delivery answered %d", c)
		}
	}
	if got := e.postSigned(signed); got != 200 {
		t.Fatalf("late duplicate answered %d", got)
	}
	if rows := e.count(`SELECT count(*) FROM notifications WHERE notification_uuid = $1`, n.N.NotificationUUID); rows != 1 {
		t.Fatalf("%d rows", rows)
	}
	if jobs := e.count(`SELECT count(*) FROM river_job WHERE kind = 'process_notification' AND args->>'notification_uuid' = $1`, n.N.NotificationUUID); jobs != 1 {
		t.Fatalf("%d processing jobs", jobs)
	}
	stored, err := e.deps.Ledger.NotificationByUUID(context.Background(), n.N.NotificationUUID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Source != ledger.SourceWebhook || stored.SignedPayload != signed || stored.OriginalTransactionID != n.Tx.OriginalTransactionID ||
		stored.Environment != appstore.Production || stored.Type != "DID_RENEW" {
		t.Fatalf("stored %+v", stored.Notification)
	}
	if got := counterValue(e.deps.Metrics.WebhookAnswers.WithLabelValues(webhookDuplicate)); got != 8 {
		t.Fatalf("duplicates counted %v, want 8", got)
	}
	resp, err := http.Get(e.server.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`storesync_webhook_answers_total{outcome="duplicate"} 8`, `storesync_webhook_answers_total{outcome="stored"} 1`,
		"storesync_webhook_seconds_bucket", "storesync_webhook_batch_size_bucket"} {
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Fatalf("/metrics (%d) lacks %q", resp.StatusCode, want)
		}
	}
}

// TestWebhookGroupCommitsConcurrentDeliveries stores many distinct
// notifications at once: each is stored with exactly one job.
func TestWebhookGroupCommitsConcurrentDeliveries(t *testing.T) {
	t.Parallel()
	e := newHookEnv(t, hookEnvOptions{})
	const n = 60
	signed := make([]string, n)
	for i := range signed {
		signed[i] = jobstest.NewNote(appstore.Production, time.Now()).Sign(t, e.ca)
	}
	var wg sync.WaitGroup
	var bad sync.Map
	for i := range signed {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c := e.postSigned(signed[i]); c != 200 {
				bad.Store(i, c)
			}
		}()
	}
	wg.Wait()
	bad.Range(func(k, v any) bool { t.Errorf("delivery %v answered %v", k, v); return true })
	if rows := e.count(`SELECT count(*) FROM notifications`); rows != n {
		t.Fatalf("%d rows, want %d", rows, n)
	}
	if jobs := e.count(`SELECT count(DISTINCT args->>'notification_uuid') FROM river_job WHERE kind = 'process_notification'`); jobs != n {
		t.Fatalf("%d jobs, want %d", jobs, n)
	}
}

// TestWebhookAnswers503WhenTheDatabaseIsDown: Apple must retry.
func TestWebhookAnswers503WhenTheDatabaseIsDown(t *testing.T) {
	t.Parallel()
	e := newHookEnv(t, hookEnvOptions{})
	down, err := pgxpool.New(context.Background(), "postgres://127.0.0.1:1/nothing?connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(down.Close)
	deps := *e.deps
	deps.Ledger = ledger.New(down)
	srv := NewHandler(&deps, e.river, Options{})
	rec := httptest.NewRecorder()
	req, _ := http.NewRequest(http.MethodPost, "/webhooks/appstore", strings.NewReader(string(wrap(jobstest.NewNote(appstore.Production, time.Now()).Sign(t, e.ca)))))
	srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("database down: status %d, want 503", rec.Code)
	}
	rec = httptest.NewRecorder()
	req, _ = http.NewRequest(http.MethodGet, "/healthz", nil)
	srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("healthz with the database down: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	NewHandler(e.deps, e.river, Options{}).ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("healthz: %d", rec.Code)
	}
}

// TestWebhookAnswers503WhenOnlineChecksCannotComplete: an unreachable OCSP
// responder is RETRYABLE_VERIFICATION_FAILURE, so 503, nothing stored.
func TestWebhookAnswers503WhenOnlineChecksCannotComplete(t *testing.T) {
	t.Parallel()
	chain := jobstest.NewChain(t, true, "http://127.0.0.1:1/ocsp")
	e := newHookEnv(t, hookEnvOptions{})
	deps := *e.deps
	var err error
	deps.Verifier, err = appstore.NewVerifier(appstore.VerifierOptions{
		RootCertificates: [][]byte{chain.Root.Raw}, Environment: appstore.Production, OnlineChecks: true,
		BundleID: sim.DefaultBundleID, AppAppleID: sim.DefaultAppAppleID,
		HTTPClient: &http.Client{Timeout: 2 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(&deps, e.river, Options{})
	rec := httptest.NewRecorder()
	req, _ := http.NewRequest(http.MethodPost, "/webhooks/appstore", strings.NewReader(string(wrap(chain.SignNote(t, jobstest.NewNote(appstore.Production, time.Now()))))))
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503 (%s)", rec.Code, rec.Body.String())
	}
	if n := e.count(`SELECT count(*) FROM notifications`); n != 0 {
		t.Fatalf("%d stored", n)
	}
}

// TestAdminRoutesRequireTheBearerToken: no token or a wrong one is 401;
// without a configured token the routes do not exist.
func TestAdminRoutesRequireTheBearerToken(t *testing.T) {
	t.Parallel()
	const token = "s3cret-admin-token-0123456789"
	e := newHookEnv(t, hookEnvOptions{AdminToken: token})
	do := func(method, path, auth, body string) int {
		req, _ := http.NewRequest(method, e.server.URL+path, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	resync := `{"originalTransactionId":"2000000000000001"}`
	for _, auth := range []string{"", "Bearer", "Bearer wrong", "Bearer " + token + "x", "Basic " + token, token} {
		if c := do("GET", "/admin/subscriptions/2000000000000001", auth, ""); c != 401 {
			t.Errorf("subscriptions with %q: %d, want 401", auth, c)
		}
		if c := do("POST", "/admin/resync", auth, resync); c != 401 {
			t.Errorf("resync with %q: %d, want 401", auth, c)
		}
	}
	if n := e.count(`SELECT count(*) FROM river_job`); n != 0 {
		t.Fatalf("unauthorised resync enqueued %d jobs", n)
	}
	if c := do("GET", "/admin/subscriptions/2000000000000001", "Bearer "+token, ""); c != 404 {
		t.Fatalf("unknown subscription with the token: %d, want 404", c)
	}
	if c := do("POST", "/admin/resync", "Bearer "+token, resync); c != 202 {
		t.Fatalf("resync with the token: %d, want 202", c)
	}
	if c := do("POST", "/admin/resync", "Bearer "+token, `{"originalTransactionId":"1","customerId":"c"}`); c != 400 {
		t.Fatalf("resync with two keys: %d, want 400", c)
	}
	plain := httptest.NewServer(NewHandler(e.deps, e.river, Options{}))
	t.Cleanup(plain.Close)
	req, _ := http.NewRequest("GET", plain.URL+"/admin/subscriptions/1", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("admin route without a configured token: %d, want 404", resp.StatusCode)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

func TestSignedPayloadOfBodies(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		body, want string
		ok         bool
	}{
		{`{"signedPayload":"aa.bb.cc"}`, "aa.bb.cc", true},
		{" {\"signedPayload\":\"a-_.b\"}\n", "a-_.b", true},
		{`{ "signedPayload" : "aa.bb.cc", "extra": 1 }`, "aa.bb.cc", true},
		{`{"signedPayload":"aa\u002ebb"}`, "aa.bb", true},
		{`{"signedPayload":"aa"bb"}`, "", false},
		{`{"signedPayload":""}`, "", false},
		{`{"other":"x"}`, "", false},
		{`not json`, "", false},
		{`{"signedPayload":"x"`, "", false},
	} {
		got, err := signedPayloadOf([]byte(c.body))
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("%q: got %q, %v", c.body, got, err)
		}
	}
}

// Only notifications that verify make processing yield: forged posts, however
// many, leave the ingest governor's rate at zero, so they cannot stall
// processing; Apple's count.
func TestWebhookOnlyVerifiedPostsMakeProcessingYield(t *testing.T) {
	t.Parallel()
	e := newHookEnv(t, hookEnvOptions{})
	g, err := jobs.NewIngestGovernor(jobs.IngestGovernorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.deps.Ingest = g
	forger, err := sim.NewCA() // a chain that is not the trusted root's
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if code := e.postSigned(jobstest.NewNote(appstore.Production, time.Now()).Sign(t, forger)); code != http.StatusBadRequest {
			t.Fatalf("forged notification answered %d, want 400", code)
		}
	}
	if code := e.post([]byte(`{"signedPayload":"not-a-jws"}`)); code != http.StatusBadRequest {
		t.Fatalf("malformed notification answered %d, want 400", code)
	}
	if r := g.Rate(); r != 0 {
		t.Fatalf("after forged and malformed posts the governor counts %v/s, want 0", r)
	}
	if code := e.postSigned(jobstest.NewNote(appstore.Production, time.Now()).Sign(t, e.ca)); code != http.StatusOK {
		t.Fatalf("Apple's notification answered %d", code)
	}
	if r := g.Rate(); r != 1 {
		t.Fatalf("after one verified post the governor counts %v/s, want 1", r)
	}
}
