package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/storesync/storesync/appstore"
)

// Metrics are storesync's Prometheus metrics. A nil *Metrics records
// nothing, so tests need not build one.
type Metrics struct {
	Registry       *prometheus.Registry
	JobOutcomes    *prometheus.CounterVec // kind, outcome
	AppleCalls     *prometheus.CounterVec // endpoint, outcome
	AppleThrottled *prometheus.CounterVec // endpoint
	BudgetWait     *prometheus.HistogramVec
	TransientRetry prometheus.Counter
	WebhookAnswers *prometheus.CounterVec // outcome
	VerifyFailures *prometheus.CounterVec // status
	DriftFound     *prometheus.CounterVec // class
	// WebhookSeconds is the time from request to answer of the webhook.
	WebhookSeconds prometheus.Histogram
	// BackfillNotifications counts notifications read from Apple's
	// notification history by environment and outcome (new, known).
	BackfillNotifications *prometheus.CounterVec
	// WebhookBatchSize and WebhookCommitSeconds describe the webhook's
	// group commits: notifications per transaction, and its duration.
	WebhookBatchSize     prometheus.Histogram
	WebhookCommitSeconds prometheus.Histogram
	// ProcessingYielded counts notification-processing jobs that waited
	// for the webhook (IngestGovernor), ProcessingYieldSeconds how long.
	ProcessingYielded      prometheus.Counter
	ProcessingYieldSeconds prometheus.Counter
}

