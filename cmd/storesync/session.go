package main

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/storesync/storesync/config"
	"github.com/storesync/storesync/jobs"
	"github.com/storesync/storesync/ledger"
)

// session is what a command that works on the database without working
// jobs itself needs (import, backfill, reconcile, resync, show, status):
// the configuration, a pool, the ledger over it and an insert-only River
// client, to enqueue work for `storesync serve` and read its jobs.
type session struct {
	cfg    *config.Config
	pool   *pgxpool.Pool
	ledger *ledger.Ledger
	river  *river.Client[pgx.Tx]
}

// openSession is those commands' one prologue: it loads the configuration
// (every problem reported at once), connects to DATABASE_URL and checks it
// answers, and builds the ledger and the River client. The caller closes
// the session.
func openSession(ctx context.Context, c *cli) (*session, error) {
	cfg, err := loadConfig(c)
	if err != nil {
		return nil, err
	}
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return nil, err
	}
	l := ledger.New(pool).WithEntitlements(cfg.Entitlements)
	client, err := jobs.NewRiverClient(&jobs.Deps{Ledger: l}, jobs.ClientOptions{})
	if err != nil {
		pool.Close()
		return nil, err
	}
	return &session{cfg: cfg, pool: pool, ledger: l, river: client}, nil
}

// Close closes the pool. The insert-only client holds nothing else.
func (s *session) Close() { s.pool.Close() }
