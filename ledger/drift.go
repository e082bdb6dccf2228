package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// DriftClass classifies a difference reconciliation found between the
// ledger and Apple.
type DriftClass string

// Drift classes. The *_at_apple classes name the status Apple reports that
// the ledger did not hold.
const (
	// DriftMissingNotification: Apple's notification history holds a
	// notification the ledger never received.
	DriftMissingNotification DriftClass = "missing_notification"
	// DriftMissingTransaction: Apple holds a transaction (or a whole
	// subscription of the account) the ledger lacks.
	DriftMissingTransaction  DriftClass = "missing_transaction"
	DriftExpiredAtApple      DriftClass = "expired_at_apple"
	DriftActiveAtApple       DriftClass = "active_at_apple"
	DriftRevokedAtApple      DriftClass = "revoked_at_apple"
	DriftBillingRetryAtApple DriftClass = "billing_retry_at_apple"
	DriftGracePeriodAtApple  DriftClass = "grace_period_at_apple"
	DriftRenewalChanged      DriftClass = "renewal_changed"    // expiresDate, latest transaction or product moved
	DriftAutoRenewChanged    DriftClass = "auto_renew_changed" // autoRenewStatus flipped
	DriftCustomerConflict    DriftClass = "customer_conflict"  // appAccountToken differs
)

// DriftClasses lists every class in the order summaries print them.
var DriftClasses = []DriftClass{
	DriftMissingNotification, DriftMissingTransaction, DriftExpiredAtApple, DriftActiveAtApple,
	DriftRevokedAtApple, DriftBillingRetryAtApple, DriftGracePeriodAtApple, DriftRenewalChanged,
	DriftAutoRenewChanged, DriftCustomerConflict,
}

// DriftClassForStatus is the class of a status difference when Apple
// reports status (1–5); "" for anything else.
func DriftClassForStatus(status int) DriftClass {
	switch status {
	case 1:
		return DriftActiveAtApple
	case 2:
		return DriftExpiredAtApple
	case 3:
		return DriftBillingRetryAtApple
	case 4:
		return DriftGracePeriodAtApple
	case 5:
		return DriftRevokedAtApple
	}
	return ""
}

// Drift is one difference: what the ledger held in Field and what Apple
// says, recorded before the ledger is repaired.
type Drift struct {
	ID                    int64      `json:"id,omitempty"`
	RunID                 int64      `json:"runId,omitempty"`
	OriginalTransactionID string     `json:"originalTransactionId"`
	Class                 DriftClass `json:"class"`
	Field                 string     `json:"field"`
	LedgerValue           string     `json:"ledgerValue"`
	AppleValue            string     `json:"appleValue"`
	FoundAt               time.Time  `json:"foundAt"`
	RepairedAt            *time.Time `json:"repairedAt,omitempty"`
}

// RecordDrift stores ds as findings of run runID (0: outside any run) and
// returns their ids in order. Call it before applying the facts that repair
// them, on WithTx of the same transaction, so a difference is never repaired
// unrecorded. An empty ds stores nothing.
func (l *Ledger) RecordDrift(ctx context.Context, runID int64, ds []Drift) ([]int64, error) {
	if len(ds) == 0 {
		return nil, nil
	}
	otids := make([]string, len(ds))
	classes := make([]string, len(ds))
	fields := make([]string, len(ds))
	ours := make([]string, len(ds))
	apples := make([]string, len(ds))
	for i, d := range ds {
		if d.OriginalTransactionID == "" || d.Class == "" || d.Field == "" {
			return nil, fmt.Errorf("ledger: RecordDrift: finding %d needs an originalTransactionId, a class and a field", i)
		}
		otids[i], classes[i], fields[i], ours[i], apples[i] = d.OriginalTransactionID, string(d.Class), d.Field, d.LedgerValue, d.AppleValue
	}
	rows, err := l.db.Query(ctx, `INSERT INTO drift (run_id, original_transaction_id, class, field, ledger_value, apple_value)
		SELECT NULLIF($1::bigint, 0), o, c, f, lv, av
		FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY AS x(o, c, f, lv, av, n)
		ORDER BY n RETURNING id`, runID, otids, classes, fields, ours, apples)
	if err != nil {
		return nil, fmt.Errorf("ledger: recording drift: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("ledger: recording drift: %w", err)
	}
	return ids, nil
}

// MarkDriftRepaired records that the findings ids no longer hold: the
// ledger now agrees with Apple on them.
func (l *Ledger) MarkDriftRepaired(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := l.db.Exec(ctx, `UPDATE drift SET repaired_at = now() WHERE id = ANY($1) AND repaired_at IS NULL`, ids)
	if err != nil {
		return fmt.Errorf("ledger: marking drift repaired: %w", err)
	}
	return nil
}

// RecordNewTransactionsAsDrift records, as repaired missing_transaction
// findings of run runID, every transaction of the subscription inserted by
// the caller's transaction (created_at is the transaction's start time).
// Call it from a history page's checkpoint: the page brought them, so they
// were missing. It returns how many it recorded.
//
// It must run on Ledger.WithTx of the transaction that applied the page: on
// a pool each statement is its own transaction, which inserted nothing, so
// on a pool-backed ledger it returns an error wrapping ErrNotInTransaction.
func (l *Ledger) RecordNewTransactionsAsDrift(ctx context.Context, runID int64, originalTransactionID string) (int64, error) {
	if err := l.requireTx("RecordNewTransactionsAsDrift"); err != nil {
		return 0, err
	}
	tag, err := l.db.Exec(ctx, `INSERT INTO drift (run_id, original_transaction_id, class, field, ledger_value, apple_value, repaired_at)
		SELECT NULLIF($1::bigint, 0), t.original_transaction_id, $3, 'transaction_id', '', t.transaction_id, now()
		FROM transactions t WHERE t.original_transaction_id = $2 AND t.created_at = now()
		ORDER BY t.purchase_date, t.transaction_id`, runID, originalTransactionID, string(DriftMissingTransaction))
	if err != nil {
		return 0, fmt.Errorf("ledger: recording missing transactions: %w", err)
	}
	return tag.RowsAffected(), nil
}

// PendingHistoryDrift returns, by subscription, the unrepaired
// missing_transaction findings of field transaction_id: a check saw a
// transaction at Apple the ledger lacked and has not yet paged the history
// that brings the ones before it. They make the next check page it, so a
// job that died in between loses nothing.
func (l *Ledger) PendingHistoryDrift(ctx context.Context, originalTransactionIDs []string) (map[string][]int64, error) {
	out := map[string][]int64{}
	if len(originalTransactionIDs) == 0 {
		return out, nil
	}
	rows, err := l.db.Query(ctx, `SELECT original_transaction_id, id FROM drift
		WHERE original_transaction_id = ANY($1) AND class = $2 AND field = 'transaction_id' AND repaired_at IS NULL
		ORDER BY id`, originalTransactionIDs, string(DriftMissingTransaction))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var otid string
		var id int64
		if err := rows.Scan(&otid, &id); err != nil {
			return nil, err
		}
		out[otid] = append(out[otid], id)
	}
	return out, rows.Err()
}

