package ledger

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
)

// Import row states: a row is pending until its job has stored the
// subscription (done) or given up on it for good (failed, with a reason).
const (
	ImportPending = "pending"
	ImportDone    = "done"
	ImportFailed  = "failed"
)

// ImportRow is one validated row of an import file. Empty strings mean the
// file did not give that column.
type ImportRow struct {
	OriginalTransactionID string
	AppAccountToken       string
	CustomerID            string
}

// ImportRowState is an import row as stored.
type ImportRowState struct {
	ImportRow
	RunID int64
	State string
	Error string
	// CreatedAt is when the row was first imported; StatusesFetchedAt when
	// the statuses of its Apple account were fetched (by its own job or by
	// the job of another row of the same account), nil before.
	CreatedAt         time.Time
	StatusesFetchedAt *time.Time
}

// CreateImportRun records the start of an import of source (a file name,
// or "-" for standard input) and returns its id.
func (l *Ledger) CreateImportRun(ctx context.Context, source string) (int64, error) {
	var id int64
	if err := l.db.QueryRow(ctx, `INSERT INTO import_runs (source) VALUES ($1) RETURNING id`, source).Scan(&id); err != nil {
		return 0, fmt.Errorf("ledger: recording the import run: %w", err)
	}
	return id, nil
}

// InsertImportRows stores rows as pending rows of run and returns those that
// were new: an originalTransactionId already imported (by any run, or
// earlier in rows) is left as it is, so importing a file twice adds nothing.
// Rows are inserted in id order, so concurrent batches sharing ids cannot
// deadlock.
func (l *Ledger) InsertImportRows(ctx context.Context, runID int64, rows []ImportRow) ([]ImportRow, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	sorted := make([]ImportRow, len(rows))
	copy(sorted, rows)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].OriginalTransactionID < sorted[j].OriginalTransactionID })
	ids := make([]string, len(sorted))
	tokens := make([]*string, len(sorted))
	customers := make([]*string, len(sorted))
	for i := range sorted {
		r := &sorted[i]
		ids[i] = r.OriginalTransactionID
		if r.AppAccountToken != "" {
			tokens[i] = &r.AppAccountToken
		}
		if r.CustomerID != "" {
			customers[i] = &r.CustomerID
		}
	}
	out, err := l.db.Query(ctx, `INSERT INTO import_rows (original_transaction_id, run_id, app_account_token, customer_id)
		SELECT r.id, $1, r.token, r.customer
		FROM unnest($2::text[], $3::uuid[], $4::text[]) WITH ORDINALITY AS r (id, token, customer, n)
		ORDER BY r.n
		ON CONFLICT (original_transaction_id) DO NOTHING
		RETURNING original_transaction_id, COALESCE(app_account_token::text, ''), COALESCE(customer_id, '')`,
		runID, ids, tokens, customers)
	if err != nil {
		return nil, fmt.Errorf("ledger: storing import rows: %w", err)
	}
	fresh, err := pgx.CollectRows(out, pgx.RowToStructByPos[ImportRow])
	if err != nil {
		return nil, fmt.Errorf("ledger: storing import rows: %w", err)
	}
	return fresh, nil
}

// ImportCounts are the totals of reading one import file.
type ImportCounts struct {
	Rows       int64 // data rows read (header excluded)
	Rejected   int64 // rows that failed validation
	Duplicates int64 // valid rows already imported, earlier in the file or by an earlier run
	Enqueued   int64 // new rows, each with its job
}

// FinishImportRun records that run's file was read completely.
func (l *Ledger) FinishImportRun(ctx context.Context, runID int64, c ImportCounts) error {
	_, err := l.db.Exec(ctx, `UPDATE import_runs SET total_rows = $2, rejected_rows = $3, duplicate_rows = $4,
		enqueued = $5, finished_at = now() WHERE id = $1`, runID, c.Rows, c.Rejected, c.Duplicates, c.Enqueued)
	if err != nil {
		return fmt.Errorf("ledger: finishing import run %d: %w", runID, err)
	}
	return nil
}

