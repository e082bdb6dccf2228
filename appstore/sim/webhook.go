package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/storesync/storesync/appstore"
)

// notification is one App Store Server Notification V2 as it was when the
// App Store created it. The inner payloads are snapshots taken then;
// signing happens lazily (once), outside the world lock.
type notification struct {
	uuid       string
	env        appstore.Environment
	typ        string
	subtype    string
	signedDate time.Time
	acct       *account      // nil for TEST and RENEWAL_EXTENSION/SUMMARY
	sub        *subscription // nil for TEST and RENEWAL_EXTENSION/SUMMARY
	otid       string
	status     int
	tx         *appstore.TransactionPayload
	renewal    *appstore.RenewalInfoPayload
	reason     string       // data.consumptionRequestReason (CONSUMPTION_REQUEST)
	summary    *summaryJSON // RENEWAL_EXTENSION/SUMMARY, which has no data

	once   sync.Once
	signed string
	err    error

	mu        sync.Mutex
	attempts  []appstore.SendAttemptItem
	succeeded bool
}

// Send attempt results (SendAttemptItem.sendAttemptResult).
const (
	resultSuccess      = "SUCCESS"
	resultTimedOut     = "TIMED_OUT"
	resultNoResponse   = "NO_RESPONSE"
	resultSocketIssue  = "SOCKET_ISSUE"
	resultPremature    = "PREMATURE_CLOSE"
	resultUnsuccessful = "UNSUCCESSFUL_HTTP_RESPONSE_CODE"
	resultOther        = "OTHER"
)

// bundleVersion is the app version reported in notification data.
const bundleVersion = "1.0"

// notify records a notification about s as of now, its UUID drawn from
// the world's first stream. Callers hold the write lock.
func (w *world) notify(s *subscription, typ, subtype string) {
	w.send(w.newNote(w.rng, s, typ, subtype))
}

// newNote builds a notification about s as of now, its UUID drawn from r;
// send records it. Callers may add to it in between (a consumption
// request's reason): once sent it is read by the webhook workers.
func (w *world) newNote(r *rand.Rand, s *subscription, typ, subtype string) *notification {
	now := w.now()
	uuid := uuidFrom(r)
	tx := w.txPayload(s.latest(), now)
	rn := w.renewalPayload(s, now)
	return &notification{
		uuid: uuid, env: s.acct.env.env, typ: typ, subtype: subtype,
		signedDate: now, acct: s.acct, sub: s, otid: s.otid, status: s.status(now),
		tx: &tx, renewal: &rn,
	}
}

// send records n in its environment's log (and its subscription's, if it
// has one) and hands it to the webhook. Callers hold the write lock.
func (w *world) send(n *notification) {
	e := w.env(n.env)
	e.log = append(e.log, n)
	if n.sub != nil {
		n.sub.notes = append(n.sub.notes, n.uuid)
	}
	if w.onNotify != nil {
		w.onNotify(n)
	}
}

// testNotification records a TEST notification in env. Callers hold the
// write lock.
func (w *world) testNotification(env appstore.Environment) *notification {
	n := &notification{uuid: uuidFrom(w.rng), env: env, typ: "TEST", signedDate: w.now()}
	w.env(env).tests[n.uuid+"_"+itoa(n.signedDate.UnixMilli())] = n
	if w.onNotify != nil {
		w.onNotify(n)
	}
	return n
}

// signedPayload signs n (and its inner transaction and renewal info) once.
func (n *notification) signedPayload(w *world) (string, error) {
	n.once.Do(func() {
		if n.summary != nil {
			n.signed, n.err = w.ca.Sign(summaryNotification{
				NotificationType: n.typ, Subtype: n.subtype, NotificationUUID: n.uuid, Version: "2.0",
				SignedDate: appstore.MillisOf(n.signedDate), Summary: n.summary,
			})
			return
		}
		p := appstore.NotificationPayload{
			NotificationType: n.typ,
			Subtype:          n.subtype,
			NotificationUUID: n.uuid,
			Version:          "2.0",
			SignedDate:       appstore.MillisOf(n.signedDate),
			Data: &appstore.NotificationData{
				AppAppleID:  appstore.Int(w.appAppleID),
				BundleID:    w.bundleID,
				Environment: n.env,
			},
		}
		if n.tx != nil {
			p.Data.BundleVersion = bundleVersion
			p.Data.Status = appstore.Int(n.status)
			p.Data.ConsumptionRequestReason = n.reason
			if p.Data.SignedTransactionInfo, n.err = w.ca.Sign(n.tx); n.err != nil {
				return
			}
			if p.Data.SignedRenewalInfo, n.err = w.ca.Sign(n.renewal); n.err != nil {
				return
			}
		}
		n.signed, n.err = w.ca.Sign(p)
	})
	return n.signed, n.err
}

func (n *notification) record(a appstore.SendAttemptItem) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.attempts) < 6 {
		n.attempts = append(n.attempts, a)
	}
	if a.SendAttemptResult == resultSuccess {
		n.succeeded = true
	}
}

