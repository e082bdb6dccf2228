package sim

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/storesync/storesync/appstore"
)

// apiError is an Apple error answer.
type apiError struct {
	status int
	code   int
	msg    string
}

// Error lets an Apple refusal explain why a simulated change did not apply.
func (e apiError) Error() string { return e.msg }

// Apple's error codes the simulator answers with (docs/appstore-api.md §4).
var (
	errGeneralBadRequest             = apiError{400, 4000000, "Bad request."}
	errInvalidRevision               = apiError{400, 4000005, "Invalid request revision."}
	errInvalidTransactionID          = apiError{400, 4000006, "Invalid transaction id."}
	errStartDateTooFarInPast         = apiError{400, 4000012, "Invalid request. The start date is earlier than the allowed start date."}
	errStartDateAfterEndDate         = apiError{400, 4000013, "Invalid request. The end date precedes the start date or the dates are the same."}
	errInvalidPaginationToken        = apiError{400, 4000014, "Invalid pagination token."}
	errInvalidStartDate              = apiError{400, 4000015, "Invalid start date."}
	errInvalidEndDate                = apiError{400, 4000016, "Invalid end date."}
	errPaginationExpired             = apiError{400, 4000017, "Pagination token expired."}
	errInvalidNotifType              = apiError{400, 4000018, "Invalid notification type."}
	errMultipleFilters               = apiError{400, 4000019, "Invalid request. Only one of transactionId and notificationType may be supplied."}
	errInvalidSort                   = apiError{400, 4000021, "Invalid request sort."}
	errInvalidProductType            = apiError{400, 4000022, "Invalid request product type."}
	errInvalidProductID              = apiError{400, 4000023, "Invalid request product id."}
	errInvalidGroupID                = apiError{400, 4000024, "Invalid request subscription group identifier."}
	errInvalidExcludeRevoked         = apiError{400, 4000025, "Invalid request exclude revoked."}
	errInvalidOwnershipType          = apiError{400, 4000026, "Invalid request in-app ownership type."}
	errInvalidRevoked                = apiError{400, 4000030, "Invalid request revoked."}
	errInvalidStatus                 = apiError{400, 4000031, "Invalid request status."}
	errAppTxIDNotSupported           = apiError{400, 4000048, "Invalid request. App transactions ids are not supported by this endpoint."}
	errInvalidAppAccountTokenUUID    = apiError{400, 4000183, "Invalid request. The app account token field must be a valid UUID."}
	errFamilyTransactionNotSupported = apiError{400, 4000185, "Invalid request. Family Sharing transactions aren't supported by this endpoint."}
	errNotOriginalTransactionID      = apiError{400, 4000187, "Invalid request. The transaction ID provided is not an original transaction ID."}
	errOriginalTransactionIDNotFound = apiError{404, 4040005, "Original transaction id not found."}
	errNotificationURLMissing        = apiError{404, 4040007, "No App Store Server Notification URL found for provided app. Check that a URL is configured in App Store Connect for this environment."}
	errTestNotFound                  = apiError{404, 4040008, "Either the test notification token is expired or the notification and status are not yet available."}
	errTransactionNotFound           = apiError{404, 4040010, "Transaction id not found."}
	errRateLimited                   = apiError{429, 4290000, "Rate limit exceeded."}
	errInternal                      = apiError{500, 5000000, "An unknown error occurred."}
	errInternalRetryable             = apiError{500, 5000001, "An unknown error occurred. Please try again."}
)

