package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// AppAccountTokenChange is one appAccountToken storesync set (or tried to
// set) at Apple for a subscription.
type AppAccountTokenChange struct {
	OriginalTransactionID string     `json:"originalTransactionId"`
	OldToken              string     `json:"oldToken,omitempty"` // "" when Apple had none
	NewToken              string     `json:"newToken"`
	Actor                 string     `json:"actor"`
	RequestedAt           time.Time  `json:"requestedAt"`
	AppliedAt             *time.Time `json:"appliedAt,omitempty"` // nil until Apple accepted it
	Error                 string     `json:"error,omitempty"`
}

// RequestAppAccountTokenChange records, before Apple is called, that job
// jobID sets otid's token from old ("" for none) to new on behalf of
// actor. Recording the same job twice changes nothing (a retried job).
func (l *Ledger) RequestAppAccountTokenChange(ctx context.Context, jobID int64, otid, old, new, actor string) error {
	if !isUUID(new) || (old != "" && !isUUID(old)) {
		return fmt.Errorf("ledger: appAccountToken change of %s: %q → %q: tokens must be UUIDs", otid, old, new)
	}
	_, err := l.db.Exec(ctx, `INSERT INTO app_account_token_changes (job_id, original_transaction_id, old_token, new_token, actor)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (job_id) DO NOTHING`, jobID, otid, uuidOrNil(old), new, actor)
	if err != nil {
		return fmt.Errorf("ledger: recording the appAccountToken change of %s: %w", otid, err)
	}
	return nil
}

// FinishAppAccountTokenChange completes job jobID's record: applied when
// failure is "", else the reason Apple refused.
func (l *Ledger) FinishAppAccountTokenChange(ctx context.Context, jobID int64, failure string) error {
	var err error
	if failure == "" {
		_, err = l.db.Exec(ctx, `UPDATE app_account_token_changes SET applied_at = COALESCE(applied_at, now()), error = NULL WHERE job_id = $1`, jobID)
	} else {
		_, err = l.db.Exec(ctx, `UPDATE app_account_token_changes SET error = $2 WHERE job_id = $1 AND applied_at IS NULL`, jobID, failure)
	}
	if err != nil {
		return fmt.Errorf("ledger: completing the appAccountToken change of job %d: %w", jobID, err)
	}
	return nil
}

// AppAccountTokenChanges returns the recorded token changes of otid,
// oldest first.
func (l *Ledger) AppAccountTokenChanges(ctx context.Context, otid string) ([]AppAccountTokenChange, error) {
	rows, err := l.db.Query(ctx, `SELECT original_transaction_id, COALESCE(old_token::text, ''), new_token::text, actor,
		requested_at, applied_at, COALESCE(error, '') FROM app_account_token_changes WHERE original_transaction_id = $1 ORDER BY id`, otid)
	if err != nil {
		return nil, fmt.Errorf("ledger: reading appAccountToken changes: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (AppAccountTokenChange, error) {
		var c AppAccountTokenChange
		err := r.Scan(&c.OriginalTransactionID, &c.OldToken, &c.NewToken, &c.Actor, &c.RequestedAt, &c.AppliedAt, &c.Error)
		return c, err
	})
}

// OwnershipType returns the inAppOwnershipType of otid's latest
// transaction (PURCHASED, FAMILY_SHARED), "" when the ledger has none:
// Apple refuses to set tokens on family-shared purchases.
func (l *Ledger) OwnershipType(ctx context.Context, otid string) (string, error) {
	var t string
	err := l.db.QueryRow(ctx, `SELECT in_app_ownership_type FROM transactions WHERE original_transaction_id = $1
		ORDER BY purchase_date DESC LIMIT 1`, otid).Scan(&t)
	if err == pgx.ErrNoRows {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("ledger: ownership of %s: %w", otid, err)
	}
	return t, nil
}
