package appstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxResponseBody bounds what is read of one answer. Apple's largest pages
// (20 signed transactions) are far below it; anything bigger is an error,
// not a memory problem.
const maxResponseBody = 10 << 20

// Client calls the App Store Server API for one app in one environment. It
// is safe for concurrent use.
//
// Every request first waits on the Budget, carries a fresh bearer token, and
// is sent once: the Client never retries. A non-2xx answer is an *APIError;
// a 429 also throttles the Budget until Apple's Retry-After. Callers (jobs)
// decide whether and when to retry, with IsRetryable and
// APIError.RateLimited.
type Client struct {
	env       Environment
	baseURLs  map[Environment]string
	fallback  bool
	budget    Budget
	http      *http.Client
	now       func() time.Time
	userAgent string
	signer    tokenSigner
}

// NewClient validates opts and returns a Client. The error lists every
// problem found, each naming the ClientOptions field and the fix.
func NewClient(opts ClientOptions) (*Client, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	c := &Client{
		env:       opts.Environment,
		fallback:  opts.SandboxFallback,
		budget:    opts.Budget,
		http:      opts.HTTPClient,
		now:       opts.Now,
		userAgent: opts.UserAgent,
		signer: tokenSigner{
			keyID: opts.KeyID, issuerID: opts.IssuerID, bundleID: opts.BundleID, key: opts.PrivateKey,
		},
	}
	base := opts.BaseURL
	if base == "" {
		base = DefaultProductionBaseURL
		if c.env == Sandbox {
			base = DefaultSandboxBaseURL
		}
	}
	sandbox := opts.SandboxBaseURL
	if sandbox == "" {
		sandbox = DefaultSandboxBaseURL
	}
	c.baseURLs = map[Environment]string{c.env: strings.TrimSuffix(base, "/")}
	if c.fallback {
		c.baseURLs[Sandbox] = strings.TrimSuffix(sandbox, "/")
	}
	if c.budget == nil {
		b := NewRateBudget(DefaultRateLimits(c.env, 1, nil), 1)
		if c.fallback {
			b.SetLimits(Sandbox, DefaultRateLimits(Sandbox, 1, nil))
		}
		c.budget = b
	}
	if c.http == nil {
		c.http = &http.Client{Timeout: DefaultHTTPTimeout}
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.userAgent == "" {
		c.userAgent = DefaultUserAgent()
	}
	return c, nil
}

// Environment returns the environment the Client was made for (the first
// one asked when SandboxFallback is set).
func (c *Client) Environment() Environment { return c.env }

// request is one API call, independent of the environment it is sent to.
type request struct {
	endpoint Endpoint
	method   string
	path     string // with every path parameter already escaped
	query    url.Values
	body     []byte // JSON; nil when the request has no body
}

// call sends req to env and decodes a 2xx answer as T.
func call[T any](ctx context.Context, c *Client, env Environment, req request) (*T, error) {
	out := new(T)
	if err := c.send(ctx, env, req, out); err != nil {
		return nil, err
	}
	return out, nil
}

// callWithFallback sends req to the Client's environment and, when
// SandboxFallback is set and production does not know the id, to the
// sandbox. The Environment returned is the one that gave the answer or, on
// error, the last one asked.
func callWithFallback[T any](ctx context.Context, c *Client, req request) (*T, Environment, error) {
	out, err := call[T](ctx, c, c.env, req)
	var apiErr *APIError
	if err == nil || !c.fallback || c.env != Production || !errors.As(err, &apiErr) || !apiErr.NotFound() {
		return out, c.env, err
	}
	out, err = call[T](ctx, c, Sandbox, req)
	return out, Sandbox, err
}

// send performs req in env once and decodes a 2xx JSON answer into out
// (nil: the body is ignored).
func (c *Client) send(ctx context.Context, env Environment, req request, out any) error {
	op := string(env) + " " + string(req.endpoint)
	if err := c.budget.Wait(ctx, env, req.endpoint); err != nil {
		return fmt.Errorf("appstore: %s: waiting for the rate budget: %w", op, err)
	}
	token, err := c.signer.sign(c.now())
	if err != nil {
		return err
	}
	u := c.baseURLs[env] + req.path
	if len(req.query) > 0 {
		u += "?" + req.query.Encode() // sorted keys; a repeated key per value
	}
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, u, body)
	if err != nil {
		return fmt.Errorf("appstore: %s: building the request: %w", op, err)
	}
	hr.Header.Set("Authorization", "Bearer "+token)
	hr.Header.Set("Accept", "application/json")
	hr.Header.Set("User-Agent", c.userAgent)
	if req.body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(hr)
	if err != nil {
		return c.transportError(ctx, op, err)
	}
	defer func() {
		// Drain a little so the connection can be reused, then close.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
	}()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody+1))
	if err != nil {
		return c.transportError(ctx, op, err)
	}
	if len(data) > maxResponseBody {
		return fmt.Errorf("appstore: %s: answer (HTTP %d) is larger than %d bytes", op, resp.StatusCode, maxResponseBody)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.apiError(env, req.endpoint, resp, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("appstore: %s: decoding the answer: %w", op, err)
	}
	return nil
}

