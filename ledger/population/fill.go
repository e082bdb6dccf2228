package population

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/storesync/storesync/ledger"
)

// Result counts what Fill wrote and how long it took.
type Result struct {
	Subscriptions, Customers, Transactions, RenewalInfos, Notifications, Events, ImportRows int64
	ReconcileRuns, Drift, Conflicts                                                         int64
	// Signatures is how many JWS Fill signed (every transaction, renewal
	// info and notification: none is copied from another).
	Signatures int64
	// ImportRun is the id of the import run the older subscriptions came
	// from.
	ImportRun int64
	Elapsed   time.Duration
}

// chunkSize is how many subscriptions one COPY transaction carries: big
// enough that COPY's per-statement cost vanishes, small enough that a
// chunk's signed rows (≈ 40 KB a subscription) stay a few tens of MB.
const chunkSize = 1000

// Fill builds the ledger opts describes into the migrated, empty database
// of pool (it refuses one that holds subscriptions) and ANALYZEs it. It
// copies chunks of consecutive subscriptions with opts.Streams COPY
// streams, each chunk in one transaction of its own with synchronous
// commit off (a crash loses at most the last chunks, and a generator is
// simply run again on a fresh database). On error or cancellation the
// chunks already committed stay.
//
// The pool needs opts.Streams connections free.
func Fill(ctx context.Context, pool *pgxpool.Pool, opts Options) (*Result, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM subscriptions)`).Scan(&exists); err != nil {
		return nil, fmt.Errorf("population: reading the ledger: %w", err)
	}
	if exists {
		return nil, errors.New("population: the ledger already holds subscriptions: Fill builds into an empty, migrated database (create a new one)")
	}
	b := &builder{o: o, importAt: o.Now.AddDate(0, 0, -35)}
	res := &Result{}
	if err := pool.QueryRow(ctx, `INSERT INTO import_runs (source, total_rows, enqueued, started_at, finished_at)
		VALUES ('population.csv', 0, 0, $1, $2) RETURNING id`, b.importAt, b.importAt.Add(26*time.Hour)).Scan(&b.importRun); err != nil {
		return nil, fmt.Errorf("population: recording the import run: %w", err)
	}
	res.ImportRun = b.importRun
	// The CA's chain, stored before the chunks: inserted by each, the key
	// would make every chunk wait for the previous one's commit.
	if b.knownChain, err = storeChain(ctx, pool, o); err != nil {
		return nil, err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	starts := make(chan int)
	var (
		mu       sync.Mutex
		firstErr error
		sigs     atomic.Int64
		counts   = map[string]int64{}
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	var wg sync.WaitGroup
	for range o.Streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for from := range starts {
				c := &chunk{rows: map[string][][]any{}}
				for i := from; i < min(from+chunkSize, o.Subscriptions); i++ {
					if err := b.build(c, i); err != nil {
						fail(fmt.Errorf("population: building subscription %d: %w", i, err))
						return
					}
				}
				if err := copyChunk(ctx, pool, b, c); err != nil {
					fail(err)
					return
				}
				sigs.Add(c.signatures)
				mu.Lock()
				for t, rows := range c.rows {
					counts[t] += int64(len(rows))
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for from := 0; from < o.Subscriptions; from += chunkSize {
		select {
		case starts <- from:
		case <-ctx.Done():
			break feed
		}
	}
	close(starts)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res.Subscriptions, res.Customers, res.Transactions = counts["subscriptions"], counts["customers"], counts["transactions"]
	res.RenewalInfos, res.Notifications, res.Events = counts["renewal_infos"], counts["notifications"], counts["subscription_events"]
	res.ImportRows, res.Signatures = counts["import_rows"], sigs.Load()
	if err := finish(ctx, pool, o, b, res); err != nil {
		return nil, err
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

// copyChunk copies c's rows, table by table, in one transaction.
func copyChunk(ctx context.Context, pool *pgxpool.Pool, b *builder, c *chunk) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// A generated ledger is rebuilt, not recovered: no need to wait
		// for each chunk's WAL flush.
		if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
			return err
		}
		// The rows' chains, in their transaction (as every ledger writer
		// stores them; there is no foreign key to wait for).
		for sha, chain := range c.chains {
			if sha == b.knownChain {
				continue
			}
			if _, err := tx.Exec(ctx, `INSERT INTO certificate_chains (sha256, chain) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
				[]byte(sha), chain); err != nil {
				return fmt.Errorf("population: storing a certificate chain: %w", err)
			}
		}
		for _, t := range tables {
			rows := c.rows[t]
			if len(rows) == 0 {
				continue
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{t}, copyColumns(t), pgx.CopyFromRows(rows)); err != nil {
				return fmt.Errorf("population: copying %d rows into %s: %w", len(rows), t, err)
			}
		}
		return nil
	})
}

// storeChain stores the certificate chain of o.CA's signatures and returns
// its SHA-256 (as a string key; "" when the ledger keeps JWS whole).
func storeChain(ctx context.Context, pool *pgxpool.Pool, o Options) (string, error) {
	sample, err := o.CA.SignJSON([]byte(`{}`))
	if err != nil {
		return "", fmt.Errorf("population: signing with Options.CA: %w", err)
	}
	_, sha, chain, ok := ledger.CompactJWS(sample)
	if !ok {
		return "", nil
	}
	if _, err := pool.Exec(ctx, `INSERT INTO certificate_chains (sha256, chain) VALUES ($1, $2) ON CONFLICT DO NOTHING`, sha, chain); err != nil {
		return "", fmt.Errorf("population: storing the certificate chain: %w", err)
	}
	return string(sha), nil
}