// sendAttempts returns a copy of n's attempts and whether one succeeded.
func (n *notification) sendAttempts() ([]appstore.SendAttemptItem, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]appstore.SendAttemptItem(nil), n.attempts...), n.succeeded
}

// deliverer posts notifications to the webhook with a small worker pool.
// Deliveries are never retried (like the sandbox); a seeded share is
// dropped on purpose.
type deliverer struct {
	w       *world
	client  *http.Client
	workers int
	logf    func(string, ...any)

	mu        sync.Mutex
	cond      *sync.Cond
	url       string
	dropShare float64
	rng       *rand.Rand // drop decisions, in notification order
	queue     []*notification
	inflight  int
	idle      chan struct{} // closed when inflight drops to 0
	closed    bool
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup

	created, delivered, failed, dropped atomic.Int64
}

func newDeliverer(w *world, seed int64, url string, dropShare float64, workers int, timeout time.Duration, logf func(string, ...any)) *deliverer {
	d := &deliverer{
		w:         w,
		client:    &http.Client{Timeout: timeout},
		workers:   workers,
		logf:      logf,
		url:       url,
		dropShare: dropShare,
		rng:       rand.New(rand.NewPCG(uint64(seed), 0x7765_6268_6f6f_6b)),
		idle:      make(chan struct{}),
	}
	close(d.idle)
	d.cond = sync.NewCond(&d.mu)
	d.ctx, d.cancel = context.WithCancel(context.Background())
	for range workers {
		d.wg.Add(1)
		go d.work()
	}
	return d
}

// enqueue decides n's fate: dropped (one failed attempt, never retried),
// queued for delivery, or kept without attempts when no webhook is set.
// The drop draw happens for every notification, so which ones are dropped
// depends only on the seed and the order of notifications.
func (d *deliverer) enqueue(n *notification) {
	d.created.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	drop := d.rng.Float64() < d.dropShare
	if d.url == "" || d.closed {
		return
	}
	if drop {
		d.dropped.Add(1)
		n.record(appstore.SendAttemptItem{AttemptDate: appstore.MillisOf(n.signedDate), SendAttemptResult: resultNoResponse})
		return
	}
	if d.inflight == 0 {
		d.idle = make(chan struct{})
	}
	d.inflight++
	d.queue = append(d.queue, n)
	d.cond.Signal()
}

func (d *deliverer) setURL(u string) {
	d.mu.Lock()
	d.url = u
	d.mu.Unlock()
}

func (d *deliverer) getURL() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.url
}

func (d *deliverer) setDropShare(f float64) {
	d.mu.Lock()
	d.dropShare = f
	d.mu.Unlock()
}

func (d *deliverer) work() {
	defer d.wg.Done()
	for {
		d.mu.Lock()
		for len(d.queue) == 0 && !d.closed {
			d.cond.Wait()
		}
		if d.closed {
			d.mu.Unlock()
			return
		}
		n := d.queue[0]
		d.queue[0] = nil
		d.queue = d.queue[1:]
		url := d.url
		d.mu.Unlock()

		result := d.post(url, n)
		n.record(appstore.SendAttemptItem{AttemptDate: appstore.MillisOf(n.signedDate), SendAttemptResult: result})
		if result == resultSuccess {
			d.delivered.Add(1)
		} else {
			d.failed.Add(1)
		}

		d.mu.Lock()
		d.inflight--
		if d.inflight == 0 {
			close(d.idle)
		}
		d.mu.Unlock()
	}
}

// post sends n and classifies the outcome as Apple's sendAttemptResult.
func (d *deliverer) post(url string, n *notification) string {
	if url == "" {
		return resultOther
	}
	signed, err := n.signedPayload(d.w)
	if err != nil {
		d.log("sim: signing notification %s: %v", n.uuid, err)
		return resultOther
	}
	body, _ := json.Marshal(map[string]string{"signedPayload": signed})
	req, err := http.NewRequestWithContext(d.ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return resultOther
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "App Store Server Notifications (storesync simulator)")
	resp, err := d.client.Do(req)
	if err != nil {
		d.log("sim: webhook delivery of %s %s failed: %v", n.typ, n.uuid, err)
		var ne net.Error
		var oe *net.OpError
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			return resultTimedOut
		case errors.As(err, &oe):
			return resultSocketIssue
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return resultPremature
		}
		return resultOther
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode <= 206 {
		return resultSuccess
	}
	d.log("sim: webhook answered %d to %s %s", resp.StatusCode, n.typ, n.uuid)
	return resultUnsuccessful
}

func (d *deliverer) log(format string, args ...any) {
	if d.logf != nil {
		d.logf(format, args...)
	}
}

// flush waits until every queued delivery has been attempted.
func (d *deliverer) flush(ctx context.Context) error {
	d.mu.Lock()
	idle := d.idle
	d.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close stops the workers; queued deliveries are abandoned.
func (d *deliverer) close() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed = true
	d.cond.Broadcast()
	d.mu.Unlock()
	d.cancel()
	d.wg.Wait()
	d.mu.Lock()
	if d.inflight > 0 {
		d.inflight = 0
		d.queue = nil
		close(d.idle)
	}
	d.mu.Unlock()
}
