package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/jobs"
	"github.com/storesync/storesync/ledger"
)

// MaxWebhookBody bounds a webhook request body. A real notification is
// about 15 KB (three x5c chains); a body above 64 KiB is refused with 413,
// before it is read when its Content-Length says so.
const MaxWebhookBody = 64 << 10

// Webhook outcomes, the label of storesync_webhook_answers_total.
const (
	webhookStored      = "stored"      // 200: new, stored and its processing enqueued
	webhookDuplicate   = "duplicate"   // 200: notificationUUID already stored
	webhookTooLarge    = "too_large"   // 413
	webhookMalformed   = "malformed"   // 400: not {"signedPayload": JWS} or not a notification
	webhookUnverified  = "unverified"  // 400: verification failed
	webhookKeptAside   = "kept_aside"  // 400: Apple-signed, for another app or environment: kept aside
	webhookRetryVerify = "retry_later" // 503: an online check could not complete
	webhookOverloaded  = "overloaded"  // 503: too many notifications waiting for the database
	webhookUnavailable = "unavailable" // 503: the database did not store it
	webhookError       = "error"       // 500: our configuration
)

// webhook is POST /webhooks/appstore: it verifies a notification's
// signature and stores it with its processing job in one transaction,
// answering 200 only after the commit. The inner signed fields are verified
// by the processing job, before anything is applied (see verify).
type webhook struct {
	deps     *jobs.Deps
	verifier map[appstore.Environment]*appstore.Verifier // Production and Sandbox
	primary  appstore.Environment                        // the configured one, tried first
	ingest   *ingester
	// keepAsideSlots bounds concurrent keep-aside inserts, so a flood of
	// another app's notifications holds at most that many connections and
	// never starves the ingest path of the pool (a request that finds no
	// slot within its 10 s is answered 503: Apple retries it later).
	keepAsideSlots chan struct{}
}

func newWebhook(d *jobs.Deps, client *river.Client[pgx.Tx], opts Options) *webhook {
	h := &webhook{deps: d, keepAsideSlots: make(chan struct{}, 2), ingest: &ingester{
		deps: d, river: client,
		maxActive: orInt(opts.IngestConcurrency, 2),
		maxBatch:  orInt(opts.IngestMaxBatch, 128),
		maxQueue:  orInt(opts.IngestMaxQueue, 20000),
	}}
	h.primary = appstore.Production
	if d.Verifier != nil && d.Verifier.Environment() == appstore.Sandbox {
		h.primary = appstore.Sandbox
	}
	if d.Verifier != nil {
		// Both environments, always: App Review buys in the sandbox against
		// the production server. One verifier each, sharing the chain cache.
		h.verifier = map[appstore.Environment]*appstore.Verifier{
			appstore.Production: d.Verifier.WithEnvironment(appstore.Production),
			appstore.Sandbox:    d.Verifier.WithEnvironment(appstore.Sandbox),
		}
	}
	return h
}

// logger is the process's logger, slog's default when deps has none (as
// in jobs).
func (h *webhook) logger() *slog.Logger {
	if h.deps.Logger != nil {
		return h.deps.Logger
	}
	return slog.Default()
}

// webhookReadTimeout bounds reading one request body, so a client that
// trickles bytes cannot hold a connection (Apple sends at once).
const webhookReadTimeout = 10 * time.Second

func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	// Not every ResponseWriter supports deadlines (recorders): best effort.
	_ = http.NewResponseController(w).SetReadDeadline(start.Add(webhookReadTimeout))
	outcome, status := h.handle(r)
	took := time.Since(start)
	h.deps.Metrics.WebhookAnswer(outcome, took)
	h.deps.WebhookLog.Record(status != http.StatusOK, took)
	if status == http.StatusOK {
		w.WriteHeader(http.StatusOK)
		return
	}
	http.Error(w, outcome, status)
}

