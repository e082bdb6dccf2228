package appstore

import (
	"context"
	"errors"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestRateLimitedAnswerThrottlesBudget(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		retryAfter string
		want       time.Time
	}{
		{"ms epoch", "1700000000123", time.UnixMilli(1700000000123)},
		{"delta seconds", "7", testNow.Add(7 * time.Second)},
		{"http date", testNow.Add(time.Minute).Format(http.TimeFormat), testNow.Add(time.Minute)},
		{"absent", "", testNow.Add(time.Second)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body := modelFixture(t, "apiTooManyRequestsException.json")
			f := newFakeApple(t, func(seenRequest) reply {
				r := reply{status: 429, body: body}
				if tc.retryAfter != "" {
					r.header = map[string]string{"Retry-After": tc.retryAfter}
				}
				return r
			})
			b := &recordingBudget{}
			c := newTestClient(t, f, b, nil)
			_, _, err := c.GetTransactionInfo(context.Background(), "1234")
			e := asAPIError(t, err)
			if !e.RateLimited() || e.Retryable() || IsRetryable(err) || e.Code != ErrorCodeRateLimitExceeded {
				t.Errorf("429 classified RateLimited %v Retryable %v IsRetryable %v code %d", e.RateLimited(), e.Retryable(), IsRetryable(err), e.Code)
			}
			if !e.RetryAfter.Equal(tc.want) {
				t.Errorf("RetryAfter = %v, want %v", e.RetryAfter, tc.want)
			}
			th := b.Throttles()
			if len(th) != 1 || th[0].Env != Production || th[0].Endpoint != EndpointTransaction || !th[0].Until.Equal(tc.want) {
				t.Errorf("throttles = %v, want one for Production transaction until %v", th, tc.want)
			}
			if len(f.Seen()) != 1 {
				t.Errorf("%d requests: the client must not retry a 429", len(f.Seen()))
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := testNow
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"1700000000123", time.UnixMilli(1700000000123)},
		{" 1700000000123 ", time.UnixMilli(1700000000123)},
		{"1700000000123.9", time.UnixMilli(1700000000123)},
		{"0", now},
		{"120", now.Add(2 * time.Minute)},
		{"1.5", now.Add(1500 * time.Millisecond)},
		{now.Add(90 * time.Second).Format(http.TimeFormat), now.Add(90 * time.Second)},
		{"", now.Add(time.Second)},
		{"soon", now.Add(time.Second)},
		{"-5", now.Add(time.Second)},
		{"NaN", now.Add(time.Second)},
		// Bogus values are capped at a day.
		{"99999999999", now.Add(24 * time.Hour)},
		{"9999999999999999", now.Add(24 * time.Hour)},
		{"1e300", now.Add(24 * time.Hour)},
		{now.Add(1000 * time.Hour).Format(http.TimeFormat), now.Add(24 * time.Hour)},
	} {
		if got := parseRetryAfter(tc.in, now); !got.Equal(tc.want) {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestUnauthorizedWithoutBody(t *testing.T) {
	t.Parallel()
	f := newFakeApple(t, func(seenRequest) reply { return reply{status: 401} })
	c := newTestClient(t, f, &recordingBudget{}, func(o *ClientOptions) { o.SandboxFallback = true })
	_, env, err := c.GetAllSubscriptionStatuses(context.Background(), "1234")
	e := asAPIError(t, err)
	if e.HTTPStatus != 401 || e.Code != 0 || !e.Unauthorized() || e.Retryable() || e.NotFound() || env != Production {
		t.Errorf("401 gave %+v in %s", e, env)
	}
	for _, w := range []string{"unauthorized", "APPSTORE_KEY_ID", "APPSTORE_ISSUER_ID", "private key", "APPSTORE_BUNDLE_ID"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	seen := f.Seen()
	if len(seen) != 1 {
		t.Fatalf("%d requests: a 401 must not fall back to the sandbox", len(seen))
	}
	token := strings.TrimPrefix(seen[0].Header.Get("Authorization"), "Bearer ")
	for _, part := range append(strings.Split(token, "."), token) {
		if len(part) > 8 && strings.Contains(err.Error(), part) {
			t.Errorf("error %q contains the bearer token", err)
		}
	}
}

func TestNonJSONServerError(t *testing.T) {
	t.Parallel()
	f := newFakeApple(t, func(seenRequest) reply {
		return reply{status: 503, body: []byte("<html>secret proxy page</html>"), header: map[string]string{"Content-Type": "text/html"}}
	})
	c := newTestClient(t, f, &recordingBudget{}, nil)
	_, _, err := c.GetTransactionInfo(context.Background(), "1234")
	e := asAPIError(t, err)
	if e.HTTPStatus != 503 || e.Code != 0 || !e.Retryable() || !IsRetryable(err) {
		t.Errorf("503 gave %+v retryable %v", e, IsRetryable(err))
	}
	if strings.Contains(err.Error(), "proxy page") || !strings.Contains(err.Error(), "503") {
		t.Errorf("error %q should name the status and not echo the body", err)
	}
}

func TestRetryableCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status    int
		code      int64
		retryable bool
		notFound  bool
	}{
		{404, ErrorCodeAccountNotFoundRetryable, true, false},
		{404, ErrorCodeAppNotFoundRetryable, true, false},
		{404, ErrorCodeOriginalTransactionIDNotFoundRetryable, true, false},
		{500, ErrorCodeGeneralInternalRetryable, true, false},
		{500, ErrorCodeGeneralInternal, true, false},
		{502, 0, true, false},
		{404, ErrorCodeAccountNotFound, false, false},
		{404, ErrorCodeTransactionIDNotFound, false, true},
		{404, ErrorCodeOriginalTransactionIDNotFound, false, true},
		{400, ErrorCodeInvalidRequestRevision, false, false},
		{429, ErrorCodeRateLimitExceeded, false, false},
	} {
		e := &APIError{HTTPStatus: tc.status, Code: tc.code}
		if e.Retryable() != tc.retryable || IsRetryable(e) != tc.retryable || e.NotFound() != tc.notFound {
			t.Errorf("%d/%d: Retryable %v NotFound %v", tc.status, tc.code, e.Retryable(), e.NotFound())
		}
	}
}

func TestIsRetryableTransportErrors(t *testing.T) {
	t.Parallel()
	if IsRetryable(nil) || IsRetryable(errors.New("bad input")) || IsRetryable(context.Canceled) || IsRetryable(context.DeadlineExceeded) {
		t.Error("nil, plain and context errors must not be retryable")
	}
	if !IsRetryable(&networkError{op: "x", err: errors.New("connection reset")}) {
		t.Error("network error not retryable")
	}
	if !IsRetryable(&net.OpError{Op: "dial", Err: timeoutErr{}}) {
		t.Error("a net.Error timeout is retryable")
	}

	// A server that is gone: retryable.
	f := newFakeApple(t, func(seenRequest) reply { return reply{status: 200} })
	c := newTestClient(t, f, &recordingBudget{}, nil)
	f.srv.Close()
	_, _, err := c.GetTransactionInfo(context.Background(), "1234")
	if err == nil || !IsRetryable(err) {
		t.Errorf("connection refused: %v, IsRetryable %v", err, IsRetryable(err))
	}

	// The HTTP client's own timeout: retryable. The caller's context
	// ending: not.
	release := make(chan struct{})
	slow := newFakeApple(t, func(seenRequest) reply { <-release; return reply{status: 200, body: []byte(`{}`)} })
	t.Cleanup(func() { close(release) })
	c = newTestClient(t, slow, &recordingBudget{}, func(o *ClientOptions) { o.HTTPClient = &http.Client{Timeout: 50 * time.Millisecond} })
	_, _, err = c.GetTransactionInfo(context.Background(), "1234")
	if err == nil || !IsRetryable(err) {
		t.Errorf("client timeout: %v, IsRetryable %v", err, IsRetryable(err))
	}
	c = newTestClient(t, slow, &recordingBudget{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, _, err = c.GetTransactionInfo(ctx, "1234")
	if err == nil || IsRetryable(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("caller deadline: %v, IsRetryable %v", err, IsRetryable(err))
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestBudgetErrorStopsRequest(t *testing.T) {
	t.Parallel()
	f := newFakeApple(t, func(seenRequest) reply { return reply{status: 200, body: []byte(`{}`)} })
	b := &recordingBudget{waitErr: context.Canceled}
	c := newTestClient(t, f, b, nil)
	_, _, err := c.GetTransactionInfo(context.Background(), "1234")
	if !errors.Is(err, context.Canceled) || len(f.Seen()) != 0 {
		t.Errorf("budget refusal: err %v, %d requests sent", err, len(f.Seen()))
	}
}

func TestOversizedAnswer(t *testing.T) {
	t.Parallel()
	big := make([]byte, maxResponseBody+1)
	for i := range big {
		big[i] = ' '
	}
	f := newFakeApple(t, func(seenRequest) reply { return reply{status: 200, body: big} })
	c := newTestClient(t, f, &recordingBudget{}, nil)
	_, _, err := c.GetTransactionInfo(context.Background(), "1234")
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized answer: %v", err)
	}
}

func TestEmptyIDRefused(t *testing.T) {
	t.Parallel()
	f := newFakeApple(t, func(seenRequest) reply { return reply{status: 200, body: []byte(`{}`)} })
	b := &recordingBudget{}
	c := newTestClient(t, f, b, nil)
	ctx := context.Background()
	_, _, e1 := c.GetTransactionInfo(ctx, "")
	_, _, e2 := c.GetAllSubscriptionStatuses(ctx, " ")
	_, _, e3 := c.GetTransactionHistory(ctx, "", HistoryQuery{})
	_, e4 := c.GetTestNotificationStatus(ctx, "")
	for i, err := range []error{e1, e2, e3, e4} {
		if err == nil || !strings.Contains(err.Error(), "is empty") {
			t.Errorf("call %d: %v", i, err)
		}
	}
	if len(f.Seen()) != 0 || len(b.Waits()) != 0 {
		t.Errorf("refused calls still sent %d requests, %d waits", len(f.Seen()), len(b.Waits()))
	}
}

func TestPathParametersEscaped(t *testing.T) {
	t.Parallel()
	f := newFakeApple(t, func(seenRequest) reply { return reply{status: 200, body: []byte(`{}`)} })
	c := newTestClient(t, f, &recordingBudget{}, nil)
	if _, _, err := c.LookUpOrderID(context.Background(), "a/b?c"); err != nil {
		t.Fatal(err)
	}
	if s := f.Seen(); s[0].Path != "/inApps/v1/lookup/a/b?c" || len(s[0].Query) != 0 {
		t.Errorf("path %q query %v: the id must stay one escaped segment", s[0].Path, s[0].Query)
	}
}

func TestSandboxFallback(t *testing.T) {
	t.Parallel()
	notFound := modelFixture(t, "transactionIdNotFoundError.json")
	info := modelFixture(t, "transactionInfoResponse.json")
	for _, tc := range []struct {
		name        string
		fallback    bool
		production  reply
		sandbox     reply
		wantEnv     Environment
		wantErr     bool
		wantWaits   []budgetCall
		wantRetried bool
	}{
		{
			name: "production 4040010, sandbox success", fallback: true,
			production: reply{status: 404, body: notFound}, sandbox: reply{status: 200, body: info},
			wantEnv: Sandbox, wantRetried: true,
			wantWaits: []budgetCall{{Env: Production, Endpoint: EndpointTransaction}, {Env: Sandbox, Endpoint: EndpointTransaction}},
		},
		{
			name: "production 4040005, sandbox success", fallback: true,
			production: reply{status: 404, body: []byte(`{"errorCode":4040005,"errorMessage":"Original transaction id not found."}`)},
			sandbox:    reply{status: 200, body: info}, wantEnv: Sandbox, wantRetried: true,
			wantWaits: []budgetCall{{Env: Production, Endpoint: EndpointTransaction}, {Env: Sandbox, Endpoint: EndpointTransaction}},
		},
		{
			name: "both unknown", fallback: true,
			production: reply{status: 404, body: notFound}, sandbox: reply{status: 404, body: notFound},
			wantEnv: Sandbox, wantErr: true, wantRetried: true,
			wantWaits: []budgetCall{{Env: Production, Endpoint: EndpointTransaction}, {Env: Sandbox, Endpoint: EndpointTransaction}},
		},
		{
			name: "production success", fallback: true,
			production: reply{status: 200, body: info}, wantEnv: Production,
			wantWaits: []budgetCall{{Env: Production, Endpoint: EndpointTransaction}},
		},
		{
			name: "fallback off", fallback: false,
			production: reply{status: 404, body: notFound}, wantEnv: Production, wantErr: true,
			wantWaits: []budgetCall{{Env: Production, Endpoint: EndpointTransaction}},
		},
		{
			name: "other 404 does not fall back", fallback: true,
			production: reply{status: 404, body: []byte(`{"errorCode":4040002,"errorMessage":"Account not found."}`)},
			wantEnv:    Production, wantErr: true,
			wantWaits: []budgetCall{{Env: Production, Endpoint: EndpointTransaction}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeApple(t, func(r seenRequest) reply {
				if r.Env == Sandbox {
					return tc.sandbox
				}
				return tc.production
			})
			b := &recordingBudget{}
			c := newTestClient(t, f, b, func(o *ClientOptions) { o.SandboxFallback = tc.fallback })
			got, env, err := c.GetTransactionInfo(context.Background(), "1234")
			if env != tc.wantEnv {
				t.Errorf("environment %s, want %s", env, tc.wantEnv)
			}
			if tc.wantErr {
				e := asAPIError(t, err)
				if e.Environment != tc.wantEnv {
					t.Errorf("error from %s, want %s", e.Environment, tc.wantEnv)
				}
				if got != nil {
					t.Errorf("result %+v with an error", got)
				}
			} else if err != nil || got.SignedTransactionInfo != "signed_transaction_info_value" {
				t.Errorf("got %+v, %v", got, err)
			}
			if tc.name == "both unknown" && !asAPIError(t, err).NotFound() {
				t.Error("both 404: error is not NotFound")
			}
			if w := b.Waits(); !reflect.DeepEqual(w, tc.wantWaits) {
				t.Errorf("budget waits %v, want %v", w, tc.wantWaits)
			}
			seen := f.Seen()
			if tc.wantRetried != (len(seen) == 2) {
				t.Errorf("%d requests", len(seen))
			}
			if len(seen) == 2 && (seen[1].Env != Sandbox || seen[1].Path != seen[0].Path) {
				t.Errorf("fallback request %+v", seen[1])
			}
		})
	}
}

// Fallback applies to every id lookup endpoint, not only transaction info.
func TestSandboxFallbackEndpoints(t *testing.T) {
	t.Parallel()
	notFound := modelFixture(t, "transactionIdNotFoundError.json")
	f := newFakeApple(t, func(r seenRequest) reply {
		if r.Env == Sandbox {
			return reply{status: 200, body: []byte(`{}`)}
		}
		return reply{status: 404, body: notFound}
	})
	c := newTestClient(t, f, &recordingBudget{}, func(o *ClientOptions) { o.SandboxFallback = true })
	ctx := context.Background()
	calls := map[string]func() (Environment, error){
		"statuses": func() (Environment, error) { _, e, err := c.GetAllSubscriptionStatuses(ctx, "1"); return e, err },
		"history": func() (Environment, error) {
			_, e, err := c.GetTransactionHistory(ctx, "1", HistoryQuery{})
			return e, err
		},
		"refund history":  func() (Environment, error) { _, e, err := c.GetRefundHistory(ctx, "1", ""); return e, err },
		"order lookup":    func() (Environment, error) { _, e, err := c.LookUpOrderID(ctx, "1"); return e, err },
		"app transaction": func() (Environment, error) { _, e, err := c.GetAppTransactionInfo(ctx, "1"); return e, err },
	}
	for name, call := range calls {
		if env, err := call(); err != nil || env != Sandbox {
			t.Errorf("%s: env %s err %v, want the sandbox answer", name, env, err)
		}
	}
}
