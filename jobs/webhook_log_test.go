package jobs_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/storesync/storesync/jobs"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

// Two processes' logs add into the same minute's row; the stored
// histogram gives the quantiles of every answer, and a malformed minute
// is refused by name.
func TestWebhookLogsOfTwoProcessesAdd(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	l := ledger.New(pool)
	ctx := context.Background()
	now := time.Now()
	a, b := jobs.NewWebhookLog(l, nil), jobs.NewWebhookLog(l, nil)
	for i := 0; i < 98; i++ {
		a.Record(false, 800*time.Microsecond) // the ≤1ms bucket
	}
	b.Record(true, 3*time.Millisecond)              // ≤5ms
	b.Record(false, 10*time.Second)                 // slower than every bound
	for _, w := range []*jobs.WebhookLog{a, b, a} { // a third flush has nothing to add
		if err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got, err := l.WebhookAnswersSince(ctx, now.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if got.Answers != 100 || got.Refused != 1 {
		t.Fatalf("answers %d refused %d, want 100 and 1", got.Answers, got.Refused)
	}
	if p50, p99, max := got.Quantile(0.5), got.Quantile(0.99), got.Quantile(1); p50 != time.Millisecond ||
		p99 != 5*time.Millisecond || max != ledger.WebhookLatencyBounds[len(ledger.WebhookLatencyBounds)-1] {
		t.Fatalf("p50 %s p99 %s max %s", p50, p99, max)
	}
	if err := l.AddWebhookMinutes(ctx, []ledger.WebhookMinute{{Minute: now, Answers: 1, Buckets: []int64{1}}}); err == nil ||
		!strings.Contains(err.Error(), "1 buckets") {
		t.Fatalf("a minute with one bucket: %v", err)
	}
}
