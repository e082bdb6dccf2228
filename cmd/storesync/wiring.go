package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/config"
	"github.com/storesync/storesync/jobs"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/ledger/budget"
)

// loadConfig reads the environment through cli, reporting every problem.
func loadConfig(c *cli) (*config.Config, error) {
	return config.Load(c.getenv)
}

// openPool connects to the configured database and checks it answers, so a
// wrong DATABASE_URL fails here with a message naming it. It is the pool of
// the commands that only enqueue and read (import, status, …): pgx's
// default size (the number of CPUs, at least 4), never above
// STORESYNC_DB_MAX_CONNS.
func openPool(ctx context.Context, cfg *config.Config) (*pgxpool.Pool, error) {
	return openPoolMax(ctx, cfg, func(pgxDefault int32) int32 { return min(pgxDefault, int32(cfg.DBMaxConns)) })
}

// openPoolMax is openPool with MaxConns chosen by size from pgx's default,
// and DATABASE_URL adapted to cfg's pooler: behind a transaction pooler pgx
// runs every query as an unnamed statement (QueryExecModeCacheDescribe:
// the description is cached per connection, the statement is parsed again
// with each execution), because a named prepared statement lives on one
// server connection and the pooler hands the next transaction to another.
// PgBouncer before 1.21 (Debian 12 ships 1.18) cannot track them at all;
// cache_describe keeps pgx's binary, typed parameters, where exec and
// simple_protocol would guess types from Go values. A
// default_query_exec_mode in DATABASE_URL is kept (config refuses the
// prepared-statement modes with a pooler).
func openPoolMax(ctx context.Context, cfg *config.Config, size func(pgxDefault int32) int32) (*pgxpool.Pool, error) {
	poolCfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	poolCfg.MaxConns = size(poolCfg.MaxConns)
	if cfg.Pooler.TransactionPooling() && !strings.Contains(cfg.DatabaseURL, "default_query_exec_mode") {
		poolCfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeCacheDescribe
	}
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to DATABASE_URL (%s): %w", config.RedactURL(cfg.DatabaseURL), err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to DATABASE_URL (%s): %w; is Postgres running, and has `storesync migrate` been run?", config.RedactURL(cfg.DatabaseURL), err)
	}
	return pool, nil
}

// serveConnections splits STORESYNC_DB_MAX_CONNS among what a serve process
// connects for, so that the process never holds more:
//   - River's LISTEN connection: 1, unless behind a transaction pooler
//     (River then polls). River takes it from the pool and hijacks it, so
//     it no longer counts against the pool's MaxConns: the pool gets one
//     less.
//   - the pool (the rest), shared by River's fetches, completions, leader
//     election and maintenance, every job's transaction, the budget leases
//     and the webhook's committers. Jobs hold at most one connection at a
//     time and call Apple outside their transactions, so the ~96 workers
//     queue for connections in the pool instead of each holding one.
//   - webhook committers: up to 2 (a third of the pool, at least 1), each
//     holding a pool connection while it commits a batch, so a webhook
//     burst cannot take every connection from the jobs.
func serveConnections(cfg *config.Config) (pool int32, committers int) {
	pool = int32(cfg.DBMaxConns)
	if !cfg.Pooler.TransactionPooling() {
		pool-- // River's LISTEN connection
	}
	return pool, max(1, min(2, int(pool)/3))
}

// buildBudget returns the rate budget shared through the database by every
// process of the app: cfg's effective limits for its environment and, with
// sandbox fallback, for the sandbox.
func buildBudget(cfg *config.Config, pool *pgxpool.Pool, metrics *jobs.Metrics) (*budget.Postgres, error) {
	limits := map[appstore.Environment]map[appstore.Endpoint]float64{
		cfg.Environment: cfg.EffectiveRateLimits(cfg.Environment),
	}
	if cfg.SandboxFallback && cfg.Environment == appstore.Production {
		limits[appstore.Sandbox] = cfg.EffectiveRateLimits(appstore.Sandbox)
	}
	return budget.NewPostgres(budget.PostgresOptions{Pool: pool, App: cfg.BundleID, Limits: limits, ObserveWait: metrics.ObserveBudgetWait})
}

// buildAppleClient returns the App Store Server API client of cfg spending
// from budget. The sandbox reached by fallback is APPSTORE_SANDBOX_BASE_URL
// (Apple's sandbox host when unset).
func buildAppleClient(cfg *config.Config, budget appstore.Budget) (*appstore.Client, error) {
	opts := appstore.ClientOptions{
		KeyID: cfg.KeyID, IssuerID: cfg.IssuerID, BundleID: cfg.BundleID, PrivateKey: cfg.PrivateKey,
		Environment: cfg.Environment, BaseURL: cfg.BaseURL,
		SandboxFallback: cfg.SandboxFallback && cfg.Environment == appstore.Production,
		Budget:          budget,
	}
	if opts.SandboxFallback {
		opts.SandboxBaseURL = cfg.SandboxBaseURL // config requires it when BaseURL is overridden
	}
	return appstore.NewClient(opts)
}

// buildVerifier returns the verifier of cfg's environment, trusting
// APPSTORE_ROOT_CERTS (or Apple's root); WithEnvironment gives its
// Production and Sandbox siblings.
func buildVerifier(cfg *config.Config) (*appstore.Verifier, error) {
	roots, err := cfg.RootCertificates()
	if err != nil {
		return nil, err
	}
	return appstore.NewVerifier(appstore.VerifierOptions{
		RootCertificates: roots, Environment: cfg.Environment, BundleID: cfg.BundleID, AppAppleID: cfg.AppAppleID,
	})
}

// buildDeps builds what the workers of any command need from cfg (which
// must pass RequireAppStore): the ledger, the App Store client spending
// from the shared budget.Postgres, the verifier and fresh metrics. The
// logger is slog's default; commands may replace it.
func buildDeps(ctx context.Context, cfg *config.Config, pool *pgxpool.Pool) (*jobs.Deps, error) {
	if err := cfg.RequireAppStore(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	metrics := jobs.NewMetrics()
	budget, err := buildBudget(cfg, pool, metrics)
	if err != nil {
		return nil, err
	}
	apple, err := buildAppleClient(cfg, budget)
	if err != nil {
		return nil, err
	}
	verifier, err := buildVerifier(cfg)
	if err != nil {
		return nil, err
	}
	return &jobs.Deps{
		Ledger: ledger.New(pool).WithEntitlements(cfg.Entitlements), Apple: apple, Verifier: verifier,
		Logger: slog.Default(), Metrics: metrics,
	}, nil
}
