// Package migrations holds the ledger's SQL migrations, embedded in the
// binary, and applies them together with River's own under one Postgres
// advisory lock, so any number of processes may migrate at once.
package migrations

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

//go:embed sql/*.sql
var files embed.FS

// advisoryLockKey serialises migrations of one database across processes.
// Any constant works as long as nothing else in the database uses it.
const advisoryLockKey = 0x53544f5245 // "STORE"

// Migration is one ledger migration file, named NNN_description.sql.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// All returns the embedded ledger migrations in version order.
func All() ([]Migration, error) {
	entries, err := fs.ReadDir(files, "sql")
	if err != nil {
		return nil, err
	}
	var out []Migration
	seen := map[int]string{}
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migrations: file %s is not named NNN_description.sql", e.Name())
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations: %s and %s share version %d", other, e.Name(), v)
		}
		seen[v] = e.Name()
		b, err := files.ReadFile("sql/" + e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: v, Name: e.Name(), SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// Result says what Migrate did.
type Result struct {
	CreatedDatabase bool
	RiverApplied    []int // River migration versions applied now
	LedgerApplied   []int // ledger migration versions applied now
}

// Migrate creates the database of databaseURL when it does not exist, then
// applies River's migrations and the ledger's. It is idempotent: a second
// run applies nothing. Concurrent runs are serialised by an advisory lock.
func Migrate(ctx context.Context, databaseURL string) (*Result, error) {
	created, err := EnsureDatabase(ctx, databaseURL)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.New(ctx, databaseURL)
	if err != nil {
		return nil, fmt.Errorf("connecting to DATABASE_URL: %w", err)
	}
	defer pool.Close()
	res, err := MigratePool(ctx, pool)
	if err != nil {
		return nil, err
	}
	res.CreatedDatabase = created
	return res, nil
}

// MigratePool applies River's and the ledger's migrations through pool.
func MigratePool(ctx context.Context, pool *pgxpool.Pool) (*Result, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("connecting to the database: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", advisoryLockKey); err != nil {
		return nil, fmt.Errorf("taking the migration lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", advisoryLockKey) //nolint:errcheck // the session ends soon anyway

	res := &Result{}
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return nil, err
	}
	rr, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return nil, fmt.Errorf("applying River's migrations: %w", err)
	}
	for _, v := range rr.Versions {
		res.RiverApplied = append(res.RiverApplied, v.Version)
	}

	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS storesync_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return nil, fmt.Errorf("creating storesync_migrations: %w", err)
	}
	all, err := All()
	if err != nil {
		return nil, err
	}
	applied := map[int]bool{}
	rows, err := conn.Query(ctx, "SELECT version FROM storesync_migrations")
	if err != nil {
		return nil, err
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, err
	}
	for _, v := range versions {
		applied[int(v)] = true
	}
	for _, m := range all {
		if applied[m.Version] {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO storesync_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("applying ledger migration %s: %w", m.Name, err)
		}
		res.LedgerApplied = append(res.LedgerApplied, m.Version)
	}
	return res, nil
}

// EnsureDatabase creates the database named in databaseURL when it does not
// exist, connecting to the server's "postgres" database to do so. It reports
// whether it created it. Another process creating it at the same moment is
// not an error.
func EnsureDatabase(ctx context.Context, databaseURL string) (bool, error) {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return false, fmt.Errorf("DATABASE_URL: %w", err)
	}
	name := cfg.Database
	if name == "" {
		return false, errors.New("DATABASE_URL names no database: add one, e.g. postgres://host:5432/storesync")
	}
	// Connecting to the target first costs nothing when it exists (the
	// common case) and needs no rights on the maintenance database.
	if conn, err := pgx.ConnectConfig(ctx, cfg); err == nil {
		conn.Close(ctx)
		return false, nil
	} else if !isUndefinedDatabase(err) {
		return false, fmt.Errorf("connecting to DATABASE_URL (%s): %w", redactedTarget(cfg), err)
	}
	admin := cfg.Copy()
	admin.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return false, fmt.Errorf("database %q does not exist and the server's postgres database is unreachable to create it: %w", name, err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "42P04" || pgErr.Code == "23505") {
		return false, nil // created concurrently by another process
	}
	if err != nil {
		return false, fmt.Errorf("creating database %q: %w", name, err)
	}
	return true, nil
}

// DropDatabase drops the database named in databaseURL, connecting to the
// server's "postgres" database to do so and disconnecting whoever still
// uses it (WITH (FORCE), PostgreSQL 13 or later). A database that does not
// exist is not an error. It is for throwaway databases (storesync demo);
// nothing asks for confirmation.
func DropDatabase(ctx context.Context, databaseURL string) error {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	name := cfg.Database
	if name == "" || name == "postgres" {
		return fmt.Errorf("dropping a database: %s names no database storesync may drop", redactedTarget(cfg))
	}
	admin := cfg.Copy()
	admin.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return fmt.Errorf("connecting to the server's postgres database to drop %q: %w", name, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("dropping database %q: %w", name, err)
	}
	return nil
}

func isUndefinedDatabase(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "3D000"
}

func redactedTarget(cfg *pgx.ConnConfig) string {
	return fmt.Sprintf("%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}