// handle returns the outcome and the HTTP status to answer.
func (h *webhook) handle(r *http.Request) (string, int) {
	if r.ContentLength > MaxWebhookBody {
		h.reject(r, webhookTooLarge, "", nil)
		return webhookTooLarge, http.StatusRequestEntityTooLarge
	}
	var buf bytes.Buffer
	buf.Grow(int(max(r.ContentLength, 0)) + bytes.MinRead) // one allocation for Apple's bodies
	_, err := buf.ReadFrom(io.LimitReader(r.Body, MaxWebhookBody+1))
	body := buf.Bytes()
	if err != nil {
		h.reject(r, webhookMalformed, "", err)
		return webhookMalformed, http.StatusBadRequest
	}
	if len(body) > MaxWebhookBody {
		h.reject(r, webhookTooLarge, "", nil)
		return webhookTooLarge, http.StatusRequestEntityTooLarge
	}
	signed, err := signedPayloadOf(body)
	if err != nil {
		h.reject(r, webhookMalformed, "", err)
		return webhookMalformed, http.StatusBadRequest
	}
	if h.verifier == nil {
		h.logger().Error("webhook: no verifier configured; answering 500 so Apple retries")
		return webhookError, http.StatusInternalServerError
	}
	env, p, decoded, err := h.verify(signed)
	if err != nil {
		var verr *appstore.VerificationError
		if !errors.As(err, &verr) {
			h.logger().Error("webhook: verifier failed", "error", err)
			return webhookError, http.StatusInternalServerError
		}
		h.deps.Metrics.VerifyFailure(err)
		if verr.Retryable() {
			h.reject(r, webhookRetryVerify, "", err)
			return webhookRetryVerify, http.StatusServiceUnavailable
		}
		if verr.Status == appstore.InvalidAppIdentifier || verr.Status == appstore.InvalidEnvironment {
			return h.keepAside(r, signed, verr)
		}
		h.reject(r, webhookUnverified, "", err)
		return webhookUnverified, http.StatusBadRequest
	}
	// Processing yields while Apple's notifications pour in. Only verified
	// ones count: a flood of forged posts must not stall processing.
	h.deps.Ingest.Arrived(1)
	n := jobs.NotificationRecord(p, env, signed, ledger.SourceWebhook, nil)
	n.Decoded = decoded
	if !ledger.IsUUID(n.UUID) {
		h.reject(r, webhookMalformed, n.UUID, errors.New("notificationUUID is not a UUID"))
		return webhookMalformed, http.StatusBadRequest
	}
	inserted, err := h.ingest.store(n)
	switch {
	case errors.Is(err, errIngestOverloaded):
		h.reject(r, webhookOverloaded, n.UUID, err)
		return webhookOverloaded, http.StatusServiceUnavailable
	case err != nil:
		h.reject(r, webhookUnavailable, n.UUID, err)
		return webhookUnavailable, http.StatusServiceUnavailable
	case !inserted:
		return webhookDuplicate, http.StatusOK
	}
	return webhookStored, http.StatusOK
}

