package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Online compaction: rows stored before migration 011 (or by a binary
// without it) hold their JWS with the certificate chain inside. A pass
// walks each table in primary key order, a batch at a time, rewriting rows
// to the compact form (CompactJWS, encodePayload); certificate_compaction
// holds each table's cursor. A batch's rows, the chains they name and the
// cursor commit in one transaction, so a crash or cancellation loses
// nothing and repeats nothing; a row is rewritten only if it is still
// uncompacted and unchanged since it was read, so a concurrent write (which
// stores the compact form itself) always wins; and the progress row is
// locked for the batch, so concurrent compactions take turns.

// CompactionTables are the tables a compaction pass walks, in order.
var CompactionTables = []string{"transactions", "renewal_infos", "notifications", "kept_aside_notifications"}

// DefaultCompactionBatch is CompactBatch's batch size when given none:
// about 1.5 MB of JWS read per batch (notifications are ~15 KB each).
const DefaultCompactionBatch = 100

// CompactionTable is one table's progress in the current pass.
type CompactionTable struct {
	Table string
	Pass  int
	// AfterKey is the primary key of the last row walked ("" before the
	// first batch).
	AfterKey string
	// Scanned counts the rows walked; Compacted those rewritten compact;
	// Kept those left as they are because their JWS would not rebuild
	// byte for byte (CompactJWS refused it). Rows already compact count
	// in Scanned only.
	Scanned, Compacted, Kept int64
	StartedAt                time.Time
	FinishedAt               *time.Time // nil while the walk goes on
}

// Compaction is the progress of the current pass, one entry per table of
// CompactionTables.
type Compaction []CompactionTable

// Done reports whether every table's walk has finished.
func (c Compaction) Done() bool {
	for _, t := range c {
		if t.FinishedAt == nil {
			return false
		}
	}
	return true
}

// Totals sums the counters of every table.
func (c Compaction) Totals() (scanned, compacted, kept int64) {
	for _, t := range c {
		scanned, compacted, kept = scanned+t.Scanned, compacted+t.Compacted, kept+t.Kept
	}
	return
}

// CompactionProgress returns the current pass's progress, in
// CompactionTables order.
func (l *Ledger) CompactionProgress(ctx context.Context) (Compaction, error) {
	rows, err := l.db.Query(ctx, `SELECT table_name, pass, after_key, scanned, compacted, kept, started_at, finished_at
		FROM certificate_compaction ORDER BY array_position($1::text[], table_name)`, CompactionTables)
	if err != nil {
		return nil, fmt.Errorf("ledger: reading compaction progress: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (CompactionTable, error) {
		var t CompactionTable
		err := r.Scan(&t.Table, &t.Pass, &t.AfterKey, &t.Scanned, &t.Compacted, &t.Kept, &t.StartedAt, &t.FinishedAt)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: reading compaction progress: %w", err)
	}
	return out, nil
}

// StartCompactionPass starts a new pass over every table when the current
// one is done, and reports whether it did; while a pass is unfinished it
// changes nothing (the pass goes on from its cursors). A new pass finds
// rows written compact-less since the last one (by an older binary during
// a rolling upgrade, say).
func (l *Ledger) StartCompactionPass(ctx context.Context) (bool, error) {
	tag, err := l.db.Exec(ctx, `UPDATE certificate_compaction SET pass = pass + 1, after_key = '', scanned = 0,
			compacted = 0, kept = 0, started_at = now(), finished_at = NULL
		WHERE NOT EXISTS (SELECT FROM certificate_compaction WHERE finished_at IS NULL)`)
	if err != nil {
		return false, fmt.Errorf("ledger: starting a compaction pass: %w", err)
	}
	return tag.RowsAffected() > 0, nil
}

// CompactBatch compacts the next batch of at most limit rows (zero or
// less: DefaultCompactionBatch) of the first table whose walk is
// unfinished, and reports whether the pass is done (then it did nothing).
// It may run twice, concurrently (callers take turns on the table's
// progress row) or after a crash. On a WithTx ledger it runs in the
// caller's transaction.
func (l *Ledger) CompactBatch(ctx context.Context, limit int) (done bool, err error) {
	if limit <= 0 {
		limit = DefaultCompactionBatch
	}
	err = l.inTx(ctx, func(l *Ledger) error {
		var table, after string
		err := l.db.QueryRow(ctx, `SELECT table_name, after_key FROM certificate_compaction WHERE finished_at IS NULL
			ORDER BY array_position($1::text[], table_name) LIMIT 1 FOR UPDATE`, CompactionTables).Scan(&table, &after)
		if isNoRows(err) {
			done = true
			return nil
		}
		if err != nil {
			return fmt.Errorf("ledger: reading compaction progress: %w", err)
		}
		var b compactionBatch
		switch table {
		case "transactions", "renewal_infos":
			err = l.compactJWSRows(ctx, table, after, limit, &b)
		case "notifications", "kept_aside_notifications":
			err = l.compactPayloadRows(ctx, table, after, limit, &b)
		default:
			err = fmt.Errorf("ledger: certificate_compaction names unknown table %q", table)
		}
		if err != nil {
			return err
		}
		if b.scanned > 0 {
			after = b.last
		}
		_, err = l.db.Exec(ctx, `UPDATE certificate_compaction SET after_key = $2, scanned = scanned + $3,
				compacted = compacted + $4, kept = kept + $5, finished_at = CASE WHEN $6 THEN now() END
			WHERE table_name = $1`, table, after, b.scanned, b.compacted, b.kept, b.scanned < int64(limit))
		if err != nil {
			return fmt.Errorf("ledger: saving compaction progress of %s: %w", table, err)
		}
		return nil
	})
	return done, err
}

// compactionBatch counts one batch's rows; last is the key of the last
// row walked.
type compactionBatch struct {
	last                     string
	scanned, compacted, kept int64
}

// compactJWSRows compacts a batch of transactions or renewal_infos.
func (l *Ledger) compactJWSRows(ctx context.Context, table, after string, limit int, b *compactionBatch) error {
	key := map[string]string{"transactions": "transaction_id", "renewal_infos": "original_transaction_id"}[table]
	rows, err := l.db.Query(ctx, `SELECT `+key+`, jws, jws_chain IS NOT NULL FROM `+table+`
		WHERE `+key+` > $1 ORDER BY `+key+` LIMIT $2`, after, limit)
	if err != nil {
		return fmt.Errorf("ledger: reading %s to compact: %w", table, err)
	}
	var ids, olds, news []string
	var shas [][]byte
	var chains chainSet
	for rows.Next() {
		var id, jws string
		var compact bool
		if err := rows.Scan(&id, &jws, &compact); err != nil {
			rows.Close()
			return fmt.Errorf("ledger: reading %s to compact: %w", table, err)
		}
		b.scanned++
		b.last = id
		if compact {
			continue
		}
		s := compactForStorage(jws)
		if s.chainSHA == nil {
			b.kept++
			continue
		}
		chains.add(s.chainSHA, s.chain)
		ids, olds, news, shas = append(ids, id), append(olds, jws), append(news, s.jws), append(shas, s.chainSHA)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("ledger: reading %s to compact: %w", table, err)
	}
	if len(ids) == 0 {
		return nil
	}
	if _, err := l.db.Exec(ctx, insertChainsSQL, chains.sha, chains.chain); err != nil {
		return fmt.Errorf("ledger: storing certificate chains: %w", err)
	}
	// Unchanged since read (t.jws = v.old): a newer version written
	// meanwhile is already compact and stays.
	tag, err := l.db.Exec(ctx, `UPDATE `+table+` t SET jws = v.jws, jws_chain = v.sha
		FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[]) AS v(id, old, jws, sha)
		WHERE t.`+key+` = v.id AND t.jws_chain IS NULL AND t.jws = v.old`, ids, olds, news, shas)
	if err != nil {
		return fmt.Errorf("ledger: compacting %s: %w", table, err)
	}
	b.compacted += tag.RowsAffected()
	return nil
}

// compactPayloadRows compacts a batch of notifications or
// kept_aside_notifications (their signedPayload never changes once stored,
// so a row still without a chain is a row still to compact).
func (l *Ledger) compactPayloadRows(ctx context.Context, table, after string, limit int, b *compactionBatch) error {
	where := ""
	args := []any{limit}
	if after != "" {
		where, args = "WHERE notification_uuid > $2::uuid", append(args, after)
	}
	rows, err := l.db.Query(ctx, `SELECT notification_uuid::text, signed_payload, signed_payload_decoded,
			payload_chain IS NOT NULL FROM `+table+` `+where+` ORDER BY notification_uuid LIMIT $1`, args...)
	if err != nil {
		return fmt.Errorf("ledger: reading %s to compact: %w", table, err)
	}
	var ids []string
	var signed, decoded []*string
	var shas [][]byte
	var chains chainSet
	for rows.Next() {
		var id string
		var s, d *string
		var compact bool
		if err := rows.Scan(&id, &s, &d, &compact); err != nil {
			rows.Close()
			return fmt.Errorf("ledger: reading %s to compact: %w", table, err)
		}
		b.scanned++
		b.last = id
		if compact {
			continue
		}
		p, err := rowPayload(s, d, nil, nil)
		if err != nil {
			rows.Close()
			return err
		}
		original, err := p.rebuild()
		if err != nil {
			rows.Close()
			return fmt.Errorf("ledger: %s %s: %w", table, id, err)
		}
		n := encodePayload(original)
		if n.ChainSHA == nil {
			b.kept++
			continue
		}
		chains.add(n.ChainSHA, n.Chain)
		ids, shas = append(ids, id), append(shas, n.ChainSHA)
		if n.Decoded != "" {
			signed, decoded = append(signed, nil), append(decoded, &n.Decoded)
		} else {
			signed, decoded = append(signed, &n.Signed), append(decoded, nil)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("ledger: reading %s to compact: %w", table, err)
	}
	if len(ids) == 0 {
		return nil
	}
	if _, err := l.db.Exec(ctx, insertChainsSQL, chains.sha, chains.chain); err != nil {
		return fmt.Errorf("ledger: storing certificate chains: %w", err)
	}
	tag, err := l.db.Exec(ctx, `UPDATE `+table+` t SET signed_payload = v.signed, signed_payload_decoded = v.decoded,
			payload_chain = v.sha
		FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bytea[]) AS v(id, signed, decoded, sha)
		WHERE t.notification_uuid = v.id AND t.payload_chain IS NULL`, ids, signed, decoded, shas)
	if err != nil {
		return fmt.Errorf("ledger: compacting %s: %w", table, err)
	}
	b.compacted += tag.RowsAffected()
	return nil
}
