package ledger

import (
	"context"
	"fmt"
)

// NotificationTypeCount counts the stored notifications of one type (its
// notificationType, subtype not distinguished) by the source that stored
// each first.
type NotificationTypeCount struct {
	Type string
	// Webhook and Backfill count those received by webhook and those
	// recovered from notification history; Other those a re-sync or a
	// reconciliation stored first.
	Webhook, Backfill, Other int64
}

// Total is every stored notification of the type.
func (c NotificationTypeCount) Total() int64 { return c.Webhook + c.Backfill + c.Other }

// CountNotificationsByType returns one NotificationTypeCount per
// notification type stored, ordered by type; none for an empty ledger. As
// with CountNotifications, a notification counts once, under the source
// that stored it first. It scans the notifications table: meant for
// reports (the demo), not for a hot path.
func (l *Ledger) CountNotificationsByType(ctx context.Context) ([]NotificationTypeCount, error) {
	rows, err := l.db.Query(ctx, `SELECT notification_type,
			count(*) FILTER (WHERE source = $1), count(*) FILTER (WHERE source = $2),
			count(*) FILTER (WHERE source NOT IN ($1, $2))
		FROM notifications GROUP BY notification_type ORDER BY notification_type`, SourceWebhook, SourceBackfill)
	if err != nil {
		return nil, fmt.Errorf("ledger: counting notifications by type: %w", err)
	}
	defer rows.Close()
	var out []NotificationTypeCount
	for rows.Next() {
		var c NotificationTypeCount
		if err := rows.Scan(&c.Type, &c.Webhook, &c.Backfill, &c.Other); err != nil {
			return nil, fmt.Errorf("ledger: counting notifications by type: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: counting notifications by type: %w", err)
	}
	return out, nil
}
