package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// TimelineEntry is one entry of a subscription's timeline.
type TimelineEntry struct {
	At time.Time
	// Kind is "transaction", "notification" or "drift".
	Kind string
	// Source says where the ledger got it: for a notification how it
	// arrived (webhook, backfill, resync, reconcile); for a transaction
	// "apple" (the transactions table keeps Apple's signed JWS, not which
	// job fetched it); for drift "reconcile run N" or "resync".
	Source string
	// Summary is a one-line description (type, subtype, field change).
	Summary string
	// ID is Apple's id (transactionId, notificationUUID) or the drift id.
	ID string
}

// Timeline returns the transactions, notifications and drift of one
// subscription, newest first, at most limit of each kind (so one noisy
// kind cannot hide the others). Transactions are placed at their
// purchase date, notifications at Apple's signedDate, drift when found.
// An unknown id gives an empty slice.
func (l *Ledger) Timeline(ctx context.Context, originalTransactionID string, limit int) ([]TimelineEntry, error) {
	rows, err := l.db.Query(ctx, `
		(SELECT COALESCE(purchase_date, to_timestamp(signed_date / 1000.0)), 'transaction', 'apple',
			concat_ws(' ', NULLIF(type, ''), product_id, NULLIF(transaction_reason, ''),
				CASE WHEN revocation_date IS NOT NULL THEN 'revoked' END,
				'expires ' || to_char(expires_date AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')),
			transaction_id
		 FROM transactions WHERE original_transaction_id = $1 ORDER BY purchase_date DESC NULLS LAST LIMIT $2)
		UNION ALL
		(SELECT to_timestamp(signed_date / 1000.0), 'notification', source,
			concat_ws(' ', notification_type, NULLIF(subtype, ''),
				CASE WHEN process_error IS NOT NULL AND process_error <> '' THEN '(error: ' || process_error || ')' END),
			notification_uuid::text
		 FROM notifications WHERE original_transaction_id = $1 ORDER BY signed_date DESC LIMIT $2)
		UNION ALL
		(SELECT found_at, 'drift', COALESCE('reconcile run ' || run_id, 'resync'),
			class || ': ' || field || ' ' || ledger_value || ' → ' || apple_value ||
				CASE WHEN repaired_at IS NOT NULL THEN ' (repaired)' ELSE '' END,
			id::text
		 FROM drift WHERE original_transaction_id = $1 ORDER BY found_at DESC LIMIT $2)
		ORDER BY 1 DESC`, originalTransactionID, limit)
	if err != nil {
		return nil, fmt.Errorf("reading the timeline of %s: %w", originalTransactionID, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (TimelineEntry, error) {
		var e TimelineEntry
		err := r.Scan(&e.At, &e.Kind, &e.Source, &e.Summary, &e.ID)
		return e, err
	})
}
