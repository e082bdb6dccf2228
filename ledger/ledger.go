// Package ledger is storesync's Postgres ledger of App Store subscriptions:
// idempotent upserts of Apple's signed facts, the state rules of the design
// (state only moves forward; the same facts in any order give the same
// ledger), and the queries behind show, status and reconciliation.
//
// The ledger knows nothing of HTTP: callers hand it decoded, already
// verified payloads together with their signed JWS.
//
// Every method of a Ledger runs on the ledger's connection: the pool for a
// Ledger from New, the caller's transaction for one from WithTx. To combine
// ledger writes with River inserts atomically, begin a transaction on
// Pool, and call the ledger's methods on WithTx(tx).
package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotFound is returned when the ledger holds nothing for an id.
var ErrNotFound = errors.New("not found")

// ErrNotInTransaction is returned (wrapped, naming the method) by the methods
// that only make sense inside the caller's transaction, such as
// LockSubscriptions, when called on a Ledger from New rather than WithTx.
var ErrNotInTransaction = errors.New("must run in a transaction")

// Querier is what the ledger needs of a connection: a pool or a transaction
// (*pgxpool.Pool and pgx.Tx both satisfy it). Begin starts a transaction on a
// pool and a savepoint on a transaction.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Ledger reads and writes the ledger tables through one Querier: a pool
// (New) or a caller's transaction (WithTx). A Ledger is safe for concurrent
// use when it runs on a pool; one from WithTx is as safe as its transaction
// (that is, not: use it from the goroutine that owns tx).
type Ledger struct {
	db Querier // where every method runs
	// pool is what Pool returns; a WithTx ledger keeps its origin's, so
	// code handed either kind can still start River clients and transactions.
	pool *pgxpool.Pool
	// rules maps products to entitlements (nil: nothing is granted); kept
	// by WithTx so that events written inside a caller's transaction see
	// the same entitlements as lookups.
	rules EntitlementRules
}

// New returns a Ledger over pool. The schema must be migrated
// (migrations.Migrate).
func New(pool *pgxpool.Pool) *Ledger { return &Ledger{db: pool, pool: pool} }

// WithTx returns a ledger whose every method runs inside tx, so ledger
// writes commit or roll back with whatever else the caller does in tx (River
// inserts above all). It is cheap: one small struct, nothing else allocated
// and no round trip, so call it per transaction (or per call). The caller
// owns tx: the ledger never commits or rolls it back, and the returned ledger
// must not be used after tx ends. Calling WithTx on a WithTx ledger switches
// to the new tx. A nil tx panics: it is a programming error, and running on
// the pool instead would silently drop the atomicity the caller asked for.
func (l *Ledger) WithTx(tx pgx.Tx) *Ledger {
	if tx == nil {
		panic("ledger: WithTx(nil)")
	}
	return &Ledger{db: tx, pool: l.pool, rules: l.rules}
}

// Pool returns the pool the ledger came from, also on a WithTx ledger. Use it
// for River clients and to begin transactions; for queries, call the
// ledger's methods instead.
func (l *Ledger) Pool() *pgxpool.Pool { return l.pool }

// Ping checks that the database answers, through the pool (also on a WithTx
// ledger): it is a health check of the database, not of a transaction.
func (l *Ledger) Ping(ctx context.Context) error { return l.pool.Ping(ctx) }

// tx returns the caller's transaction a WithTx ledger runs in, or nil on a
// pool-backed ledger.
func (l *Ledger) tx() pgx.Tx {
	tx, _ := l.db.(pgx.Tx)
	return tx
}

// requireTx is the guard of methods that only make sense inside the caller's
// transaction (row locks, several statements that must commit together).
func (l *Ledger) requireTx(method string) error {
	if l.tx() != nil {
		return nil
	}
	return fmt.Errorf("ledger: %s %w: call it on Ledger.WithTx(tx)", method, ErrNotInTransaction)
}

// inTx runs fn on a ledger inside a transaction: l itself when it already
// runs in the caller's, else on a transaction begun from l.db and committed
// when fn returns nil. A WithTx ledger gets no savepoint: the caller's
// transaction already makes fn atomic (an error makes the caller roll back),
// and a savepoint would add two round trips and a subtransaction to every
// job that calls fn.
func (l *Ledger) inTx(ctx context.Context, fn func(l *Ledger) error) error {
	if l.tx() != nil {
		return fn(l)
	}
	return pgx.BeginFunc(ctx, l.db, func(tx pgx.Tx) error { return fn(l.WithTx(tx)) })
}
