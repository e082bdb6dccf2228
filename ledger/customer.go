package ledger

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Conflict is a disagreement between what storesync was told (an import
// row) and Apple, kept for ops instead of silently overwriting either side.
type Conflict struct {
	OriginalTransactionID string `json:"originalTransactionId"`
	Field                 string `json:"field"`
	OurValue              string `json:"ourValue"`
	AppleValue            string `json:"appleValue"`
	Source                string `json:"source"`
}

// LinkCustomer records that the company's customer owns a subscription: the
// customer id (and its appAccountToken) from an import row. One customer per
// subscription: a different customer id already linked, or an appAccountToken
// that disagrees with Apple's, is recorded as a conflict and changes nothing.
// Empty arguments are ignored. It returns the conflicts found (already
// recorded ones included, so it is idempotent).
func (l *Ledger) LinkCustomer(ctx context.Context, originalTransactionID, appAccountToken, customerID, source string) ([]Conflict, error) {
	if appAccountToken != "" && !isUUID(appAccountToken) {
		return nil, fmt.Errorf("ledger: appAccountToken %q is not a UUID", appAccountToken)
	}
	if customerID != "" {
		if _, err := l.db.Exec(ctx, `INSERT INTO customers (customer_id, app_account_token) VALUES ($1, $2)
			ON CONFLICT (customer_id) DO UPDATE SET app_account_token = COALESCE(customers.app_account_token, excluded.app_account_token),
			updated_at = now()`, customerID, uuidOrNil(appAccountToken)); err != nil {
			return nil, fmt.Errorf("ledger: storing customer: %w", err)
		}
	}
	var linked, appleToken string
	err := l.db.QueryRow(ctx, `SELECT COALESCE(customer_id, ''), COALESCE(app_account_token::text, '')
		FROM subscriptions WHERE original_transaction_id = $1 FOR UPDATE`, originalTransactionID).Scan(&linked, &appleToken)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("ledger: subscription %s: %w", originalTransactionID, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var conflicts []Conflict
	switch {
	case customerID == "":
	case linked == "":
		if err := l.linkWithEvent(ctx, originalTransactionID, customerID); err != nil {
			return nil, err
		}
	case linked != customerID:
		conflicts = append(conflicts, Conflict{originalTransactionID, "customer_id", customerID, linked, source})
	}
	if appAccountToken != "" && appleToken != "" && !strings.EqualFold(appAccountToken, appleToken) {
		conflicts = append(conflicts, Conflict{originalTransactionID, "app_account_token", appAccountToken, appleToken, source})
	}
	if err := l.RecordConflicts(ctx, conflicts); err != nil {
		return nil, err
	}
	return conflicts, nil
}

// RecordConflicts keeps conflicts for ops (Conflicts, status) and for
// reconciliation, which re-checks subscriptions with a recent conflict. A
// conflict already recorded (same subscription, field and both values) is
// left as it was, so recording is idempotent.
func (l *Ledger) RecordConflicts(ctx context.Context, conflicts []Conflict) error {
	for _, c := range conflicts {
		if _, err := l.db.Exec(ctx, `INSERT INTO conflicts (original_transaction_id, field, our_value, apple_value, source)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
			c.OriginalTransactionID, c.Field, c.OurValue, c.AppleValue, c.Source); err != nil {
			return fmt.Errorf("ledger: recording conflict on %s of %s: %w", c.Field, c.OriginalTransactionID, err)
		}
	}
	return nil
}

// Conflicts returns the recorded conflicts of a subscription, oldest first.
func (l *Ledger) Conflicts(ctx context.Context, originalTransactionID string) ([]Conflict, error) {
	rows, err := l.db.Query(ctx, `SELECT original_transaction_id, field, our_value, apple_value, source
		FROM conflicts WHERE original_transaction_id = $1 ORDER BY id`, originalTransactionID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Conflict])
}

func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
