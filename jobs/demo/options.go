package demo

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/storesync/storesync/config"
	"github.com/storesync/storesync/jobs"
)

// Options configures Run. Subscribers, Days and Wiring have no usable zero
// value; Run reports every invalid field at once.
type Options struct {
	// Subscribers is how many customers the simulator generates:
	// 10..200000.
	Subscribers int
	// Seed makes the simulated world: the same seed, the same world.
	Seed int64
	// Days is how many simulated days notifications arrive live: 1..60.
	Days int
	// DropShare is the share of webhook deliveries dropped, as the sandbox
	// may: [0, 1].
	DropShare float64
	// SilentChanges is how many subscriptions change at Apple without a
	// notification, for the reconciliation to find: 0 or more.
	SilentChanges int
	// Keep keeps the demo database (and a private Postgres cluster it
	// started) instead of dropping it; Report.DatabaseURL names it.
	Keep bool
	// ServerURL is the Postgres server to create the demo database on (the
	// user's DATABASE_URL; its database part is replaced). Empty means the
	// server on 127.0.0.1:5432, else a private throwaway cluster (see
	// localpg.Find).
	ServerURL string
	// Log, when set, receives each live progress line with the time since
	// Run started.
	Log func(elapsed time.Duration, line string)
	// Hold, when set, is called with the finished report and the base URL
	// of the HTTP server (webhook, ops console) before anything is
	// stopped; Run returns when Hold does. `storesync demo --serve-for`
	// prints the report and keeps the ops console up for a newcomer.
	Hold func(ctx context.Context, baseURL string, rep *Report)
	// Wiring builds what storesync serve builds; required.
	Wiring Wiring
}

// Wiring is how storesync serve builds itself from a configuration. The
// command passes its own functions, so the demo runs the product exactly
// as configured instead of a copy of its wiring.
type Wiring struct {
	// Open connects to cfg's database, allowing at least minConns
	// connections, and builds the workers' dependencies over that pool
	// (ledger, App Store client on the shared budget, verifier). Run
	// closes the pool.
	Open func(ctx context.Context, cfg *config.Config, minConns int32) (*pgxpool.Pool, *jobs.Deps, error)
	// Handler is the HTTP API, webhook included, that the simulator posts
	// its notifications to.
	Handler func(deps *jobs.Deps, client *river.Client[pgx.Tx]) http.Handler
	// ReconcileCallCap is the call cap cfg gives a reconciliation run.
	ReconcileCallCap func(cfg *config.Config) int64
}

func (o *Options) validate() error {
	var errs []error
	if o.Subscribers < 10 || o.Subscribers > 200_000 {
		errs = append(errs, fmt.Errorf("demo: Options.Subscribers = %d: use 10..200000", o.Subscribers))
	}
	if o.Days < 1 || o.Days > 60 {
		errs = append(errs, fmt.Errorf("demo: Options.Days = %d: use 1..60", o.Days))
	}
	if o.DropShare < 0 || o.DropShare > 1 {
		errs = append(errs, fmt.Errorf("demo: Options.DropShare = %g: use a share in [0, 1]", o.DropShare))
	}
	if o.SilentChanges < 0 {
		errs = append(errs, fmt.Errorf("demo: Options.SilentChanges = %d: use 0 or more", o.SilentChanges))
	}
	if o.Wiring.Open == nil || o.Wiring.Handler == nil || o.Wiring.ReconcileCallCap == nil {
		errs = append(errs, errors.New("demo: Options.Wiring is incomplete: set Open, Handler and ReconcileCallCap"))
	}
	return errors.Join(errs...)
}
