package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/storesync/storesync/config"
	"github.com/storesync/storesync/migrations"
)

// migrateCommand is `storesync migrate`; main.go lists it in commands.
func migrateCommand() *command {
	return &command{
		name:    "migrate",
		summary: "create the database if needed and apply River's and the ledger's migrations",
		usage: `storesync migrate

Creates the database named by DATABASE_URL when it does not exist, then applies
River's migrations and the ledger's under an advisory lock. Safe to run from
several processes at once, and again: a second run applies nothing.

STORESYNC_MIGRATE_DATABASE_URL, when set, is used instead of DATABASE_URL: a
direct connection to the same database, for when DATABASE_URL goes through a
pooler. With STORESYNC_DB_POOLER=pgbouncer-transaction it is required, since
the migration lock is a session advisory lock that transaction pooling
cannot keep.`,
		run: runMigrate,
	}
}

func runMigrate(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("unexpected argument %q", rest[0])
	}
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	url, err := cfg.MigrationURL()
	if err != nil {
		return err
	}
	res, err := migrations.Migrate(ctx, url)
	if err != nil {
		return err
	}
	if res.CreatedDatabase {
		fmt.Fprintf(c.stdout, "created database %s\n", config.RedactURL(url))
	}
	fmt.Fprintf(c.stdout, "River migrations applied: %d; ledger migrations applied: %d (database is up to date)\n",
		len(res.RiverApplied), len(res.LedgerApplied))
	return nil
}
