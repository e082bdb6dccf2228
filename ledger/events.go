package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"time"

	"github.com/jackc/pgx/v5"
)

// Event types of the change feed.
const (
	// EventSubscriptionCreated: the ledger learnt a subscription (Before is
	// null).
	EventSubscriptionCreated = "subscription.created"
	// EventSubscriptionUpdated: its status, expiry, product, auto-renew,
	// environment, appAccountToken, customer link or entitlements moved.
	EventSubscriptionUpdated = "subscription.updated"
	// EventEntitlementGranted and EventEntitlementRevoked follow a
	// subscription event of the same change, one per entitlement gained or
	// lost (Entitlement names it), so a backend may act on these alone.
	EventEntitlementGranted = "entitlement.granted"
	EventEntitlementRevoked = "entitlement.revoked"
)

// EventState is the part of a subscription the change feed reports: what a
// backend decides access with. A change to anything else (a re-signed copy
// of a transaction, a history revision, the last check time) is no event.
type EventState struct {
	OriginalTransactionID string     `json:"originalTransactionId"`
	CustomerID            string     `json:"customerId,omitempty"`
	AppAccountToken       string     `json:"appAccountToken,omitempty"`
	Environment           string     `json:"environment"`
	ProductID             string     `json:"productId"`
	Status                string     `json:"status"`
	ExpiresDate           *time.Time `json:"expiresDate,omitempty"`
	AutoRenewStatus       *bool      `json:"autoRenewStatus,omitempty"`
	AutoRenewProductID    string     `json:"autoRenewProductId,omitempty"`
	Entitlements          []string   `json:"entitlements"`
}

// Event is one row of the change feed. Its JSON is the contract of
// GET /v1/events, `storesync events tail` and the webhooks sent to endpoints.
type Event struct {
	// ID is the event's position in the feed: increasing, never reused,
	// and a stable cursor (an event never appears before one with a smaller
	// ID that was not already visible).
	ID                    int64       `json:"id"`
	Type                  string      `json:"type"`
	OriginalTransactionID string      `json:"originalTransactionId"`
	CustomerID            string      `json:"customerId,omitempty"`
	Entitlement           string      `json:"entitlement,omitempty"`
	Before                *EventState `json:"before"`
	After                 *EventState `json:"after"`
	Cause                 Cause       `json:"cause"`
	// SignedDate is when Apple signed the newest fact behind After; absent
	// when the change was ours alone (a customer link of an import).
	SignedDate *time.Time `json:"signedDate,omitempty"`
	CreatedAt  time.Time  `json:"createdAt"`
}

// eventState is s as the feed reports it under l's entitlement rules; nil
// for nil.
func (l *Ledger) eventState(s *Subscription) *EventState {
	if s == nil {
		return nil
	}
	ents := l.entitlementsOf(s)
	if ents == nil {
		ents = []string{}
	}
	st := &EventState{
		OriginalTransactionID: s.OriginalTransactionID, CustomerID: s.CustomerID,
		AppAccountToken: s.AppAccountToken, Environment: s.Environment, ProductID: s.ProductID,
		Status: s.Status, ExpiresDate: s.ExpiresDate, AutoRenewStatus: s.AutoRenewStatus,
		AutoRenewProductID: s.AutoRenewProductID, Entitlements: ents,
	}
	if st.ExpiresDate != nil {
		u := st.ExpiresDate.UTC()
		st.ExpiresDate = &u
	}
	return st
}

// recordChange writes the change feed's rows for one subscription moving
// from before (nil: unknown to the ledger) to after, in l's transaction:
// nothing when the reported state did not move (duplicates, older facts,
// bookkeeping), else one subscription event and one event per entitlement
// granted or revoked. It returns how many rows it wrote.
func (l *Ledger) recordChange(ctx context.Context, before, after *Subscription) (int, error) {
	b, a := l.eventState(before), l.eventState(after)
	if a == nil || reflect.DeepEqual(b, a) {
		return 0, nil
	}
	typ := EventSubscriptionUpdated
	var had []string
	if b == nil {
		typ = EventSubscriptionCreated
	} else {
		had = b.Entitlements
	}
	type row struct{ typ, ent string }
	rows := []row{{typ, ""}}
	for _, e := range a.Entitlements {
		if !contains(had, e) {
			rows = append(rows, row{EventEntitlementGranted, e})
		}
	}
	for _, e := range had {
		if !contains(a.Entitlements, e) {
			rows = append(rows, row{EventEntitlementRevoked, e})
		}
	}
	bj, err := json.Marshal(b)
	if err != nil {
		return 0, err
	}
	aj, err := json.Marshal(a)
	if err != nil {
		return 0, err
	}
	var signed int64
	if after.LastSignedDate != nil {
		signed = after.LastSignedDate.UnixMilli()
	}
	cause := CauseOf(ctx)
	batch := &pgx.Batch{}
	for _, r := range rows {
		batch.Queue(`INSERT INTO subscription_events (original_transaction_id, customer_id, type, entitlement,
				before, after, cause_job, cause_notification_uuid, cause_import_run, signed_date)
			VALUES ($1, NULLIF($2, ''), $3, $4, $5, $6, $7, $8, NULLIF($9, 0), $10)`,
			a.OriginalTransactionID, a.CustomerID, r.typ, r.ent, nullJSON(b, bj), aj, cause.Job,
			uuidOrNil(cause.NotificationUUID), cause.ImportRun, signed)
	}
	if err := l.db.SendBatch(ctx, batch).Close(); err != nil {
		return 0, fmt.Errorf("ledger: writing change events: %w", err)
	}
	noteEventsWritten(ctx)
	return len(rows), nil
}