// ImportRowOf returns the stored import row of a subscription, or
// ErrNotFound.
func (l *Ledger) ImportRowOf(ctx context.Context, originalTransactionID string) (*ImportRowState, error) {
	var r ImportRowState
	err := l.db.QueryRow(ctx, `SELECT original_transaction_id, COALESCE(app_account_token::text, ''), COALESCE(customer_id, ''),
			run_id, state, COALESCE(error, ''), created_at, statuses_fetched_at
		FROM import_rows WHERE original_transaction_id = $1`, originalTransactionID).Scan(
		&r.OriginalTransactionID, &r.AppAccountToken, &r.CustomerID, &r.RunID, &r.State, &r.Error,
		&r.CreatedAt, &r.StatusesFetchedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("ledger: import row %s: %w", originalTransactionID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: reading import row %s: %w", originalTransactionID, err)
	}
	return &r, nil
}

// ImportedTokens returns the appAccountToken each of the subscriptions'
// import rows carried (lower-case UUID text), keyed by
// originalTransactionId. Subscriptions never imported, and rows without a
// token, are absent.
func (l *Ledger) ImportedTokens(ctx context.Context, originalTransactionIDs []string) (map[string]string, error) {
	out := map[string]string{}
	if len(originalTransactionIDs) == 0 {
		return out, nil
	}
	rows, err := l.db.Query(ctx, `SELECT original_transaction_id, app_account_token::text FROM import_rows
		WHERE original_transaction_id = ANY($1) AND app_account_token IS NOT NULL`, originalTransactionIDs)
	if err != nil {
		return nil, fmt.Errorf("ledger: reading imported tokens: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, token string
		if err := rows.Scan(&id, &token); err != nil {
			return nil, fmt.Errorf("ledger: reading imported tokens: %w", err)
		}
		out[id] = token
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: reading imported tokens: %w", err)
	}
	return out, nil
}

// MarkImportRowDone marks a pending import row done. A row already failed
// or done stays as it is.
func (l *Ledger) MarkImportRowDone(ctx context.Context, originalTransactionID string) error {
	_, err := l.db.Exec(ctx, `UPDATE import_rows SET state = 'done', error = NULL, updated_at = now()
		WHERE original_transaction_id = $1 AND state = 'pending'`, originalTransactionID)
	return err
}

// MarkImportRowFailed marks a pending import row failed for good, with the
// reason shown to ops (never a secret: Apple's error text or ours).
func (l *Ledger) MarkImportRowFailed(ctx context.Context, originalTransactionID, reason string) error {
	_, err := l.db.Exec(ctx, `UPDATE import_rows SET state = 'failed', error = $2, updated_at = now()
		WHERE original_transaction_id = $1 AND state = 'pending'`, originalTransactionID, reason)
	return err
}

// MarkStatusesFetched records that the statuses of the Apple account owning
// these subscriptions were fetched and applied now, so the jobs of their
// import rows need not ask again.
func (l *Ledger) MarkStatusesFetched(ctx context.Context, originalTransactionIDs []string) error {
	if len(originalTransactionIDs) == 0 {
		return nil
	}
	_, err := l.db.Exec(ctx, `UPDATE import_rows SET statuses_fetched_at = now()
		WHERE original_transaction_id = ANY($1) AND statuses_fetched_at IS NULL`, originalTransactionIDs)
	return err
}

// AcquireImportAccountLease takes the lease on an Apple account (key: a
// customer id or appAccountToken) for holder, for ttl. It reports false when
// another holder's lease has not expired; holder may renew its own.
func (l *Ledger) AcquireImportAccountLease(ctx context.Context, key, holder string, ttl time.Duration) (bool, error) {
	rows, err := l.db.Query(ctx, `INSERT INTO import_account_leases (account_key, holder, expires_at)
		VALUES ($1, $2, now() + $3::interval)
		ON CONFLICT (account_key) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE import_account_leases.expires_at < now() OR import_account_leases.holder = excluded.holder
		RETURNING holder`, key, holder, ttl)
	if err != nil {
		return false, err
	}
	held, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return len(held) == 1, err
}

// ReleaseImportAccountLease gives holder's lease on key back.
func (l *Ledger) ReleaseImportAccountLease(ctx context.Context, key, holder string) error {
	_, err := l.db.Exec(ctx, `DELETE FROM import_account_leases WHERE account_key = $1 AND holder = $2`, key, holder)
	return err
}

// ImportProgress counts the rows of one import run by state.
type ImportProgress struct {
	Total, Pending, Done, Failed int64
	// Current counts the rows whose current state is stored (their
	// account's statuses fetched), done or not; a done row has its full
	// history too. Rows imported before statuses were recorded count only
	// once done (Current may then be below Done).
	Current int64
	// CurrentWaiting counts the pending rows still without their current
	// state: what the statuses phase has left.
	CurrentWaiting int64
}

// Finished reports whether every row has been worked.
func (p ImportProgress) Finished() bool { return p.Pending == 0 }

// importProgressSQL sums a run's import_run_counts (total, pending, done,
// failed, current, current_waiting): counters the triggers of migrations
// 012 and 014 keep with every write of import_rows, so progress costs a few
// rows to read, not a count of the run's rows (a million on a big import,
// read on each status and each refresh of the ops overview). Keys
// 'current:<state>' count the rows of that state whose statuses are
// fetched, on top of their count under the state itself.
const importProgressSQL = `SELECT COALESCE(sum(n) FILTER (WHERE state NOT LIKE 'current:%'), 0)::bigint AS total,
	COALESCE(sum(n) FILTER (WHERE state = 'pending'), 0)::bigint AS pending,
	COALESCE(sum(n) FILTER (WHERE state = 'done'), 0)::bigint AS done,
	COALESCE(sum(n) FILTER (WHERE state = 'failed'), 0)::bigint AS failed,
	COALESCE(sum(n) FILTER (WHERE state LIKE 'current:%'), 0)::bigint AS current,
	(COALESCE(sum(n) FILTER (WHERE state = 'pending'), 0) - COALESCE(sum(n) FILTER (WHERE state = 'current:pending'), 0))::bigint AS current_waiting
	FROM import_run_counts`

// ImportProgressOf counts the rows of run by state.
func (l *Ledger) ImportProgressOf(ctx context.Context, runID int64) (ImportProgress, error) {
	var p ImportProgress
	err := l.db.QueryRow(ctx, importProgressSQL+` WHERE run_id = $1`, runID).Scan(&p.Total, &p.Pending, &p.Done, &p.Failed, &p.Current, &p.CurrentWaiting)
	if err != nil {
		return p, fmt.Errorf("ledger: counting rows of import run %d: %w", runID, err)
	}
	return p, nil
}

// ImportRun is one recorded import with its progress.
type ImportRun struct {
	ID         int64
	Source     string
	StartedAt  time.Time
	FinishedAt *time.Time // when the file was read completely; nil while reading (or if reading died)
	Counts     ImportCounts
	Progress   ImportProgress
}

// ImportRuns returns the latest import runs, newest first, at most limit.
func (l *Ledger) ImportRuns(ctx context.Context, limit int) ([]ImportRun, error) {
	rows, err := l.db.Query(ctx, `SELECT r.id, r.source, r.started_at, r.finished_at, r.total_rows, r.rejected_rows,
			r.duplicate_rows, r.enqueued, COALESCE(p.total, 0), COALESCE(p.pending, 0), COALESCE(p.done, 0), COALESCE(p.failed, 0),
			COALESCE(p.current, 0), COALESCE(p.current_waiting, 0)
		FROM (SELECT * FROM import_runs ORDER BY id DESC LIMIT $1) r
		LEFT JOIN LATERAL (`+importProgressSQL+` WHERE run_id = r.id) p ON true
		ORDER BY r.id DESC`, limit)
	if err != nil {
		return nil, fmt.Errorf("ledger: listing import runs: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (ImportRun, error) {
		var r ImportRun
		err := row.Scan(&r.ID, &r.Source, &r.StartedAt, &r.FinishedAt, &r.Counts.Rows, &r.Counts.Rejected,
			&r.Counts.Duplicates, &r.Counts.Enqueued, &r.Progress.Total, &r.Progress.Pending, &r.Progress.Done,
			&r.Progress.Failed, &r.Progress.Current, &r.Progress.CurrentWaiting)
		return r, err
	})
}

// ImportFailure is one reason rows of a run failed, and how many.
type ImportFailure struct {
	Reason string
	Rows   int64
}

// ImportFailures returns the most common failure reasons of run, at most
// limit, most frequent first.
func (l *Ledger) ImportFailures(ctx context.Context, runID int64, limit int) ([]ImportFailure, error) {
	rows, err := l.db.Query(ctx, `SELECT COALESCE(error, ''), count(*) FROM import_rows
		WHERE run_id = $1 AND state = 'failed' GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $2`, runID, limit)
	if err != nil {
		return nil, fmt.Errorf("ledger: listing failures of import run %d: %w", runID, err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[ImportFailure])
}
