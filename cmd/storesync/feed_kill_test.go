package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/appstore/sim/simtest"
	"github.com/storesync/storesync/ledger"
)

// feedReceiver is the backend's endpoint: it verifies each request with
// the Standard Webhooks library and records each event once (by
// webhook-id, as the specification tells receivers to), in arrival order
// per subscription, when it answers 2xx. Once gated, requests wait until
// the gate opens or the sender hangs up, and are not recorded: the sender
// is killed mid-delivery.
type feedReceiver struct {
	wh       *standardwebhooks.Webhook
	mu       sync.Mutex
	seen     map[string]bool
	bySub    map[string][]int64
	total    int
	badSig   int
	hung     int // requests waiting at the gate
	gateOpen chan struct{}
	gateAt   int // record this many, then gate
}

func (rc *feedReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := rc.wh.Verify(body, r.Header); err != nil {
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
	gated := rc.total >= rc.gateAt
	if gated {
		rc.hung++
	}
	rc.mu.Unlock()
	if gated {
		select {
		case <-rc.gateOpen:
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

func (rc *feedReceiver) counts() (total, hung, badSig int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.total, rc.hung, rc.badSig
}

// TestServeKilledBetweenCommitAndDeliveryLosesNoEvent: a serve process
// (this test binary, a process of its own) migrates subscriptions whose
// changes write feed events; the receiver takes a few, then holds the next
// delivery open while more events commit, and serve is SIGKILLed. A new
// serve finishes: the receiver gets every event of the ledger, in feed
// order per subscription, each signature verified by the Standard
// Webhooks library.
func TestServeKilledBetweenCommitAndDeliveryLosesNoEvent(t *testing.T) {
	t.Parallel()
	simulator := simtest.StartTest(t, sim.Options{Seed: 21, Subscribers: 40})
	env := simCLIEnv(t, simulator)
	pool := openTestPool(t, env["DATABASE_URL"])
	ctx := context.Background()

	rc := &feedReceiver{seen: map[string]bool{}, bySub: map[string][]int64{}, gateOpen: make(chan struct{}), gateAt: 5}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	code, stdout, stderr := runCLI(t, env, "endpoints", "add", srv.URL+"/storesync")
	if code != 0 || !strings.Contains(stdout, "whsec_") {
		t.Fatalf("endpoints add: %d\n%s%s", code, stdout, stderr)
	}
	wh, err := standardwebhooks.NewWebhook(strings.TrimSpace(stdout[strings.Index(stdout, "whsec_"):]))
	if err != nil {
		t.Fatal(err)
	}
	rc.wh = wh

	serveArgs := []string{"serve", "--bulk-workers", "4", "--job-timeout", "5s", "--rescue-after", "6s"}
	first := startServeProcess(t, env, serveArgs...)
	if code, out, errOut := runCLI(t, env, "import", truthFile(t, simulator.Truth(), "")); code != 0 {
		t.Fatalf("import: %d\n%s%s", code, out, errOut)
	}
	// Kill while a delivery is in flight and committed events wait behind it.
	var events int
	waitUntil(t, time.Minute, "a delivery in flight with events committed behind it", func() bool {
		total, hung, _ := rc.counts()
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM subscription_events`).Scan(&events); err != nil {
			t.Fatal(err)
		}
		return total == rc.gateAt && hung > 0 && events > total+5
	})
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	waitUntil(t, 10*time.Second, "the receiver to see the sender gone", func() bool { _, hung, _ := rc.counts(); return hung == 0 })
	delivered, _, _ := rc.counts()
	t.Logf("killed serve with %d events committed, %d delivered", events, delivered)
	close(rc.gateOpen)

	startServeProcess(t, env, serveArgs...)
	waitImported(t, pool, func(p ledger.ImportProgress) bool { return p.Finished() }, 3*time.Minute)
	waitUntil(t, 3*time.Minute, "every event delivered", func() bool {
		total, _, _ := rc.counts()
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM subscription_events`).Scan(&events); err != nil {
			t.Fatal(err)
		}
		return total == events
	})
	total, _, badSig := rc.counts()
	if badSig > 0 {
		t.Fatalf("%d deliveries failed Standard Webhooks verification", badSig)
	}
	l := ledger.New(pool)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	checked := 0
	for otid, got := range rc.bySub {
		evs, err := l.SubscriptionEvents(ctx, otid)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(evs) {
			t.Fatalf("%s: received %d events, the ledger has %d", otid, len(got), len(evs))
		}
		for i, e := range evs {
			if got[i] != e.ID {
				t.Fatalf("%s: received %v, not the feed order of its %d events", otid, got, len(evs))
			}
		}
		checked += len(evs)
	}
	if checked != total || total == 0 {
		t.Fatalf("checked %d events of %d received", checked, total)
	}
	t.Logf("all %d events of %d subscriptions delivered after the kill, in order", total, len(rc.bySub))
}

func waitUntil(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); !ok(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %s", what, within)
		}
	}
}
