package ledger

import (
	"context"
	"fmt"
	"math"
	"time"
)

// WebhookLatencyBounds are the upper bounds of the answer-time histogram
// stored per minute (WebhookMinute.Buckets has one more bucket, for the
// slower rest). Changing them would mix histograms of different shapes in
// one table: add a migration instead.
var WebhookLatencyBounds = []time.Duration{
	500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond,
	10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond,
	200 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 5 * time.Second,
}

// WebhookMinute is what one process answered on the webhook during one
// minute.
type WebhookMinute struct {
	// Minute is the minute's start (truncated to the minute, UTC).
	Minute time.Time
	// Answers counts every answer; Refused those other than 200.
	Answers, Refused int64
	// Seconds is the sum of the answer times.
	Seconds float64
	// Buckets has len(WebhookLatencyBounds)+1 counts; see the bounds.
	Buckets []int64
}

// WebhookBucket returns the index in WebhookMinute.Buckets of an answer
// that took took.
func WebhookBucket(took time.Duration) int {
	for i, b := range WebhookLatencyBounds {
		if took <= b {
			return i
		}
	}
	return len(WebhookLatencyBounds)
}

// AddWebhookMinutes adds minutes to the stored counts (several processes
// add to the same minute) and prunes minutes older than two days. A
// minute whose Buckets has the wrong length is refused, naming it.
func (l *Ledger) AddWebhookMinutes(ctx context.Context, minutes []WebhookMinute) error {
	for _, m := range minutes {
		if len(m.Buckets) != len(WebhookLatencyBounds)+1 {
			return fmt.Errorf("ledger: webhook minute %s has %d buckets, want %d (one per ledger.WebhookLatencyBounds, plus one)",
				m.Minute.Format(time.RFC3339), len(m.Buckets), len(WebhookLatencyBounds)+1)
		}
		// Element-wise addition of the histograms: both have the same length.
		if _, err := l.db.Exec(ctx, `INSERT INTO webhook_answer_minutes AS w (minute, answers, refused, seconds_sum, buckets)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (minute) DO UPDATE SET answers = w.answers + EXCLUDED.answers, refused = w.refused + EXCLUDED.refused,
				seconds_sum = w.seconds_sum + EXCLUDED.seconds_sum,
				buckets = ARRAY(SELECT a + b FROM unnest(w.buckets, EXCLUDED.buckets) AS t(a, b))`,
			m.Minute.UTC().Truncate(time.Minute), m.Answers, m.Refused, m.Seconds, m.Buckets); err != nil {
			return fmt.Errorf("ledger: adding webhook answers of %s: %w", m.Minute.Format(time.RFC3339), err)
		}
	}
	if _, err := l.db.Exec(ctx, `DELETE FROM webhook_answer_minutes WHERE minute < now() - interval '2 days'`); err != nil {
		return fmt.Errorf("ledger: pruning webhook answers: %w", err)
	}
	return nil
}

// WebhookAnswers sums the stored minutes from Since (inclusive, by the
// minute's start) on.
type WebhookAnswers struct {
	Since            time.Time
	Answers, Refused int64
	Seconds          float64
	Buckets          []int64
}

// PerSecond is the answer rate over the time from Since to now; 0 when
// now is not after Since.
func (a WebhookAnswers) PerSecond(now time.Time) float64 {
	el := now.Sub(a.Since).Seconds()
	if el <= 0 {
		return 0
	}
	return float64(a.Answers) / el
}

// Quantile is the upper bound of the histogram bucket holding the q-th
// quantile of answer times (0 < q <= 1): an answer time no lower than the
// true one, at the histogram's resolution. It is 0 without answers, and
// the largest bound when the quantile lies in the last, unbounded bucket.
func (a WebhookAnswers) Quantile(q float64) time.Duration {
	if a.Answers == 0 || len(a.Buckets) == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(a.Answers)))
	var seen int64
	for i, n := range a.Buckets {
		seen += n
		if seen >= rank && i < len(WebhookLatencyBounds) {
			return WebhookLatencyBounds[i]
		}
	}
	return WebhookLatencyBounds[len(WebhookLatencyBounds)-1]
}

// Mean is the mean answer time; 0 without answers.
func (a WebhookAnswers) Mean() time.Duration {
	if a.Answers == 0 {
		return 0
	}
	return time.Duration(a.Seconds / float64(a.Answers) * float64(time.Second))
}

// WebhookAnswersSince sums the webhook's answers of every minute starting
// at or after since (truncated to its minute); a ledger without answers
// gives zero counts.
func (l *Ledger) WebhookAnswersSince(ctx context.Context, since time.Time) (WebhookAnswers, error) {
	a := WebhookAnswers{Since: since.UTC().Truncate(time.Minute), Buckets: make([]int64, len(WebhookLatencyBounds)+1)}
	rows, err := l.db.Query(ctx, `SELECT answers, refused, seconds_sum, buckets FROM webhook_answer_minutes WHERE minute >= $1`, a.Since)
	if err != nil {
		return a, fmt.Errorf("ledger: reading webhook answers: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var n, r int64
		var s float64
		var b []int64
		if err := rows.Scan(&n, &r, &s, &b); err != nil {
			return a, fmt.Errorf("ledger: reading webhook answers: %w", err)
		}
		a.Answers, a.Refused, a.Seconds = a.Answers+n, a.Refused+r, a.Seconds+s
		for i := range b {
			if i < len(a.Buckets) {
				a.Buckets[i] += b[i]
			}
		}
	}
	if err := rows.Err(); err != nil {
		return a, fmt.Errorf("ledger: reading webhook answers: %w", err)
	}
	return a, nil
}
