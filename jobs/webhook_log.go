package jobs

import (
	"context"
	"sync"
	"time"

	"github.com/storesync/storesync/ledger"
)

// WebhookLog counts the webhook's answers per minute in memory and adds
// them to the ledger (ledger.AddWebhookMinutes) every few seconds, so
// `storesync status` and the ops console, read by other processes, show
// the webhook rate and answer latency. Create it with NewWebhookLog and
// run Run; a nil *WebhookLog records nothing.
type WebhookLog struct {
	ledger *ledger.Ledger
	now    func() time.Time
	mu     sync.Mutex
	open   map[time.Time]*ledger.WebhookMinute
}

// NewWebhookLog returns a log writing to l; now is its clock (nil:
// time.Now).
func NewWebhookLog(l *ledger.Ledger, now func() time.Time) *WebhookLog {
	if now == nil {
		now = time.Now
	}
	return &WebhookLog{ledger: l, now: now, open: map[time.Time]*ledger.WebhookMinute{}}
}

// Record counts one answer that took took; refused is any answer but 200.
// It never blocks on the database.
func (w *WebhookLog) Record(refused bool, took time.Duration) {
	if w == nil {
		return
	}
	minute := w.now().UTC().Truncate(time.Minute)
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.open[minute]
	if m == nil {
		m = &ledger.WebhookMinute{Minute: minute, Buckets: make([]int64, len(ledger.WebhookLatencyBounds)+1)}
		w.open[minute] = m
	}
	m.Answers++
	if refused {
		m.Refused++
	}
	m.Seconds += took.Seconds()
	m.Buckets[ledger.WebhookBucket(took)]++
}

// Flush adds what was recorded since the last flush to the ledger. On
// error the counts are kept for the next flush, so a database outage
// delays them rather than losing them.
func (w *WebhookLog) Flush(ctx context.Context) error {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	batch := make([]ledger.WebhookMinute, 0, len(w.open))
	for _, m := range w.open {
		batch = append(batch, *m)
	}
	w.open = map[time.Time]*ledger.WebhookMinute{}
	w.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if err := w.ledger.AddWebhookMinutes(ctx, batch); err != nil {
		w.mu.Lock()
		for _, b := range batch {
			w.merge(b)
		}
		w.mu.Unlock()
		return err
	}
	return nil
}

// merge adds b back into the open minutes; the caller holds mu.
func (w *WebhookLog) merge(b ledger.WebhookMinute) {
	m := w.open[b.Minute]
	if m == nil {
		c := b
		c.Buckets = append([]int64(nil), b.Buckets...)
		w.open[b.Minute] = &c
		return
	}
	m.Answers += b.Answers
	m.Refused += b.Refused
	m.Seconds += b.Seconds
	for i := range m.Buckets {
		m.Buckets[i] += b.Buckets[i]
	}
}

// Run flushes every interval (default 5s) until ctx ends, then once more
// with a short grace so answers of the last seconds are kept. Errors are
// retried at the next tick.
func (w *WebhookLog) Run(ctx context.Context, interval time.Duration) {
	if w == nil {
		return
	}
	if interval <= 0 {
		interval = 5 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
			_ = w.Flush(fctx)
			cancel()
			return
		case <-t.C:
			_ = w.Flush(ctx)
		}
	}
}
