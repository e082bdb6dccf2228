package sim

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
)

// BenchmarkHistory serves first history pages (up to 20 signed
// transactions each) of 2,000 customers in-process (no network) and reports
// requests per second. Signatures are cached per simulated instant, as
// between two Advance calls.
func BenchmarkHistory(b *testing.B) {
	s, err := New(Options{Seed: 1, Subscribers: 2000, DisableRateLimits: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ids := s.OriginalTransactionIDs(appstore.Production)
	tok, err := s.Token()
	if err != nil {
		b.Fatal(err)
	}
	h := s.Handler()
	// serve reports failures with Errorf: it also runs on RunParallel's
	// goroutines, where Fatal is not allowed.
	serve := func(id string) bool {
		req := httptest.NewRequest("GET", "/inApps/v2/history/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Errorf("status %d: %s", rec.Code, rec.Body)
			return false
		}
		return true
	}
	// Warm the signature cache, so the result does not depend on b.N.
	for _, id := range ids {
		if !serve(id) {
			return
		}
	}
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !serve(ids[int(next.Add(1))%len(ids)]) {
				return
			}
		}
	})
	el := time.Since(start)
	b.ReportMetric(float64(b.N)/el.Seconds(), "req/s")
}

// BenchmarkSignTransaction measures one fresh ES256 JWS of a transaction
// payload: the cost of a history page after the clock moved is about 20 of
// these.
func BenchmarkSignTransaction(b *testing.B) {
	s, err := New(Options{Seed: 1, Subscribers: 10})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	s.world.mu.RLock()
	p := s.world.txPayload(s.world.subs[0].latest(), s.Now())
	s.world.mu.RUnlock()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.ca.Sign(p); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "sig/s")
}
