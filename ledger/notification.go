package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
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
	// Decoded is what the verifier decoded of SignedPayload
	// (appstore.Verifier.VerifyNotificationDecoded), handed on so the
	// write does not decode it again; nil makes the write decode it. It
	// never changes what is stored: a Decoded that does not match
	// SignedPayload only costs the decode it was meant to save.
	Decoded *appstore.DecodedJWS
}

// CountNotifications returns how many stored notifications reached the
// ledger by source (SourceWebhook, SourceBackfill, ...). A notification is
// counted under the source that stored it first: one received by webhook
// and later seen again by a backfill counts as a webhook notification. An
// unknown source counts zero.
func (l *Ledger) CountNotifications(ctx context.Context, source string) (int64, error) {
	var n int64
	if err := l.db.QueryRow(ctx, "SELECT count(*) FROM notifications WHERE source = $1", source).Scan(&n); err != nil {
		return 0, fmt.Errorf("ledger: counting %s notifications: %w", source, err)
	}
	return n, nil
}

// RecordNotification stores n unless a notification with the same UUID is
// already stored; it reports whether n was new. Call it on WithTx to store
// it atomically with the job that processes it. It is RecordNotifications
// with one notification.
func (l *Ledger) RecordNotification(ctx context.Context, n Notification) (bool, error) {
	inserted, err := l.RecordNotifications(ctx, []Notification{n})
	if err != nil {
		return false, err
	}
	return inserted[0], nil
}

// insertNotifications stores a batch in one statement; a UUID already
// stored is left as it is (redeliveries and backfilled copies of the same
// notification are one row). One multi-row INSERT, rather than one per
// notification, is what lets the webhook's group commits cost the server
// little more than their rows. Its first statement stores the certificate
// chains the rows name ($1, $2), in the same transaction.
const insertNotifications = `WITH chains AS (` + insertChainsSQL + `)
	INSERT INTO notifications (notification_uuid, notification_type, subtype, environment,
		signed_date, original_transaction_id, transaction_id, signed_payload, signed_payload_decoded, payload_chain,
		source, send_attempts)
	SELECT uuid, type, subtype, environment, signed_date, NULLIF(original_transaction_id, ''),
		NULLIF(transaction_id, ''), NULLIF(signed_payload, ''), NULLIF(signed_payload_decoded, ''), payload_chain,
		source, NULLIF(send_attempts, '')::jsonb
	FROM unnest($3::uuid[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[], $9::text[], $10::text[],
		$11::text[], $12::bytea[], $13::text[], $14::text[])
		AS v(uuid, type, subtype, environment, signed_date, original_transaction_id, transaction_id,
			signed_payload, signed_payload_decoded, payload_chain, source, send_attempts)
	ON CONFLICT (notification_uuid) DO NOTHING
	RETURNING notification_uuid::text`

// RecordNotifications stores each of ns unless its UUID is already stored
// (or appears earlier in ns), in one statement, and reports for each
// whether it was new. Callers store only notifications whose
// signedPayload they verified (signature, chain and identity, with
// appstore.Verifier): processing a stored notification does not verify
// its outer signature again (jobs.verifyStored). Every notification is checked first (a UUID in
// canonical form, a known Source, a signedPayload, no NUL byte in a text
// field): if one is invalid, nothing is sent and
// the error names it. The statement stores all of them or, on a database
// error, none; call it on WithTx to store them atomically with the jobs
// that process them. An empty ns sends nothing.
func (l *Ledger) RecordNotifications(ctx context.Context, ns []Notification) ([]bool, error) {
	if len(ns) == 0 {
		return nil, nil
	}
	// Columns as arrays of plain strings, '' standing for NULL (no stored
	// form or send attempts is empty): pgx encodes those without reflection.
	var cols struct {
		uuid, typ, subtype, env, otid, tid, signed, decoded, source, attempts []string
		signedDate                                                            []int64
		chain                                                                 [][]byte
	}
	var chains chainSet
	first := make(map[string]int, len(ns)) // lower-case UUID → index in ns of its first occurrence
	for i, n := range ns {
		if !isUUID(n.UUID) {
			return nil, fmt.Errorf("ledger: notificationUUID %q is not a UUID", n.UUID)
		}
		switch n.Source {
		case SourceWebhook, SourceBackfill, SourceResync, SourceReconcile:
		default:
			return nil, fmt.Errorf("ledger: notification %s: unknown source %q", n.UUID, n.Source)
		}
		if n.SignedPayload == "" {
			return nil, fmt.Errorf("ledger: notification %s: no signedPayload: the ledger keeps what Apple signed", n.UUID)
		}
		if field := fieldWithNUL(n); field != "" {
			return nil, fmt.Errorf("ledger: notification %s: %s holds a NUL byte, which Postgres text cannot store", n.UUID, field)
		}
		key := strings.ToLower(n.UUID)
		if _, seen := first[key]; seen {
			continue
		}
		first[key] = i
		var attempts string
		if n.SendAttempts != nil {
			raw, err := json.Marshal(n.SendAttempts)
			if err != nil {
				return nil, fmt.Errorf("ledger: notification %s: send attempts: %w", n.UUID, err)
			}
			attempts = string(raw)
		}
		stored := encodePayloadDecoded(n.SignedPayload, n.Decoded)
		chains.add(stored.ChainSHA, stored.Chain)
		cols.uuid = append(cols.uuid, n.UUID)
		cols.typ = append(cols.typ, n.Type)
		cols.subtype = append(cols.subtype, n.Subtype)
		cols.env = append(cols.env, string(n.Environment))
		cols.signedDate = append(cols.signedDate, int64(n.SignedDate))
		cols.otid = append(cols.otid, n.OriginalTransactionID)
		cols.tid = append(cols.tid, n.TransactionID)
		cols.signed = append(cols.signed, stored.Signed)
		cols.decoded = append(cols.decoded, stored.Decoded)
		cols.chain = append(cols.chain, stored.ChainSHA)
		cols.source = append(cols.source, n.Source)
		cols.attempts = append(cols.attempts, attempts)
	}
	if chains.sha == nil {
		chains.sha, chains.chain = [][]byte{}, []string{} // an empty array, not NULL
	}
	rows, err := l.db.Query(ctx, insertNotifications, chains.sha, chains.chain, cols.uuid, cols.typ, cols.subtype, cols.env, cols.signedDate,
		cols.otid, cols.tid, cols.signed, cols.decoded, cols.chain, cols.source, cols.attempts)
	if err != nil {
		return nil, fmt.Errorf("ledger: storing %d notifications: %w", len(cols.uuid), err)
	}
	stored, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("ledger: storing %d notifications: %w", len(cols.uuid), err)
	}
	out := make([]bool, len(ns))
	for _, uuid := range stored {
		if i, ok := first[uuid]; ok { // the server's text form is lower case
			out[i] = true
		}
	}
	return out, nil
}

