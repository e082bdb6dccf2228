package sim

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
)

func TestRateLimitAnswers429WithRetryAfterMillis(t *testing.T) {
	t.Parallel()
	// 1 request/s with a 5 s burst: 5 pass at once, then about one a second.
	s := startTest(t, Options{Seed: 1, Subscribers: 20, Burst: 5 * time.Second,
		RateLimits: map[appstore.Endpoint]float64{appstore.EndpointHistory: 1}})
	id := s.OriginalTransactionIDs(appstore.Production)[0]
	var ok, limited int
	for range 20 {
		before := time.Now()
		r := call(t, s, "GET", "/inApps/v2/history/"+id, nil)
		switch r.status {
		case 200:
			ok++
		case 429:
			limited++
			r.wantError(t, 429, 4290000)
			ms, err := strconv.ParseInt(r.header.Get("Retry-After"), 10, 64)
			if err != nil {
				t.Fatalf("Retry-After %q is not a ms epoch", r.header.Get("Retry-After"))
			}
			at := time.UnixMilli(ms)
			if !at.After(before) || at.After(time.Now().Add(time.Second+time.Millisecond)) {
				t.Fatalf("Retry-After %s, want within a second after %s", at, before)
			}
		default:
			t.Fatalf("status %d", r.status)
		}
	}
	// A few more than 5 only if the loop took seconds.
	if ok < 5 || ok > 7 || limited == 0 {
		t.Fatalf("%d passed, %d limited; want about 5 passed", ok, limited)
	}
	st := s.Stats().Endpoint(appstore.Production, appstore.EndpointHistory)
	if st.Requests != 20 || st.RateLimited != int64(limited) || st.ByStatus[429] != int64(limited) || st.ByStatus[200] != int64(ok) {
		t.Fatalf("stats %+v, want 20 requests, %d limited", st, limited)
	}
	// Other endpoints and the sandbox have their own buckets; the sandbox
	// gets 10% of the configured production limit (0.1/s: burst 1).
	if r := call(t, s, "GET", "/inApps/v1/subscriptions/"+id, nil); r.status != 200 {
		t.Fatalf("statuses: %d", r.status)
	}
	call(t, s, "GET", "/sandbox/inApps/v2/history/"+id, nil).wantError(t, 404, 4040010)
	call(t, s, "GET", "/sandbox/inApps/v2/history/"+id, nil).wantError(t, 429, 4290000)
	// Raising the limit at runtime lets requests through again.
	if err := s.SetRateLimit(appstore.Production, appstore.EndpointHistory, 0); err != nil {
		t.Fatal(err)
	}
	if r := call(t, s, "GET", "/inApps/v2/history/"+id, nil); r.status != 200 {
		t.Fatalf("after lifting the limit: %d", r.status)
	}
}

func TestFaultsAppearAtTheirShareDeterministically(t *testing.T) {
	t.Parallel()
	count := func() map[int]int {
		s := startTest(t, unlimited(Options{Seed: 99, Subscribers: 20, Faults: Faults{
			InternalErrorShare: 0.05, RetryableErrorShare: 0.1, Retryable404Share: 0.15,
			Endpoints: []appstore.Endpoint{appstore.EndpointTransaction},
		}}))
		id := s.OriginalTransactionIDs(appstore.Production)[0]
		codes := map[int]int{}
		for range 600 {
			r := call(t, s, "GET", "/inApps/v1/transactions/"+id, nil)
			code := r.status
			if r.status != 200 {
				var e appstore.ErrorResponse
				decodeError(t, r, &e)
				code = int(e.ErrorCode)
			}
			codes[code]++
		}
		// Faults are limited to the transaction endpoint.
		for range 50 {
			if r := call(t, s, "GET", "/inApps/v1/subscriptions/"+id, nil); r.status != 200 {
				t.Fatalf("statuses endpoint got a fault: %d", r.status)
			}
		}
		return codes
	}
	a, b := count(), count()
	for code, n := range a {
		if b[code] != n {
			t.Fatalf("same seed, different fault counts: %v vs %v", a, b)
		}
	}
	near := func(got int, share float64) bool {
		want := share * 600
		return float64(got) > want*0.6 && float64(got) < want*1.4
	}
	retry404 := a[4040002] + a[4040004] + a[4040006]
	if !near(a[5000000], 0.05) || !near(a[5000001], 0.1) || !near(retry404, 0.15) || a[4040002] == 0 || a[4040004] == 0 || a[4040006] == 0 {
		t.Fatalf("fault counts %v out of 600, want about 30 × 5000000, 60 × 5000001, 90 × 404x", a)
	}
}

// decodeError reads an Apple-shaped error body.
func decodeError(t *testing.T, r response, e *appstore.ErrorResponse) {
	t.Helper()
	if err := json.Unmarshal(r.body, e); err != nil || e.ErrorCode == 0 {
		t.Fatalf("status %d error body %s: %v", r.status, r.body, err)
	}
	r.wantError(t, r.status, int(e.ErrorCode))
}

