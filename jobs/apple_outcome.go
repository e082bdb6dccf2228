package jobs

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/riverqueue/river"

	"github.com/storesync/storesync/appstore"
)

// appleOutcome turns an error from calling Apple into River's outcome:
//   - 429: snooze until Retry-After (plus jitter), which costs no attempt;
//   - transient (5xx, retryable 404s, network): the error, so River retries;
//   - permanent (other API errors, payloads that fail verification): cancel,
//     so a bad id is not retried 10 times.
//
// Retry-After is Apple's wall-clock time, so it is measured against
// time.Now, never Deps.Now (which is the simulator's clock in tests and the
// demo).
func appleOutcome(err error) error {
	now := time.Now()
	if err == nil {
		return nil
	}
	var apiErr *appstore.APIError
	if errors.As(err, &apiErr) && apiErr.RateLimited() {
		wait := apiErr.RetryAfter.Sub(now)
		if wait < time.Second {
			wait = time.Second
		}
		return river.JobSnooze(wait + time.Duration(rand.Int64N(int64(500*time.Millisecond))))
	}
	if appstore.IsRetryable(err) {
		return err
	}
	var verr *appstore.VerificationError
	if errors.As(err, &verr) {
		if verr.Retryable() {
			return err
		}
		return river.JobCancel(err)
	}
	if apiErr != nil {
		return river.JobCancel(err)
	}
	return err
}

// isPermanentAppleError reports whether retrying err can never help.
func isPermanentAppleError(err error) bool {
	var apiErr *appstore.APIError
	if errors.As(err, &apiErr) {
		return !apiErr.RateLimited() && !appstore.IsRetryable(err)
	}
	var verr *appstore.VerificationError
	return errors.As(err, &verr) && !verr.Retryable()
}

// retryTransient calls f, retrying transient Apple errors inside the job
// with a short jittered exponential backoff (seconds, not River's
// minutes-to-weeks schedule), so a few percent of 5xx do not stretch a
// migration. Rate limiting and permanent errors return at once.
func retryTransient[T any](ctx context.Context, d *Deps, f func(context.Context) (T, error)) (T, error) {
	s := d.settings()
	backoff := s.RetryBase
	for attempt := 1; ; attempt++ {
		v, err := f(ctx)
		if err == nil || attempt >= s.RetryAttempts || !appstore.IsRetryable(err) || ctx.Err() != nil {
			return v, err
		}
		d.Metrics.transientRetry()
		sleep := backoff/2 + time.Duration(rand.Int64N(int64(backoff)))
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(sleep):
		}
		backoff *= 2
	}
}