// NewMetrics registers every metric in a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		JobOutcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "storesync_jobs_total", Help: "Job runs by kind and outcome (completed, retried, snoozed, cancelled).",
		}, []string{"kind", "outcome"}),
		AppleCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "storesync_apple_calls_total", Help: "Calls to the App Store Server API by endpoint and outcome.",
		}, []string{"endpoint", "outcome"}),
		AppleThrottled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "storesync_apple_429_total", Help: "429 answers from Apple by endpoint.",
		}, []string{"endpoint"}),
		BudgetWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "storesync_budget_wait_seconds", Help: "Time spent waiting for Apple rate budget.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"endpoint"}),
		TransientRetry: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "storesync_apple_transient_retries_total", Help: "In-job retries of transient Apple errors.",
		}),
		WebhookAnswers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "storesync_webhook_answers_total", Help: "Webhook answers by outcome.",
		}, []string{"outcome"}),
		VerifyFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "storesync_verification_failures_total", Help: "Signed-data verification failures by status.",
		}, []string{"status"}),
		DriftFound: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "storesync_drift_found_total", Help: "Drift found by reconciliation, by class.",
		}, []string{"class"}),
		WebhookSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "storesync_webhook_seconds", Help: "Webhook request latency, from request to answer.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		BackfillNotifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "storesync_backfill_notifications_total", Help: "Notifications read from Apple's notification history, by environment and outcome (new, known).",
		}, []string{"environment", "outcome"}),
		WebhookBatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "storesync_webhook_batch_size", Help: "Notifications stored per webhook transaction (group commit).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 9),
		}),
		WebhookCommitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "storesync_webhook_commit_seconds", Help: "Duration of one webhook transaction, begin to commit.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 12),
		}),
		ProcessingYielded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "storesync_processing_yielded_total", Help: "Notification-processing jobs that waited while the webhook was busy (ingest first).",
		}),
		ProcessingYieldSeconds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "storesync_processing_yield_seconds_total", Help: "Time notification-processing jobs spent waiting while the webhook was busy.",
		}),
	}
	m.Registry.MustRegister(m.JobOutcomes, m.AppleCalls, m.AppleThrottled, m.BudgetWait, m.TransientRetry,
		m.WebhookAnswers, m.VerifyFailures, m.DriftFound, m.WebhookSeconds, m.BackfillNotifications,
		m.WebhookBatchSize, m.WebhookCommitSeconds, m.ProcessingYielded, m.ProcessingYieldSeconds,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// ObserveBudgetWait records how long a call to endpoint waited for Apple's
// rate budget; it is budget.PostgresOptions.ObserveWait of storesync's
// budget. A nil *Metrics records nothing, so the method value of a nil
// *Metrics is a valid ObserveWait.
func (m *Metrics) ObserveBudgetWait(endpoint appstore.Endpoint, waited time.Duration) {
	if m != nil {
		m.BudgetWait.WithLabelValues(string(endpoint)).Observe(waited.Seconds())
	}
}

func (m *Metrics) transientRetry() {
	if m != nil {
		m.TransientRetry.Inc()
	}
}

// appleCall counts one call to Apple by endpoint and outcome.
func (m *Metrics) appleCall(ep appstore.Endpoint, err error) {
	if m == nil {
		return
	}
	outcome := "ok"
	var apiErr *appstore.APIError
	switch {
	case err == nil:
	case errors.As(err, &apiErr) && apiErr.RateLimited():
		outcome = "rate_limited"
		m.AppleThrottled.WithLabelValues(string(ep)).Inc()
	case errors.As(err, &apiErr):
		outcome = fmt.Sprintf("http_%d", apiErr.HTTPStatus)
	default:
		outcome = "error"
	}
	m.AppleCalls.WithLabelValues(string(ep), outcome).Inc()
}

// WebhookAnswer counts one webhook answer by outcome (the label of
// storesync_webhook_answers_total: stored, duplicate, malformed, …) and
// records took, the time from request to answer. A nil *Metrics records
// nothing.
func (m *Metrics) WebhookAnswer(outcome string, took time.Duration) {
	if m == nil {
		return
	}
	m.WebhookAnswers.WithLabelValues(outcome).Inc()
	m.WebhookSeconds.Observe(took.Seconds())
}

// WebhookCommit records one webhook group commit: size notifications
// stored in one transaction that took took, begin to commit (failed
// commits too). A nil *Metrics records nothing.
func (m *Metrics) WebhookCommit(size int, took time.Duration) {
	if m != nil {
		m.WebhookBatchSize.Observe(float64(size))
		m.WebhookCommitSeconds.Observe(took.Seconds())
	}
}

// VerifyFailure counts one verification failure by Apple's status name,
// appstore.StatusOf(err): an error that is no *appstore.VerificationError
// counts as VERIFICATION_FAILURE. A nil *Metrics records nothing.
func (m *Metrics) VerifyFailure(err error) {
	if m != nil {
		m.VerifyFailures.WithLabelValues(appstore.StatusOf(err).String()).Inc()
	}
}

// processingYielded counts one processing job that waited for ingest.
func (m *Metrics) processingYielded(waited time.Duration) {
	if m == nil {
		return
	}
	m.ProcessingYielded.Inc()
	m.ProcessingYieldSeconds.Add(waited.Seconds())
}

// backfillNotifications counts notifications read by a backfill.
func (m *Metrics) backfillNotifications(env appstore.Environment, fresh, known int) {
	if m == nil {
		return
	}
	m.BackfillNotifications.WithLabelValues(string(env), "new").Add(float64(fresh))
	m.BackfillNotifications.WithLabelValues(string(env), "known").Add(float64(known))
}

// jobOutcomeOf names what River does with a job run that returned err:
// completed, snoozed, cancelled, retried, or discarded (the last attempt
// failed).
func jobOutcomeOf(job *rivertype.JobRow, err error) string {
	var snooze *river.JobSnoozeError
	var cancel *river.JobCancelError
	switch {
	case err == nil:
		return "completed"
	case errors.As(err, &snooze):
		return "snoozed"
	case errors.As(err, &cancel):
		return "cancelled"
	case job != nil && job.Attempt >= job.MaxAttempts:
		return "discarded"
	default:
		return "retried"
	}
}

// jobDone counts a job run by kind and outcome and logs one line for it,
// then returns err unchanged, so a worker ends with
// `return d.jobDone(ctx, job.JobRow, err, attrs...)`. attrs say what the
// run did; they must never hold a secret or a signed payload.
func (d *Deps) jobDone(ctx context.Context, job *rivertype.JobRow, err error, attrs ...slog.Attr) error {
	outcome := jobOutcomeOf(job, err)
	if d.Metrics != nil {
		d.Metrics.JobOutcomes.WithLabelValues(job.Kind, outcome).Inc()
	}
	level := slog.LevelInfo
	switch outcome {
	case "retried", "cancelled", "discarded":
		level = slog.LevelWarn
	}
	all := append([]slog.Attr{slog.String("kind", job.Kind), slog.Int64("job_id", job.ID),
		slog.Int("attempt", job.Attempt), slog.String("outcome", outcome)}, attrs...)
	if err != nil {
		all = append(all, slog.String("error", err.Error()))
	}
	d.logger().LogAttrs(ctx, level, "job", all...)
	return err
}
