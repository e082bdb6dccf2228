package ledger

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// chainSet is the distinct certificate chains of one write, to insert in
// the same transaction as the rows naming them (certificate_chains has no
// foreign key: see migration 011).
type chainSet struct {
	sha   [][]byte
	chain []string
	seen  map[string]struct{}
}

// add records chain under sha once; a nil sha (nothing compacted) is
// ignored.
func (c *chainSet) add(sha []byte, chain string) {
	if sha == nil {
		return
	}
	if _, ok := c.seen[string(sha)]; ok {
		return
	}
	if c.seen == nil {
		c.seen = make(map[string]struct{}, 1)
	}
	c.seen[string(sha)] = struct{}{}
	c.sha = append(c.sha, sha)
	c.chain = append(c.chain, chain)
}

// insertChainsSQL stores chains not stored yet. A chain already there
// costs an index probe and writes nothing.
const insertChainsSQL = `INSERT INTO certificate_chains (sha256, chain)
	SELECT * FROM unnest($1::bytea[], $2::text[]) ON CONFLICT (sha256) DO NOTHING`

// chainCache maps a chain's SHA-256 to its text. Chains are content
// addressed and never change, so one cache serves every Ledger and
// database; it holds at most chainCacheMax chains (Apple has a handful),
// beyond which lookups go to the database.
var (
	chainCache     sync.Map
	chainCacheSize atomic.Int64
)

const chainCacheMax = 256

// certificateChains returns the text of each chain in shas (nil entries
// skipped), keyed by string(sha), reading the database only for those not
// cached. A hash with no stored chain is an error naming it: the row
// naming it cannot be rebuilt.
func (l *Ledger) certificateChains(ctx context.Context, shas ...[]byte) (map[string]string, error) {
	out := make(map[string]string, len(shas))
	var missing [][]byte
	for _, sha := range shas {
		if sha == nil {
			continue
		}
		if _, ok := out[string(sha)]; ok {
			continue
		}
		if c, ok := chainCache.Load(string(sha)); ok {
			out[string(sha)] = c.(string)
			continue
		}
		out[string(sha)] = ""
		missing = append(missing, sha)
	}
	if len(missing) > 0 {
		rows, err := l.db.Query(ctx, `SELECT sha256, chain FROM certificate_chains WHERE sha256 = ANY($1)`, missing)
		if err != nil {
			return nil, fmt.Errorf("ledger: reading certificate chains: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var sha []byte
			var chain string
			if err := rows.Scan(&sha, &chain); err != nil {
				return nil, fmt.Errorf("ledger: reading certificate chains: %w", err)
			}
			out[string(sha)] = chain
			if chainCacheSize.Load() < chainCacheMax {
				if _, loaded := chainCache.LoadOrStore(string(sha), chain); !loaded {
					chainCacheSize.Add(1)
				}
			}
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("ledger: reading certificate chains: %w", err)
		}
	}
	for sha, chain := range out {
		if chain == "" {
			return nil, fmt.Errorf("ledger: certificate chain %x is not in certificate_chains: the rows naming it cannot be rebuilt", sha)
		}
	}
	return out, nil
}
