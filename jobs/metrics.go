package jobs

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

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
	}
	m.Registry.MustRegister(m.JobOutcomes, m.AppleCalls, m.AppleThrottled, m.BudgetWait, m.TransientRetry,
		m.WebhookAnswers, m.VerifyFailures, m.DriftFound,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
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
