package jobs

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/storesync/storesync/appstore/sim"
)

// TestEventsDeliveredWithoutThePeriodicFanOut: a worker process with no
// fan-out schedule at all (the harness sets none, as a process whose
// schedule is stuck behind a slow pass or another leader) still delivers
// every event an import writes: the jobs that wrote them ask for the
// fan-out.
func TestEventsDeliveredWithoutThePeriodicFanOut(t *testing.T) {
	t.Parallel()
	h := startImportHarness(t, sim.Options{Seed: 5, Subscribers: 12}, Settings{})
	ctx := context.Background()
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := wh.Verify(body, r.Header); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		mu.Lock()
		seen[r.Header.Get("webhook-id")] = true
		mu.Unlock()
	}))
	defer srv.Close()
	if _, err := h.deps.Ledger.AddEndpoint(ctx, srv.URL+"/hook", secret); err != nil {
		t.Fatal(err)
	}
	run, _, _ := h.importCSV(t, truthCSV(h.simulator.Truth(), nil))
	h.waitRun(t, run, time.Minute)
	var events, fanouts int
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := h.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM subscription_events),
			(SELECT count(*) FROM river_job WHERE kind = 'event_fanout')`).Scan(&events, &fanouts); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		got := len(seen)
		mu.Unlock()
		if events > 0 && got == events {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events delivered after 30s (%d fan-out jobs ran)", got, events, fanouts)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if fanouts == 0 || fanouts > events {
		t.Fatalf("%d fan-out jobs for %d events: want at least one, and far fewer than one per event", fanouts, events)
	}
	t.Logf("%d events delivered by %d fan-out jobs asked for by the jobs that wrote them", events, fanouts)
}