// signedPayloadOf returns the signedPayload of a webhook body. Apple's body
// is exactly {"signedPayload":"<JWS>"} and a JWS needs no JSON escapes, so
// that form is read without a JSON decoder (which would scan the 15 KB
// twice); anything else goes through encoding/json.
func signedPayloadOf(body []byte) (string, error) {
	const prefix, suffix = `{"signedPayload":"`, `"}`
	b := bytes.TrimSpace(body)
	if bytes.HasPrefix(b, []byte(prefix)) && bytes.HasSuffix(b, []byte(suffix)) && len(b) > len(prefix)+len(suffix) {
		v := b[len(prefix) : len(b)-len(suffix)]
		if isJWSText(v) {
			return string(v), nil
		}
	}
	var req struct {
		SignedPayload string `json:"signedPayload"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return "", err
	}
	if req.SignedPayload == "" {
		return "", errors.New("no signedPayload")
	}
	return req.SignedPayload, nil
}

// isJWSText reports whether b can be taken as the JSON string's value
// as is: no quote or escape. (Any other byte a JWS cannot hold makes its
// verification fail.)
func isJWSText(b []byte) bool {
	return bytes.IndexByte(b, '"') < 0 && bytes.IndexByte(b, '\\') < 0
}

// verify verifies a notification's signedPayload with the verifier of the
// configured environment, then, if the payload claims the other one, with
// that one: Production and Sandbox are both accepted (App Review buys in
// the sandbox against production servers), each recorded under its own
// environment. Xcode and LocalTesting are never tried: their data is
// unsigned, so accepting them would accept forgeries. Trying the usual
// environment first avoids decoding every payload once more just to read
// its claim.
//
// The inner signed fields (data.signedTransactionInfo, signedRenewalInfo)
// are not verified here: they are part of the signed payload, so the outer
// signature already vouches for their bytes, and the processing job
// (jobs.ProcessNotificationArgs) verifies them in full before applying
// anything (an inner field that fails cancels the job and records why). Verifying them here too cost two
// more ECDSA verifications per request, the webhook's largest cost.
//
// It also returns what the verifier decoded of signed, which the ledger's
// write reuses (ledger.Notification.Decoded) instead of decoding it again.
func (h *webhook) verify(signed string) (appstore.Environment, *appstore.NotificationPayload, *appstore.DecodedJWS, error) {
	p, d, err := h.verifier[h.primary].VerifyNotificationDecoded(signed)
	if appstore.StatusOf(err) != appstore.InvalidEnvironment {
		return h.primary, p, d, err
	}
	other := appstore.Sandbox
	if h.primary == appstore.Sandbox {
		other = appstore.Production
	}
	if claimed, perr := appstore.PeekNotificationEnvironment(signed); perr != nil || claimed != other {
		return h.primary, nil, nil, err
	}
	p, d, err = h.verifier[other].VerifyNotificationDecoded(signed)
	return other, p, d, err
}

// keepAside stores aside a notification that verify refused for its
// identity (INVALID_APP_IDENTIFIER, INVALID_ENVIRONMENT). The verifier
// checks identity only after the signature and the chain verified, so the
// payload is Apple's, for another app or environment: most likely a
// misconfigured APPSTORE_BUNDLE_ID or a notification URL shared with
// another app. It is still refused from the ledger (400, no subscription
// changes), but kept in kept_aside_notifications and shown by `storesync
// status`, so the mistake is visible and the notifications are not lost.
// A forgery never gets here (it fails the signature or the chain first).
// `storesync resubmit` (jobs.ResubmitKeptAside) stores them once the
// configuration is fixed.
// When the row cannot be written the answer is 503, so Apple retries.
func (h *webhook) keepAside(r *http.Request, signed string, verr *appstore.VerificationError) (string, int) {
	id, err := appstore.PeekNotificationIdentity(signed)
	if err != nil || !ledger.IsUUID(id.UUID) {
		h.reject(r, webhookUnverified, "", verr)
		return webhookUnverified, http.StatusBadRequest
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	select {
	case h.keepAsideSlots <- struct{}{}:
		defer func() { <-h.keepAsideSlots }()
	case <-ctx.Done():
		h.reject(r, webhookOverloaded, id.UUID, errors.New("too many notifications waiting to be kept aside"))
		return webhookOverloaded, http.StatusServiceUnavailable
	}
	err = h.deps.Ledger.KeepAside(ctx, ledger.KeptAside{
		UUID: id.UUID, Reason: verr.Status.String(), Detail: verr.Reason, Type: id.Type, Subtype: id.Subtype,
		ClaimedBundleID: id.BundleID, ClaimedAppAppleID: id.AppAppleID, ClaimedEnvironment: id.Environment,
		SignedPayload: signed,
	})
	if err != nil {
		h.reject(r, webhookUnavailable, id.UUID, err)
		return webhookUnavailable, http.StatusServiceUnavailable
	}
	h.reject(r, webhookKeptAside, id.UUID, verr)
	return webhookKeptAside, http.StatusBadRequest
}

// reject logs why a request was not stored: never the payload, only the
// notificationUUID when it verified.
func (h *webhook) reject(r *http.Request, outcome, uuid string, err error) {
	attrs := []any{"outcome", outcome, "remote", r.RemoteAddr}
	if uuid != "" {
		attrs = append(attrs, "notification_uuid", uuid)
	}
	if err != nil {
		attrs = append(attrs, "error", err.Error())
	}
	h.logger().Warn("webhook: not stored", attrs...)
}

var errIngestOverloaded = errors.New("httpapi: too many notifications waiting to be stored")

// ingester stores webhook notifications in group commits: concurrent
// requests share one transaction (each notification still stored together
// with its processing job, and answered only after the commit), so the
// webhook is not bounded by one WAL flush per notification. With no load
// it commits each notification alone at once; under load each committer
// takes whatever queued while it was busy. Committers are started on
// demand and exit when the queue is empty, so nothing needs closing.
type ingester struct {
	deps      *jobs.Deps
	river     *river.Client[pgx.Tx]
	maxActive int // concurrent committers (each holds one connection)
	maxBatch  int // notifications per transaction
	maxQueue  int // waiting notifications before answering 503

	mu     sync.Mutex
	queue  []*ingestItem
	active int
}

type ingestItem struct {
	n        ledger.Notification
	inserted bool
	err      error
	done     chan struct{}
}

// store stores n and enqueues its processing unless its UUID is already
// stored; it returns whether n was new, once durable.
func (g *ingester) store(n ledger.Notification) (bool, error) {
	it := &ingestItem{n: n, done: make(chan struct{})}
	g.mu.Lock()
	if len(g.queue) >= g.maxQueue {
		g.mu.Unlock()
		return false, errIngestOverloaded
	}
	g.queue = append(g.queue, it)
	spawn := g.active < g.maxActive
	if spawn {
		g.active++
	}
	g.mu.Unlock()
	if spawn {
		go g.run()
	}
	<-it.done
	return it.inserted, it.err
}

func (g *ingester) run() {
	for {
		g.mu.Lock()
		n := min(len(g.queue), g.maxBatch)
		if n == 0 {
			g.active--
			g.mu.Unlock()
			return
		}
		batch := make([]*ingestItem, n)
		copy(batch, g.queue)
		rest := copy(g.queue, g.queue[n:])
		clear(g.queue[rest:])
		g.queue = g.queue[:rest]
		g.mu.Unlock()
		g.commit(batch)
	}
}

// commit stores a batch in one transaction. If that fails and the batch
// had several notifications, each is tried alone, so one bad row cannot
// fail its neighbours.
func (g *ingester) commit(batch []*ingestItem) {
	// Requests already answered by a disconnecting client still commit:
	// Apple will retry and find it stored.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	// A fixed order of UUIDs across batches rules out deadlocks between
	// committers inserting the same notifications.
	sort.Slice(batch, func(i, j int) bool { return batch[i].n.UUID < batch[j].n.UUID })
	t0 := time.Now()
	err := g.commitTx(ctx, batch)
	g.deps.Metrics.WebhookCommit(len(batch), time.Since(t0))
	if err != nil && len(batch) > 1 && ctx.Err() == nil {
		for _, it := range batch {
			it.err = g.commitTx(ctx, []*ingestItem{it})
			close(it.done)
		}
		return
	}
	for _, it := range batch {
		it.err = err
		close(it.done)
	}
}

func (g *ingester) commitTx(ctx context.Context, batch []*ingestItem) error {
	return pgx.BeginFunc(ctx, g.deps.Ledger.Pool(), func(tx pgx.Tx) error {
		params := make([]river.InsertManyParams, 0, len(batch))
		ns := make([]ledger.Notification, len(batch))
		for i, it := range batch {
			ns[i] = it.n
		}
		inserted, err := g.deps.Ledger.WithTx(tx).RecordNotifications(ctx, ns)
		if err != nil {
			return err
		}
		for i, it := range batch {
			it.inserted = inserted[i]
			if inserted[i] {
				params = append(params, river.InsertManyParams{Args: jobs.ProcessNotificationArgs{NotificationUUID: it.n.UUID}})
			}
		}
		if len(params) == 0 {
			return nil
		}
		_, err = g.river.InsertManyFastTx(ctx, tx, params)
		return err
	})
}
