package ledger

import (
	"context"
	"fmt"
	"strings"
)

// ImportedAccount returns the originalTransactionId of an import row of
// the Apple account a receipt row names, by the company's customer id when
// it is given, else by its appAccountToken; "" when there is none (or both
// are empty). A receipt import skips Apple for an account already imported:
// that row's job brings in every subscription of the account.
func (l *Ledger) ImportedAccount(ctx context.Context, token, customer string) (string, error) {
	var query, arg string
	switch {
	case customer != "":
		query, arg = `SELECT original_transaction_id FROM import_rows WHERE customer_id = $1 LIMIT 1`, customer
	case token != "":
		query, arg = `SELECT original_transaction_id FROM import_rows WHERE app_account_token = $1::uuid LIMIT 1`, strings.ToLower(token)
	default:
		return "", nil
	}
	rows, err := l.db.Query(ctx, query, arg)
	if err != nil {
		return "", fmt.Errorf("ledger: looking up an imported account: %w", err)
	}
	defer rows.Close()
	var otid string
	for rows.Next() {
		if err := rows.Scan(&otid); err != nil {
			return "", fmt.Errorf("ledger: looking up an imported account: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("ledger: looking up an imported account: %w", err)
	}
	return otid, nil
}
