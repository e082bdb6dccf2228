// Package ledger is storesync's Postgres ledger of App Store subscriptions:
// idempotent upserts of Apple's signed facts, the state rules of the design
// (state only moves forward; the same facts in any order give the same
// ledger), and the queries behind show, status and reconciliation.
//
// The ledger knows nothing of HTTP: callers hand it decoded, already
// verified payloads together with their signed JWS.
package ledger

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotFound is returned when the ledger holds nothing for an id.
var ErrNotFound = errors.New("not found")

// Querier is what the ledger needs of a connection: a pool, a connection or
// a transaction (so callers can combine ledger writes with River inserts).
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// Ledger reads and writes the ledger tables through a pool.
type Ledger struct {
	pool *pgxpool.Pool
}

// New returns a Ledger over pool. The schema must be migrated
// (migrations.Migrate).
func New(pool *pgxpool.Pool) *Ledger { return &Ledger{pool: pool} }

// Pool returns the pool the ledger uses.
func (l *Ledger) Pool() *pgxpool.Pool { return l.pool }
