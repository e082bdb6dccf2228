package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/riverqueue/river"

	"github.com/storesync/storesync/jobs"
	"github.com/storesync/storesync/ledger"
)

// Options configures NewHandler. The zero value serves the webhook,
// /healthz and /metrics, without admin routes; zero fields take the
// defaults below.
type Options struct {
	// AdminToken enables /admin/*, which then requires
	// "Authorization: Bearer <AdminToken>" (401 otherwise). Empty: the
	// admin routes do not exist (404).
	AdminToken string
	// APITokens are the read-only tokens of the backend API (/v1/*; see
	// registerBackend). Empty: /v1/* answers 401 to everyone but the admin.
	APITokens []string
	// IngestConcurrency is how many webhook transactions may commit at
	// once (each holds a database connection); default 2: one gathers
	// notifications while the other commits. More only make each batch
	// smaller, and Postgres's cost per notification grows as batches shrink.
	IngestConcurrency int
	// IngestMaxBatch is how many notifications one webhook transaction may
	// store; default 128.
	IngestMaxBatch int
	// IngestMaxQueue is how many notifications may wait for the database
	// before the webhook answers 503 (Apple retries); default 20000.
	IngestMaxQueue int
	// ResyncWaitMax bounds how long POST /admin/resync?wait=… waits for
	// the job; default 60s.
	ResyncWaitMax time.Duration
}

// NewHandler returns storesync's HTTP API:
//
//	POST /webhooks/appstore                          App Store Server Notifications V2
//	GET  /healthz                                    200 when the database answers, else 503
//	GET  /metrics                                    Prometheus metrics of deps.Metrics (404 when nil)
//	POST /admin/resync                               enqueue a re-sync (202; ?wait=30s waits for its result)
//	                                                 body: one of originalTransactionId, appAccountToken, customerId, orderId
//	GET  /admin/resync/{jobId}                       a re-sync's state and result
//	GET  /admin/subscriptions/{originalTransactionId} the `storesync show` JSON
//
// client inserts the webhook's processing jobs and the re-syncs; it need
// not work jobs. The admin routes exist only when opts.AdminToken is set.
// deps needs Pool and Ledger; without a Verifier the webhook answers 500
// (so Apple retries) and logs why.
func NewHandler(deps *jobs.Deps, client *river.Client[pgx.Tx], opts Options) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/appstore", newWebhook(deps, client, opts))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := deps.Ledger.Ping(ctx); err != nil {
			http.Error(w, "database unavailable", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	registerBackend(mux, deps, opts)
	if deps.Metrics != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(deps.Metrics.Registry, promhttp.HandlerOpts{}))
	}
	if opts.AdminToken != "" {
		a := &admin{deps: deps, client: client, waitMax: orDuration(opts.ResyncWaitMax, 60*time.Second)}
		auth := bearer(opts.AdminToken)
		mux.Handle("POST /admin/resync", auth(http.HandlerFunc(a.resync)))
		mux.Handle("GET /admin/resync/{jobId}", auth(http.HandlerFunc(a.resyncResult)))
		mux.Handle("GET /admin/subscriptions/{originalTransactionId}", auth(http.HandlerFunc(a.subscription)))
	}
	return mux
}

// bearer requires "Authorization: Bearer <token>". Both sides are hashed
// before the constant-time compare, so neither the token's bytes nor its
// length leak through timing.
func bearer(token string) func(http.Handler) http.Handler {
	want := sha256.Sum256([]byte(token))
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			sum := sha256.Sum256([]byte(got))
			if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 || !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="storesync admin"`)
				writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized"})
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

type admin struct {
	deps    *jobs.Deps
	client  *river.Client[pgx.Tx]
	waitMax time.Duration
}

// resync enqueues a re-sync of one target: a JSON body with exactly one of
// originalTransactionId, appAccountToken, customerId or orderId. It answers 202
// {"jobId":…,"state":…}; with ?wait=DURATION (or ?wait=true, meaning the
// maximum) it waits for the job and answers 200 with its result, or 202
// when it is still running.
func (a *admin) resync(w http.ResponseWriter, r *http.Request) {
	var target jobs.ResyncTarget
	dec := json.NewDecoder(io.LimitReader(r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&target); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body: " + err.Error()})
		return
	}
	if err := target.Validate(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	wait, err := a.waitParam(r.URL.Query().Get("wait"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	res, err := jobs.EnqueueResync(r.Context(), a.client, target)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "enqueueing the re-sync: " + err.Error()})
		return
	}
	if wait <= 0 {
		writeJSON(w, http.StatusAccepted, res)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	st, err := jobs.WaitResync(ctx, a.client, res.JobID, 200*time.Millisecond)
	if err != nil && st == nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	code := http.StatusOK
	if !st.Finished() {
		code = http.StatusAccepted
	}
	writeJSON(w, code, st)
}

func (a *admin) waitParam(v string) (time.Duration, error) {
	switch v {
	case "", "false", "0":
		return 0, nil
	case "true", "1":
		return a.waitMax, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, errors.New("wait: want true or a duration such as 30s")
	}
	return min(d, a.waitMax), nil
}

// resyncResult answers a re-sync job's state and, once finished, result.
func (a *admin) resyncResult(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("jobId"), 10, 64)
	if err != nil || id <= 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "jobId must be a positive number"})
		return
	}
	st, err := jobs.ResyncStatusOf(r.Context(), a.client, id)
	if errors.Is(err, jobs.ErrNotResync) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not found"})
		return
	}
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// subscription answers the `storesync show` JSON of one subscription.
func (a *admin) subscription(w http.ResponseWriter, r *http.Request) {
	s, err := a.deps.Ledger.Subscription(r.Context(), r.PathValue("originalTransactionId"))
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not found"})
	case err != nil:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "reading the ledger: " + err.Error()})
	default:
		writeJSON(w, http.StatusOK, s)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// orDuration and orInt give an option's default when it is unset (zero or
// less), as in jobs.
func orDuration(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func orInt(n, def int) int {
	if n > 0 {
		return n
	}
	return def
}
