package httpapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkEntitlementLookup: GET /v1/customers/{id}/entitlements through
// the real handler and token check, by 64 concurrent clients, over 20,000
// subscriptions; reports p50 and p99 latency.
//
//	.ci/with-postgres go test -run '^$' -bench EntitlementLookup -benchtime 20000x ./jobs/httpapi/
func BenchmarkEntitlementLookup(b *testing.B) {
	srv, l := newBackendServerTB(b)
	ctx := context.Background()
	if _, err := l.Pool().Exec(ctx, `INSERT INTO subscriptions (original_transaction_id, customer_id, environment, product_id, status, expires_date)
		SELECT i::text, 'c' || i, 'Production', 'com.example.monthly', 1 + (i % 5), now() + interval '30 days'
		FROM generate_series(1, 20000) i`); err != nil {
		b.Fatal(err)
	}
	if _, err := l.Pool().Exec(ctx, `ANALYZE subscriptions`); err != nil {
		b.Fatal(err)
	}
	const clients = 64
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	hc := &http.Client{Transport: tr}
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				req, _ := http.NewRequest("GET", fmt.Sprintf("%s/v1/customers/c%d/entitlements", srv.URL, 1+i%20000), nil)
				req.Header.Set("Authorization", "Bearer "+testReadToken)
				start := time.Now()
				resp, err := hc.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat[i] = time.Since(start)
				if resp.StatusCode != 200 {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
}