// transportError classifies a failure to get a complete answer: the
// caller's context ending is returned as such (not retryable), anything
// else is a retryable networkError.
func (c *Client) transportError(ctx context.Context, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("appstore: %s: %w", op, ctxErr)
	}
	return &networkError{op: op, err: err}
}

// apiError turns a non-2xx answer into an *APIError, throttling the budget
// on 429.
func (c *Client) apiError(env Environment, ep Endpoint, resp *http.Response, data []byte) *APIError {
	e := &APIError{HTTPStatus: resp.StatusCode, Endpoint: ep, Environment: env}
	var body ErrorResponse
	if json.Unmarshal(data, &body) == nil && (body.ErrorCode != 0 || body.ErrorMessage != "") {
		e.Code, e.Message = int64(body.ErrorCode), body.ErrorMessage
	} else if resp.StatusCode == http.StatusUnauthorized {
		e.Message = unauthorizedMessage
	} else {
		// Never echo a non-JSON body: it may be a proxy's HTML page.
		e.Message = strings.TrimSpace(http.StatusText(resp.StatusCode) + " (no JSON error body)")
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), c.now())
		c.budget.Throttle(env, ep, e.RetryAfter)
	}
	return e
}

// Retry-After bounds: Apple sends a UNIX time in milliseconds; smaller
// numbers are read as RFC 9110 delta-seconds, capped so a bogus value
// cannot stall a job for years.
const (
	retryAfterEpochMillisMin = 1e11 // 1973-03-03 in ms; no delay in seconds is this large
	retryAfterMaxDelay       = 24 * time.Hour
	retryAfterDefault        = time.Second
)

// parseRetryAfter reads a Retry-After header as Apple writes it (UNIX
// milliseconds), tolerating delta-seconds and an HTTP-date. Absent or
// unreadable: now + 1 s. Anything beyond now + 24 h is capped there.
func parseRetryAfter(v string, now time.Time) time.Time {
	v = strings.TrimSpace(v)
	limit := now.Add(retryAfterMaxDelay)
	at := now.Add(retryAfterDefault)
	if n, err := strconv.ParseFloat(v, 64); err == nil && !math.IsNaN(n) && n >= 0 {
		switch {
		case n >= float64(limit.UnixMilli()):
			at = limit
		case n >= retryAfterEpochMillisMin:
			at = time.UnixMilli(int64(n))
		case n*float64(time.Second) >= float64(retryAfterMaxDelay):
			at = limit
		default:
			at = now.Add(time.Duration(n * float64(time.Second)))
		}
	} else if t, err := http.ParseTime(v); err == nil {
		at = t
	}
	if at.After(limit) {
		return limit
	}
	return at
}

// pathID escapes one path parameter, refusing an empty one: Apple would
// answer a different endpoint or a confusing 404.
func pathID(name, v string) (string, error) {
	if strings.TrimSpace(v) == "" {
		return "", fmt.Errorf("appstore: %s is empty", name)
	}
	return url.PathEscape(v), nil
}