var retryable404Messages = map[int]string{
	4040002: "Account not found. Please try again.",
	4040004: "App not found. Please try again.",
	4040006: "Original transaction id not found. Please try again.",
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = 500, []byte(`{"errorCode":5000000,"errorMessage":"An unknown error occurred."}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, e apiError) {
	writeJSON(w, e.status, appstore.ErrorResponse{ErrorCode: appstore.Int(e.code), ErrorMessage: e.msg})
}

// writeRateLimited answers 429 with Retry-After as a UNIX time in ms, the
// way Apple does (not RFC 9110 seconds).
func writeRateLimited(w http.ResponseWriter, at time.Time) {
	ms := at.UnixMilli()
	if at.Sub(at.Truncate(time.Millisecond)) > 0 {
		ms++ // round up: the token is available at, not before
	}
	w.Header().Set("Retry-After", strconv.FormatInt(ms, 10))
	writeError(w, errRateLimited)
}

// validID reports whether id looks like an Apple transaction id: 1–20
// decimal digits.
func validID(id string) bool {
	if len(id) == 0 || len(id) > 20 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < '0' || id[i] > '9' {
			return false
		}
	}
	return true
}

// statusWriter remembers the status written, for stats.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// apiFunc serves one endpoint in one environment after the common checks.
type apiFunc func(w http.ResponseWriter, r *http.Request, env appstore.Environment)

// routes builds the handler: both environments' API endpoints and the
// control endpoints.
func (s *Simulator) routes() http.Handler {
	mux := http.NewServeMux()
	for _, env := range []appstore.Environment{appstore.Production, appstore.Sandbox} {
		prefix := ""
		if env == appstore.Sandbox {
			prefix = "/sandbox"
		}
		add := func(method, path string, ep appstore.Endpoint, fn apiFunc) {
			mux.Handle(method+" "+prefix+path, s.api(env, ep, fn))
		}
		add("GET", "/inApps/v1/subscriptions/{id}", appstore.EndpointStatuses, s.getStatuses)
		add("GET", "/inApps/v2/history/{id}", appstore.EndpointHistory, s.getHistory)
		add("GET", "/inApps/v1/transactions/{id}", appstore.EndpointTransaction, s.getTransaction)
		add("POST", "/inApps/v1/notifications/history", appstore.EndpointNotificationHistory, s.getNotificationHistory)
		add("GET", "/inApps/v2/refund/lookup/{id}", appstore.EndpointRefundHistory, s.getRefundHistory)
		add("GET", "/inApps/v1/lookup/{id}", appstore.EndpointOrderLookup, s.lookupOrder)
		add("PUT", "/inApps/v1/transactions/{id}/appAccountToken", appstore.EndpointAppAccountToken, s.setAppAccountToken)
		add("PUT", "/inApps/v1/subscriptions/extend/{id}", appstore.EndpointExtendRenewalDate, s.extendSubscription)
		add("POST", "/inApps/v1/subscriptions/extend/mass", appstore.EndpointMassExtendRenewalDate, s.massExtend)
		add("GET", "/inApps/v1/subscriptions/extend/mass/{product}/{request}", appstore.EndpointMassExtendStatus, s.massExtendStatus)
		add("POST", "/inApps/v1/notifications/test", appstore.EndpointTestNotification, s.requestTestNotification)
		add("GET", "/inApps/v1/notifications/test/{id}", EndpointTestNotificationStatus, s.getTestNotification)
	}
	s.controlRoutes(mux)
	return mux
}

// api wraps an endpoint with what every Apple endpoint does first: the
// JWT check (401, no body), the rate limit (429), then injected faults.
func (s *Simulator) api(env appstore.Environment, ep appstore.Endpoint, fn apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		defer func() { s.stats.record(env, ep, sw.status) }()
		now := time.Now()
		if !s.auth.authorized(r.Header.Get("Authorization"), now) {
			sw.WriteHeader(http.StatusUnauthorized)
			return
		}
		if until, on := s.faults.storm(now); on {
			writeRateLimited(sw, until)
			return
		}
		if ok, at := s.limiter.take(env, ep, now); !ok {
			writeRateLimited(sw, at)
			return
		}
		d := s.faults.decide(ep)
		if d.latency > 0 && !s.sleep(r, d.latency) {
			sw.status = 499 // client went away
			return
		}
		switch d.kind {
		case faultInternal:
			writeError(sw, errInternal)
			return
		case faultRetryable:
			writeError(sw, errInternalRetryable)
			return
		case fault404:
			writeError(sw, apiError{404, d.code, retryable404Messages[d.code]})
			return
		case faultHang:
			if s.sleep(r, d.hangMax) {
				writeError(sw, errInternalRetryable)
			} else {
				sw.status = 499
			}
			return
		}
		fn(sw, r, env)
	})
}

// sleep waits d; false when the client gave up or the simulator closed.
func (s *Simulator) sleep(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	case <-s.closing:
		return false
	}
}