func TestFailHistoryPageStormAndHang(t *testing.T) {
	t.Parallel()
	s := startTest(t, unlimited(Options{Seed: 7, Subscribers: 400, Faults: Faults{FailHistoryPage: 2}}))
	var long SubscriptionTruth
	for _, tr := range s.Truth() {
		if tr.TransactionCount > 60 && tr.Environment == appstore.Production {
			long = tr
			break
		}
	}
	var h appstore.HistoryResponse
	call(t, s, "GET", "/inApps/v2/history/"+long.OriginalTransactionID, nil).decode(t, &h)
	page2 := "/inApps/v2/history/" + long.OriginalTransactionID + "?revision=" + h.Revision
	call(t, s, "GET", page2, nil).wantError(t, 500, 5000001)
	call(t, s, "GET", page2, nil).decode(t, &h) // the retry succeeds
	call(t, s, "GET", "/inApps/v2/history/"+long.OriginalTransactionID+"?revision="+h.Revision, nil).decode(t, &h)

	// A 429 storm: every API request answers 429 until it ends.
	if err := s.SetFaults(Faults{RateLimitStorm: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	r := call(t, s, "GET", "/inApps/v1/subscriptions/"+long.OriginalTransactionID, nil)
	r.wantError(t, 429, 4290000)
	ms, _ := strconv.ParseInt(r.header.Get("Retry-After"), 10, 64)
	if until := time.Until(time.UnixMilli(ms)); until < time.Second || until > 2*time.Second+10*time.Millisecond {
		t.Fatalf("storm Retry-After in %s, want about 2s", until)
	}

	// A hang holds the request until the client gives up.
	if err := s.SetFaults(Faults{HangShare: 1, HangMax: time.Minute}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.BaseURL()+"/inApps/v1/subscriptions/"+long.OriginalTransactionID, nil)
	tok, _ := s.Token()
	req.Header.Set("Authorization", "Bearer "+tok)
	start := time.Now()
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("hung request answered %d", resp.StatusCode)
	}
	if el := time.Since(start); el < 150*time.Millisecond {
		t.Fatalf("hang returned after %s", el)
	}
	// Bounded: with a short HangMax the request ends in a retryable 500.
	if err := s.SetFaults(Faults{HangShare: 1, HangMax: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	call(t, s, "GET", "/inApps/v1/subscriptions/"+long.OriginalTransactionID, nil).wantError(t, 500, 5000001)
	if err := s.SetFaults(Faults{InternalErrorShare: 2}); err == nil {
		t.Fatal("share 2 accepted")
	}
}

// The endpoints only the Client calls have Apple's limits too: mass
// extensions 1 request/s (a second at once is 429, its status endpoint has
// its own bucket), Set App Account Token 20, 2 in the sandbox.
func TestClientOnlyEndpointsAreLimited(t *testing.T) {
	t.Parallel()
	s := startTest(t, Options{Seed: 3, Subscribers: 20})
	body := map[string]any{"extendByDays": 1, "extendReasonCode": 0, "productId": ProductPremiumMonthly, "requestIdentifier": newUUID()}
	if r := call(t, s, "POST", "/inApps/v1/subscriptions/extend/mass", body); r.status != 200 {
		t.Fatalf("first mass extension: %d %s", r.status, r.body)
	}
	call(t, s, "POST", "/inApps/v1/subscriptions/extend/mass", body).wantError(t, 429, 4290000)
	if r := call(t, s, "GET", "/inApps/v1/subscriptions/extend/mass/"+ProductPremiumMonthly+"/"+body["requestIdentifier"].(string), nil); r.status != 200 {
		t.Fatalf("status after a 429 of another endpoint: %d %s", r.status, r.body)
	}
	limited := 0
	for range 4 {
		if r := call(t, s, "PUT", "/sandbox/inApps/v1/transactions/1/appAccountToken", map[string]string{"appAccountToken": newUUID()}); r.status == 429 {
			limited++
		}
	}
	if limited != 2 {
		t.Fatalf("%d of 4 sandbox Set App Account Token calls limited, want 2 (2/s, burst 1 s)", limited)
	}
	st := s.Stats().Endpoint(appstore.Sandbox, appstore.EndpointAppAccountToken)
	if st.Requests != 4 || st.RateLimited != 2 {
		t.Fatalf("stats %+v", st)
	}
	// Options may set them; endpoints the simulator does not serve are refused.
	ok, err := New(Options{Subscribers: 5, RateLimits: map[appstore.Endpoint]float64{appstore.EndpointExtendRenewalDate: 5}})
	if err != nil {
		t.Fatal(err)
	}
	ok.Close()
	if _, err := New(Options{Subscribers: 5, RateLimits: map[appstore.Endpoint]float64{appstore.EndpointAppTransaction: 5}}); err == nil {
		t.Fatal("a limit for an endpoint the simulator does not serve was accepted")
	}
}