func nullJSON(s *EventState, b []byte) any {
	if s == nil {
		return nil
	}
	return b
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// eventSequencerLock is the advisory lock that makes SequenceEvents run one
// at a time across every process.
const eventSequencerLock = 0x73746f7265657674 // "storeevt"

// SequenceEvents gives feed positions to the events whose writing
// transactions have ended, in the order they were written, and returns how
// many it numbered. Readers call it before reading (GET /v1/events, events
// tail, delivery): positions are handed out only by one sequencer at a time
// and only past every position already given, and an event whose
// transaction may still commit is left for a later call, so a cursor never
// skips an event. Events of one subscription keep their order: they are
// written under its row lock, hence in id order.
func (l *Ledger) SequenceEvents(ctx context.Context) (int64, error) {
	var n int64
	err := l.inTx(ctx, func(l *Ledger) error {
		if _, err := l.db.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(eventSequencerLock)); err != nil {
			return err
		}
		// As in FanOutEvents: JIT compilation costs far more than this
		// bounded statement's work.
		if _, err := l.db.Exec(ctx, `SET LOCAL jit = off`); err != nil {
			return err
		}
		// A fresh snapshot (READ COMMITTED, after the lock): it sees every
		// position the previous sequencer committed.
		tag, err := l.db.Exec(ctx, `
			WITH base AS (SELECT COALESCE(max(position), 0) AS p FROM subscription_events),
			ready AS (
				SELECT id, row_number() OVER (ORDER BY id) AS rn FROM subscription_events
				WHERE position IS NULL AND xid < pg_snapshot_xmin(pg_current_snapshot())
				ORDER BY id LIMIT 10000
			)
			UPDATE subscription_events e SET position = base.p + ready.rn
			FROM ready, base WHERE e.id = ready.id`)
		if err != nil {
			return fmt.Errorf("ledger: sequencing events: %w", err)
		}
		n = tag.RowsAffected()
		return nil
	})
	return n, err
}

// Events returns up to limit sequenced events after position after
// (0: from the start), in feed order. It does not sequence: call
// SequenceEvents first to see the newest.
func (l *Ledger) Events(ctx context.Context, after int64, limit int) ([]Event, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := l.db.Query(ctx, eventSelect+` WHERE position > $1 ORDER BY position LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("ledger: reading events: %w", err)
	}
	return collectEvents(rows)
}

// SubscriptionEvents returns every event of one subscription in write order,
// sequenced or not (for tests and support).
func (l *Ledger) SubscriptionEvents(ctx context.Context, originalTransactionID string) ([]Event, error) {
	rows, err := l.db.Query(ctx, eventSelect+` WHERE original_transaction_id = $1 ORDER BY id`, originalTransactionID)
	if err != nil {
		return nil, fmt.Errorf("ledger: reading events: %w", err)
	}
	return collectEvents(rows)
}

const eventSelect = `SELECT COALESCE(position, 0), type, original_transaction_id, COALESCE(customer_id, ''),
	entitlement, before, after, cause_job, COALESCE(cause_notification_uuid::text, ''),
	COALESCE(cause_import_run, 0), signed_date, created_at FROM subscription_events`

func collectEvents(rows pgx.Rows) ([]Event, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Event, error) {
		var e Event
		return e, scanEvent(row, &e)
	})
}

// scanEvent scans eventSelect's columns, then extra, into e.
func scanEvent(row pgx.Row, e *Event, extra ...any) error {
	var before, after []byte
	var signed int64
	dest := append([]any{&e.ID, &e.Type, &e.OriginalTransactionID, &e.CustomerID, &e.Entitlement,
		&before, &after, &e.Cause.Job, &e.Cause.NotificationUUID, &e.Cause.ImportRun, &signed, &e.CreatedAt}, extra...)
	if err := row.Scan(dest...); err != nil {
		return fmt.Errorf("ledger: reading event: %w", err)
	}
	if before != nil {
		if err := json.Unmarshal(before, &e.Before); err != nil {
			return err
		}
	}
	if err := json.Unmarshal(after, &e.After); err != nil {
		return err
	}
	if signed > 0 {
		t := time.UnixMilli(signed).UTC()
		e.SignedDate = &t
	}
	e.CreatedAt = e.CreatedAt.UTC()
	return nil
}

// recordChanges is recordChange for every change of an Apply.
func (l *Ledger) recordChanges(ctx context.Context, changes []Change) error {
	for _, c := range changes {
		if _, err := l.recordChange(ctx, c.Before, c.After); err != nil {
			return err
		}
	}
	return nil
}

// linkWithEvent links a subscription (locked by the caller) to customerID
// and records the change feed's event of the new link in the same
// statement's transaction. A subscription the ledger has no facts of yet
// gets no event: its first Apply reports it, customer included.
func (l *Ledger) linkWithEvent(ctx context.Context, originalTransactionID, customerID string) error {
	return l.inTx(ctx, func(l *Ledger) error {
		before, err := l.Subscription(ctx, originalTransactionID)
		if err != nil {
			return err
		}
		if _, err := l.db.Exec(ctx, `UPDATE subscriptions SET customer_id = $2, updated_at = now()
			WHERE original_transaction_id = $1`, originalTransactionID, customerID); err != nil {
			return err
		}
		if before.TransactionCount == 0 && before.LastSignedDate == nil {
			return nil
		}
		after := *before
		after.CustomerID = customerID
		_, err = l.recordChange(ctx, before, &after)
		return err
	})
}