// DriftOfRun returns every finding of a run, in the order found.
func (l *Ledger) DriftOfRun(ctx context.Context, runID int64) ([]Drift, error) {
	rows, err := l.db.Query(ctx, `SELECT id, COALESCE(run_id, 0), original_transaction_id, class, field,
		ledger_value, apple_value, found_at, repaired_at FROM drift WHERE run_id = $1 ORDER BY id`, runID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Drift, error) {
		var d Drift
		var class string
		err := row.Scan(&d.ID, &d.RunID, &d.OriginalTransactionID, &class, &d.Field, &d.LedgerValue,
			&d.AppleValue, &d.FoundAt, &d.RepairedAt)
		d.Class = DriftClass(class)
		return d, err
	})
}

// LockSubscriptions returns the ledger's view of the given subscriptions,
// locking their rows until the caller's transaction ends, so that a
// comparison with Apple and the repair that follows see no concurrent change
// in between. A subscription the ledger holds no facts about (unknown, or
// imported but never synced) is absent from the map. Rows are created and
// locked in id order, as Apply does, so the two cannot deadlock.
//
// A lock taken on a pool would end with its statement, so it must run on
// Ledger.WithTx; on a pool-backed ledger it returns an error wrapping
// ErrNotInTransaction.
func (l *Ledger) LockSubscriptions(ctx context.Context, ids []string) (map[string]*Subscription, error) {
	if err := l.requireTx("LockSubscriptions"); err != nil {
		return nil, err
	}
	if _, err := l.db.Exec(ctx, `INSERT INTO subscriptions (original_transaction_id)
		SELECT id FROM unnest($1::text[]) AS id ORDER BY id ON CONFLICT DO NOTHING`, ids); err != nil {
		return nil, fmt.Errorf("ledger: creating subscriptions: %w", err)
	}
	rows, err := l.db.Query(ctx, subscriptionSelect+` WHERE s.original_transaction_id = ANY($1)
		ORDER BY s.original_transaction_id FOR UPDATE OF s`, ids)
	if err != nil {
		return nil, fmt.Errorf("ledger: locking subscriptions: %w", err)
	}
	subs, err := collectSubscriptions(rows)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*Subscription, len(subs))
	for _, s := range subs {
		if s.TransactionCount > 0 || s.LastSignedDate != nil {
			out[s.OriginalTransactionID] = s
		}
	}
	return out, nil
}

// KnownTransactions returns which of the transaction ids the ledger holds.
func (l *Ledger) KnownTransactions(ctx context.Context, transactionIDs []string) (map[string]bool, error) {
	out := make(map[string]bool, len(transactionIDs))
	if len(transactionIDs) == 0 {
		return out, nil
	}
	rows, err := l.db.Query(ctx, `SELECT transaction_id FROM transactions WHERE transaction_id = ANY($1)`, transactionIDs)
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}
