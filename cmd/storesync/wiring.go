package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

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
// wrong DATABASE_URL fails here with a message naming it.
func openPool(ctx context.Context, cfg *config.Config) (*pgxpool.Pool, error) {
	return openPoolSized(ctx, cfg, 0)
}

// openPoolSized is openPool allowing at least minConns connections (unless
// DATABASE_URL sets pool_max_conns itself): a serve process runs dozens of
// workers, each needing a connection now and then, where pgx's default is
// the number of CPUs.
func openPoolSized(ctx context.Context, cfg *config.Config, minConns int32) (*pgxpool.Pool, error) {
	poolCfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	if !strings.Contains(cfg.DatabaseURL, "pool_max_conns") && poolCfg.MaxConns < minConns {
		poolCfg.MaxConns = minConns
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