// fieldWithNUL names the first text field of n holding a NUL byte, or
// returns "". Checking before sending names the notification, where the
// server's error would fail the whole statement.
func fieldWithNUL(n Notification) string {
	for _, f := range []struct{ name, value string }{
		{"notificationType", n.Type}, {"subtype", n.Subtype}, {"environment", string(n.Environment)},
		{"originalTransactionId", n.OriginalTransactionID}, {"transactionId", n.TransactionID},
		{"signedPayload", n.SignedPayload},
	} {
		if strings.IndexByte(f.value, 0) >= 0 {
			return f.name
		}
	}
	return ""
}

// StoredNotification is a notification as the ledger holds it.
type StoredNotification struct {
	Notification
	ReceivedAt   time.Time
	ProcessedAt  *time.Time
	ProcessError string
	// PayloadJSON is set by NotificationPayloadByUUID only: the JSON of
	// SignedPayload's payload segment (nested JWS as Apple signed them).
	PayloadJSON string
}

// NotificationByUUID returns a stored notification, or ErrNotFound.
func (l *Ledger) NotificationByUUID(ctx context.Context, uuid string) (*StoredNotification, error) {
	n, p, err := l.notificationRow(ctx, uuid)
	if err != nil {
		return nil, err
	}
	if n.SignedPayload, err = p.rebuild(); err != nil {
		return nil, fmt.Errorf("notification %s: %w", uuid, err)
	}
	return n, nil
}

// NotificationPayloadByUUID is NotificationByUUID for a reader of the
// notification's payload (processing, which trusts it because it was
// verified before it was stored): exactly one of SignedPayload and
// PayloadJSON is set. PayloadJSON, when the row holds the payload decoded
// (as every write since migration 005 stores what it can), is the JSON
// the signedPayload's payload segment decodes to, given without encoding
// that 13 KB segment only for the reader to decode it again; otherwise
// SignedPayload is Apple's JWS, as NotificationByUUID gives it.
func (l *Ledger) NotificationPayloadByUUID(ctx context.Context, uuid string) (*StoredNotification, error) {
	n, p, err := l.notificationRow(ctx, uuid)
	if err != nil {
		return nil, err
	}
	payload, ok, err := p.payloadJSON()
	if err == nil && !ok {
		n.SignedPayload, err = p.rebuild()
	}
	if err != nil {
		return nil, fmt.Errorf("notification %s: %w", uuid, err)
	}
	n.PayloadJSON = payload
	return n, nil
}

// notificationRow reads a stored notification, its signedPayload left in
// its stored form; or ErrNotFound.
func (l *Ledger) notificationRow(ctx context.Context, uuid string) (*StoredNotification, storedPayload, error) {
	var n StoredNotification
	var env string
	var attempts []byte
	var signed, decoded *string
	var chainSHA []byte
	err := l.db.QueryRow(ctx, `SELECT notification_uuid::text, notification_type, subtype, environment, signed_date,
			COALESCE(original_transaction_id, ''), COALESCE(transaction_id, ''), signed_payload,
			signed_payload_decoded, payload_chain, source,
			send_attempts, received_at, processed_at, COALESCE(process_error, '')
		FROM notifications WHERE notification_uuid = $1`, uuid).
		Scan(&n.UUID, &n.Type, &n.Subtype, &env, &n.SignedDate, &n.OriginalTransactionID, &n.TransactionID,
			&signed, &decoded, &chainSHA, &n.Source, &attempts, &n.ReceivedAt, &n.ProcessedAt, &n.ProcessError)
	if err != nil {
		if isNoRows(err) {
			return nil, storedPayload{}, ErrNotFound
		}
		return nil, storedPayload{}, err
	}
	n.Environment = appstore.Environment(env)
	p, err := l.storedPayload(ctx, signed, decoded, chainSHA)
	if err != nil {
		return nil, p, fmt.Errorf("notification %s: %w", uuid, err)
	}
	if attempts != nil {
		if err := json.Unmarshal(attempts, &n.SendAttempts); err != nil {
			return nil, p, err
		}
	}
	return &n, p, nil
}

// MarkNotificationProcessed records that a notification was applied; a
// non-empty processErr records why it could not be (it is still done: a
// notification that cannot settle state alone triggers a refresh instead).
func (l *Ledger) MarkNotificationProcessed(ctx context.Context, uuid, processErr string) error {
	_, err := l.db.Exec(ctx, `UPDATE notifications SET processed_at = COALESCE(processed_at, now()),
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
