package demo

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/storesync/storesync/migrations"
	"github.com/storesync/storesync/migrations/localpg"
)

// newDatabase returns the URL of a new database name for the demo on
// serverURL's server or, when serverURL is empty, on localpg's, and a
// function that drops it (unless kept) and stops a private cluster it
// started (unless kept).
func (r *runner) newDatabase(ctx context.Context, serverURL string) (string, func(keep bool), error) {
	name := fmt.Sprintf("storesync_demo_%d", time.Now().UnixNano()%1e9)
	var server *localpg.Server
	if serverURL == "" {
		var err error
		server, err = localpg.Find(ctx, r.logf)
		if err != nil {
			return "", nil, fmt.Errorf("finding a Postgres for the demo (set DATABASE_URL to use yours): %w", err)
		}
		serverURL = server.URL
	}
	cfg, err := pgx.ParseConfig(serverURL)
	if err != nil {
		return "", nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	dbURL := (&localpg.Server{URL: serverURL}).DatabaseURL(name)
	r.logf("database: %s on %s:%d", name, cfg.Host, cfg.Port)
	stop := func(keep bool) {
		if !keep {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_ = migrations.DropDatabase(ctx, dbURL) // best effort: the demo is over
		}
		if server != nil && server.Private && !keep {
			_ = server.Stop()
		}
	}
	return dbURL, stop, nil
}
