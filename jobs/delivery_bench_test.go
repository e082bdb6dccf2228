package jobs_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/storesync/storesync/jobs"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

// benchReceiver is a backend endpoint as cheap as a real one can be: it
// verifies each request's Standard Webhooks signature and counts distinct
// webhook-ids.
type benchReceiver struct {
	wh     *standardwebhooks.Webhook
	mu     sync.Mutex
	seen   map[string]bool
	n      atomic.Int64
	failed atomic.Int64
}

func (rc *benchReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := rc.wh.Verify(body, r.Header); err != nil {
		rc.failed.Add(1)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	id := r.Header.Get("webhook-id")
	rc.mu.Lock()
	fresh := !rc.seen[id]
	rc.seen[id] = true
	rc.mu.Unlock()
	if fresh {
		rc.n.Add(1)
	}
}

// BenchmarkFeedDelivery: b.N committed events (four per subscription) are
// delivered by River's workers (fan-out every 100ms, 20 notification
// workers) to a local receiver that verifies every signature. Reported:
// events delivered per second, the receiver's own ceiling measured in the
// same run (the same receiver driven directly by 20 concurrent clients
// with pre-signed requests), the ratio, and the longest fan-out pass.
//
//	.ci/with-postgres go test -run '^$' -bench FeedDelivery -benchtime 20000x ./jobs/
func BenchmarkFeedDelivery(b *testing.B) {
	_, pool := migrationstest.NewDatabase(b)
	l := ledger.New(pool)
	ctx := context.Background()
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		b.Fatal(err)
	}
	rc := &benchReceiver{wh: wh, seen: map[string]bool{}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	if _, err := l.AddEndpoint(ctx, srv.URL+"/hook", secret); err != nil {
		b.Fatal(err)
	}
	// Events as the ledger writes them, committed before the workers start.
	subs := max(1, b.N/4)
	if _, err := pool.Exec(ctx, `INSERT INTO subscription_events (original_transaction_id, customer_id, type, before, after, cause_job, signed_date)
		SELECT 'bench-' || (i % $2), 'cust-' || (i % $2), 'subscription.updated',
			jsonb_build_object('originalTransactionId', 'bench-' || (i % $2), 'status', 'active', 'productId', 'com.example.monthly',
				'environment', 'Production', 'entitlements', jsonb_build_array('pro')),
			jsonb_build_object('originalTransactionId', 'bench-' || (i % $2), 'status', 'expired', 'productId', 'com.example.monthly',
				'environment', 'Production', 'entitlements', jsonb_build_array()), 'sync', 1767225600000 + i
		FROM generate_series(1, $1) i`, b.N, subs); err != nil {
		b.Fatal(err)
	}
	deps := &jobs.Deps{Ledger: l, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Settings: jobs.Settings{Delivery: jobs.DeliverySettings{Client: &http.Client{Timeout: 5 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}}}
	client, err := jobs.NewRiverClient(deps, jobs.ClientOptions{Work: true, EventFanOutEvery: 100 * time.Millisecond, NotificationWorkers: 20})
	if err != nil {
		b.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	b.ResetTimer()
	start := time.Now()
	if err := client.Start(runCtx); err != nil {
		b.Fatal(err)
	}
	deadline := start.Add(2 * time.Minute)
	for rc.n.Load() < int64(b.N) {
		if time.Now().After(deadline) {
			var state string
			_ = pool.QueryRow(ctx, `SELECT (SELECT json_agg(j) FROM (SELECT kind, state, count(*), max(errors::text) AS errors FROM river_job GROUP BY 1, 2) j)::text
				|| ' events: ' || (SELECT count(*) FILTER (WHERE position IS NOT NULL) || ' sequenced of ' || count(*) FROM subscription_events)
				|| ' deliveries: ' || COALESCE((SELECT json_agg(d) FROM (SELECT state, count(*) FROM event_deliveries GROUP BY 1) d)::text, 'none')
				|| ' endpoints: ' || (SELECT json_agg(e) FROM (SELECT id, fanned_out FROM event_endpoints) e)::text`).Scan(&state)
			b.Fatalf("%d of %d events delivered after 2 minutes: jobs %s", rc.n.Load(), b.N, state)
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	stopCtx, c := context.WithTimeout(ctx, 10*time.Second)
	_ = client.Stop(stopCtx)
	c()
	if f := rc.failed.Load(); f > 0 {
		b.Fatalf("%d deliveries failed signature verification", f)
	}
	var longest float64
	if err := pool.QueryRow(ctx, `SELECT COALESCE(max(extract(epoch FROM finalized_at - attempted_at)), 0)
		FROM river_job WHERE kind = 'event_fanout' AND finalized_at IS NOT NULL`).Scan(&longest); err != nil {
		b.Fatal(err)
	}

	var jobsRun int
	var runMS, waitMS float64
	if err := pool.QueryRow(ctx, `SELECT count(*), COALESCE(avg(extract(epoch FROM finalized_at - attempted_at)) * 1000, 0),
			COALESCE(avg(extract(epoch FROM attempted_at - created_at)) * 1000, 0)
		FROM river_job WHERE kind = 'event_deliver' AND finalized_at IS NOT NULL`).Scan(&jobsRun, &runMS, &waitMS); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d events in %s: %d delivery jobs, mean run %.1fms, mean wait before running %.1fms", b.N, elapsed.Round(time.Millisecond),
		jobsRun, runMS, waitMS)
	ceiling := receiverCeiling(b, srv.URL+"/hook", wh, max(b.N, 2000), 20)
	rate := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(ceiling, "receiver-ceiling-req/s")
	b.ReportMetric(100*rate/ceiling, "%-of-ceiling")
	b.ReportMetric(longest*1000, "longest-fanout-ms")
	b.ReportMetric(0, "ns/op")
}

// receiverCeiling drives the receiver directly with n pre-signed requests
// from clients concurrent callers and returns requests per second: what
// the receiver (with its signature check) and loopback HTTP allow.
func receiverCeiling(b *testing.B, url string, wh *standardwebhooks.Webhook, n, clients int) float64 {
	b.Helper()
	type req struct {
		body []byte
		hdr  http.Header
	}
	reqs := make([]req, n)
	now := time.Now()
	for i := range reqs {
		body := []byte(fmt.Sprintf(`{"id":%d,"type":"subscription.updated","originalTransactionId":"ceiling-%d","before":{"status":1},"after":{"status":2}}`, i, i%1000))
		id := "ceiling_" + strconv.Itoa(i)
		sig, err := wh.Sign(id, now, body)
		if err != nil {
			b.Fatal(err)
		}
		h := http.Header{}
		h.Set("Content-Type", "application/json")
		h.Set(standardwebhooks.HeaderWebhookID, id)
		h.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
		h.Set(standardwebhooks.HeaderWebhookSignature, sig)
		reqs[i] = req{body, h}
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				r, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(reqs[i].body))
				r.Header = reqs[i].hdr
				resp, err := hc.Do(r)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}
