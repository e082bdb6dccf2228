package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/storesync/storesync/appstore"
)

// Notification sources: how a notification reached the ledger.
const (
	SourceWebhook   = "webhook"
	SourceBackfill  = "backfill"
	SourceResync    = "resync"
	SourceReconcile = "reconcile"
)

// Notification is a verified App Store Server Notification to store, with
// its raw signedPayload kept for audit and replay.
type Notification struct {
	UUID                  string
	Type                  string
	Subtype               string
	Environment           appstore.Environment
	SignedDate            appstore.Millis
	OriginalTransactionID string // from the inner transaction, when present
	TransactionID         string
	SignedPayload         string
	Source                string
	SendAttempts          []appstore.SendAttemptItem // from notification history; nil for webhooks
}

// RecordNotification stores n unless a notification with the same UUID is
// already stored; it reports whether n was new. Pass a transaction to store
// it atomically with the job that processes it. It is RecordNotifications
// with one notification.
func (l *Ledger) RecordNotification(ctx context.Context, q Querier, n Notification) (bool, error) {
	inserted, err := l.RecordNotifications(ctx, q, []Notification{n})
	if err != nil {
		return false, err
	}
	return inserted[0], nil
}

// insertNotification is the one statement that stores a notification; a
// UUID already stored is left as it is (redeliveries and backfilled copies
// of the same notification are one row).
const insertNotification = `INSERT INTO notifications (notification_uuid, notification_type, subtype, environment,
		signed_date, original_transaction_id, transaction_id, signed_payload, source, send_attempts)
	VALUES ($1, $2, $3, $4, $5, NULLIF($6, ''), NULLIF($7, ''), $8, $9, $10)
	ON CONFLICT (notification_uuid) DO NOTHING`

// RecordNotifications stores each of ns unless its UUID is already stored
// (or appears earlier in ns), in one round trip, and reports for each
// whether it was new. Every notification is checked first (a UUID in
// canonical form, a known Source): if one is invalid, nothing is sent and
// the error names it. The statements run in one implicit transaction, or
// in q if it is one, so a database error stores none of them. An empty ns
// sends nothing.
func (l *Ledger) RecordNotifications(ctx context.Context, q Querier, ns []Notification) ([]bool, error) {
	if len(ns) == 0 {
		return nil, nil
	}
	b := &pgx.Batch{}
	for _, n := range ns {
		if !isUUID(n.UUID) {
			return nil, fmt.Errorf("ledger: notificationUUID %q is not a UUID", n.UUID)
		}
		switch n.Source {
		case SourceWebhook, SourceBackfill, SourceResync, SourceReconcile:
		default:
			return nil, fmt.Errorf("ledger: notification %s: unknown source %q", n.UUID, n.Source)
		}
		var attempts any
		if n.SendAttempts != nil {
			raw, err := json.Marshal(n.SendAttempts)
			if err != nil {
				return nil, fmt.Errorf("ledger: notification %s: send attempts: %w", n.UUID, err)
			}
			attempts = raw
		}
		b.Queue(insertNotification, n.UUID, n.Type, n.Subtype, string(n.Environment), int64(n.SignedDate),
			n.OriginalTransactionID, n.TransactionID, n.SignedPayload, n.Source, attempts)
	}
	res := q.SendBatch(ctx, b)
	out := make([]bool, len(ns))
	for i, n := range ns {
		tag, err := res.Exec()
		if err != nil {
			_ = res.Close()
			return nil, fmt.Errorf("ledger: storing notification %s: %w", n.UUID, err)
		}
		out[i] = tag.RowsAffected() == 1
	}
	if err := res.Close(); err != nil {
		return nil, fmt.Errorf("ledger: storing notifications: %w", err)
	}
	return out, nil
}

// StoredNotification is a notification as the ledger holds it.
type StoredNotification struct {
	Notification
	ReceivedAt   time.Time
	ProcessedAt  *time.Time
	ProcessError string
}

// NotificationByUUID returns a stored notification, or ErrNotFound.
func (l *Ledger) NotificationByUUID(ctx context.Context, q Querier, uuid string) (*StoredNotification, error) {
	var n StoredNotification
	var env string
	var attempts []byte
	err := q.QueryRow(ctx, `SELECT notification_uuid::text, notification_type, subtype, environment, signed_date,
			COALESCE(original_transaction_id, ''), COALESCE(transaction_id, ''), signed_payload, source,
			send_attempts, received_at, processed_at, COALESCE(process_error, '')
		FROM notifications WHERE notification_uuid = $1`, uuid).
		Scan(&n.UUID, &n.Type, &n.Subtype, &env, &n.SignedDate, &n.OriginalTransactionID, &n.TransactionID,
			&n.SignedPayload, &n.Source, &attempts, &n.ReceivedAt, &n.ProcessedAt, &n.ProcessError)
	if err != nil {
		if isNoRows(err) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	n.Environment = appstore.Environment(env)
	if attempts != nil {
		if err := json.Unmarshal(attempts, &n.SendAttempts); err != nil {
			return nil, err
		}
	}
	return &n, nil
}

// MarkNotificationProcessed records that a notification was applied; a
// non-empty processErr records why it could not be (it is still done: a
// notification that cannot settle state alone triggers a refresh instead).
func (l *Ledger) MarkNotificationProcessed(ctx context.Context, q Querier, uuid, processErr string) error {
	_, err := q.Exec(ctx, `UPDATE notifications SET processed_at = COALESCE(processed_at, now()),
		process_error = NULLIF($2, '') WHERE notification_uuid = $1`, uuid, processErr)
	return err
}

// NotificationFacts turns a verified notification and its verified inner
// payloads into ledger facts: the inner transaction and renewal info, and
// data.status as Apple's statement as of the notification's signedDate.
// Either inner payload may be nil.
func NotificationFacts(n *appstore.NotificationPayload, tx *appstore.TransactionPayload, txJWS string,
	ri *appstore.RenewalInfoPayload, riJWS string) Facts {
	var f Facts
	otid := ""
	if tx != nil && tx.TransactionID != "" {
		f.Transactions = append(f.Transactions, SignedTransaction{Payload: tx, JWS: txJWS})
		otid = tx.OriginalTransactionID
	}
	if ri != nil && ri.OriginalTransactionID != "" {
		f.RenewalInfos = append(f.RenewalInfos, SignedRenewalInfo{Payload: ri, JWS: riJWS})
		if otid == "" {
			otid = ri.OriginalTransactionID
		}
	}
	if n != nil && n.Data != nil && n.Data.Status >= 1 && n.Data.Status <= 5 && otid != "" {
		f.Statuses = append(f.Statuses, StatusObservation{
			OriginalTransactionID: otid, Status: int(n.Data.Status), SignedDate: n.SignedDate,
		})
	}
	return f
}
