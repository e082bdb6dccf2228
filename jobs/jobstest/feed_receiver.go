package jobstest

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"slices"
	"sync"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/storesync/storesync/ledger"
)

// FeedReceiver is a backend's change-feed endpoint for tests: it verifies
// every request with the Standard Webhooks library (401 when it fails) and
// keeps the distinct events of each subscription in arrival order,
// dropping redeliveries by webhook-id, as a backend of an at-least-once
// feed does. GateAfter makes it hold requests, to catch a sender with
// deliveries in flight. Create it with NewFeedReceiver.
type FeedReceiver struct {
	mu       sync.Mutex
	wh       *standardwebhooks.Webhook
	seen     map[string]bool
	bySub    map[string][]int64
	total    int
	badSig   int
	hung     int           // requests waiting at the gate
	gateAt   int           // record this many, then hold; -1: never
	gateOpen chan struct{} // closed when the gate opens
}

// NewFeedReceiver returns a receiver verifying with secret (the endpoint's
// "whsec_…" secret); "" leaves it to SetSecret, for an endpoint whose
// secret is known only once its URL is registered.
func NewFeedReceiver(secret string) (*FeedReceiver, error) {
	rc := &FeedReceiver{seen: map[string]bool{}, bySub: map[string][]int64{}, gateAt: -1}
	if secret != "" {
		if err := rc.SetSecret(secret); err != nil {
			return nil, err
		}
	}
	return rc, nil
}

// SetSecret sets the secret requests are verified with.
func (rc *FeedReceiver) SetSecret(secret string) error {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return err
	}
	rc.mu.Lock()
	rc.wh = wh
	rc.mu.Unlock()
	return nil
}

// GateAfter makes the receiver record n events, then hold every later
// request until open is called (or its sender gives up: that delivery did
// not happen). Call it before the first request.
func (rc *FeedReceiver) GateAfter(n int) (open func()) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.gateAt, rc.gateOpen = n, make(chan struct{})
	var once sync.Once
	gate := rc.gateOpen
	return func() { once.Do(func() { close(gate) }) }
}

func (rc *FeedReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	wh := rc.wh
	rc.mu.Unlock()
	if wh == nil || wh.Verify(body, r.Header) != nil {
		rc.mu.Lock()
		rc.badSig++
		rc.mu.Unlock()
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var e ledger.Event
	if err := json.Unmarshal(body, &e); err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	gate := rc.gateOpen
	gated := rc.gateAt >= 0 && rc.total >= rc.gateAt
	if gated {
		rc.hung++
	}
	rc.mu.Unlock()
	if gated {
		select {
		case <-gate:
		case <-r.Context().Done(): // the sender died: this delivery did not happen
			rc.mu.Lock()
			rc.hung--
			rc.mu.Unlock()
			return
		}
		rc.mu.Lock()
		rc.hung--
		rc.mu.Unlock()
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if id := r.Header.Get("webhook-id"); !rc.seen[id] {
		rc.seen[id] = true
		rc.bySub[e.OriginalTransactionID] = append(rc.bySub[e.OriginalTransactionID], e.ID)
		rc.total++
	}
}

// Counts returns the distinct events received, the requests held at the
// gate now, and the requests whose signature did not verify.
func (rc *FeedReceiver) Counts() (total, hung, badSignature int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.total, rc.hung, rc.badSig
}

// Events returns a copy of the distinct event ids received, by
// originalTransactionId, in arrival order.
func (rc *FeedReceiver) Events() map[string][]int64 {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := maps.Clone(rc.bySub)
	for k, v := range out {
		out[k] = slices.Clone(v)
	}
	return out
}
