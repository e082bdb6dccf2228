package jobs

import (
	"errors"
	"log/slog"
	"time"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/ledger"
)

// Deps is what every worker needs. Construct it once per process.
type Deps struct {
	// Ledger is the database: workers query through it, begin transactions
	// on Ledger.Pool() and write inside them through Ledger.WithTx(tx).
	Ledger *ledger.Ledger
	// Apple is the API client; its Budget should be the shared
	// budget.Postgres so every process spends from one budget.
	Apple *appstore.Client
	// Verifier verifies signed data of Apple's configured environment;
	// WithEnvironment gives the other (sandbox fallback, App Review).
	Verifier *appstore.Verifier
	Logger   *slog.Logger
	Metrics  *Metrics
	// WebhookLog, when set, stores the webhook's answer counts and times
	// for `status` and the ops console; nil stores none.
	WebhookLog *WebhookLog
	// Now is the clock (the simulator's in tests); default time.Now.
	Now func() time.Time
	// Settings tunes the workers; the zero value gives the defaults.
	Settings Settings
	// Ingest lets notification processing yield to the webhook when it is
	// busy (serve shares one between its webhook and its workers); nil:
	// processing never waits.
	Ingest *IngestGovernor
}

// Settings tunes job behaviour. Zero fields take the defaults.
type Settings struct {
	// RetryAttempts is how many times a transient Apple error (5xx,
	// retryable 404, network) is retried inside one job run before the run
	// fails and River's own retry takes over. Default 4.
	RetryAttempts int
	// RetryBase is the first in-job backoff, doubled each time with jitter.
	// Default 500ms.
	RetryBase time.Duration
	// Reconcile tunes drift reconciliation (call cap, full cycle, slices);
	// see ReconcileSettings.
	Reconcile ReconcileSettings
	// Delivery tunes the change feed's webhooks; see DeliverySettings.
	Delivery DeliverySettings
	// Compaction tunes the certificate compaction job; see
	// CompactionSettings.
	Compaction CompactionSettings
}

func (d *Deps) validate() error {
	var errs []error
	if d.Ledger == nil {
		errs = append(errs, errors.New("jobs: Deps.Ledger is nil: set it to ledger.New(pool)"))
	} else if d.Ledger.Pool() == nil {
		errs = append(errs, errors.New("jobs: Deps.Ledger has no pool: build it with ledger.New(pool)"))
	}
	return errors.Join(errs...)
}

func (d *Deps) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *Deps) logger() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.Default()
}

// verifierFor returns the verifier for payloads of env.
func (d *Deps) verifierFor(env appstore.Environment) (*appstore.Verifier, error) {
	if d.Verifier == nil {
		return nil, errors.New("jobs: no verifier configured")
	}
	return d.Verifier.WithEnvironment(env), nil
}

func (d *Deps) settings() Settings {
	s := d.Settings
	if s.RetryAttempts == 0 {
		s.RetryAttempts = 4
	}
	if s.RetryBase == 0 {
		s.RetryBase = 500 * time.Millisecond
	}
	return s
}
