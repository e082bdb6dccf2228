package main

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/storesync/storesync/config"
)

// loadConfig reads the environment through cli, reporting every problem.
func loadConfig(c *cli) (*config.Config, error) {
	return config.Load(c.getenv)
}

// openPool connects to the configured database and checks it answers, so a
// wrong DATABASE_URL fails here with a message naming it.
func openPool(ctx context.Context, cfg *config.Config) (*pgxpool.Pool, error) {
	poolCfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
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
