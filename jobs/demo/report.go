package demo

import (
	"time"

	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/jobs/truthcheck"
	"github.com/storesync/storesync/ledger"
)

// Report is what a demo run measured, for the command to print. A run that
// failed part-way returns the fields of the steps it finished.
type Report struct {
	// DatabaseURL is the demo database; with Options.Keep it still exists.
	DatabaseURL string
	// Subscribers is Options.Subscribers: the simulated customers (some
	// have more than one subscription).
	Subscribers int
	// Imported and ImportFailed count the migrated subscriptions, in
	// MigrateTime; MigrateStats are the simulator's counters at its end.
	Imported, ImportFailed int64
	MigrateTime            time.Duration
	MigrateStats           sim.Stats
	// LiveSent is how many notifications the simulator sent while its
	// clock ran, Dropped how many deliveries it dropped on purpose, and
	// Webhook how many the ledger received by webhook.
	LiveSent         int
	Dropped, Webhook int64
	// Backfilled is how many notifications the backfill recovered from
	// notification history.
	Backfilled int64
	// ByType counts the notifications the ledger holds per type, received
	// by webhook and recovered by backfill (and, in Other, stored by the
	// reconciliation's sweep), at the end of the run.
	ByType []ledger.NotificationTypeCount
	// Silent is how many subscriptions changed at Apple without a
	// notification, by mutation kind in SilentByKind.
	Silent       int
	SilentByKind map[string]int
	// Reconcile is the reconciliation run that looked for them.
	Reconcile *ledger.ReconcileRun
	// Mismatches are the differences between the ledger and the
	// simulator's truth at the end; none means the ledger equals it.
	Mismatches []truthcheck.Mismatch
	// Stats are the simulator's counters at the end; Elapsed the time the
	// whole run took, teardown excluded.
	Stats   sim.Stats
	Elapsed time.Duration
}
