package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Endpoint is a configured receiver of the change feed.
type Endpoint struct {
	ID        int64     `json:"id"`
	URL       string    `json:"url"`
	CreatedAt time.Time `json:"createdAt"`
	// Secret is the endpoint's whsec_… signing secret: set only by
	// AddEndpoint's answer, never by Endpoints, so listings cannot leak it.
	Secret string `json:"-"`
}

// AddEndpoint stores a receiver and its signing secret. Its deliveries start
// with the next event sequenced: history is not replayed (GET /v1/events
// is for that). A URL already added is an error.
func (l *Ledger) AddEndpoint(ctx context.Context, url, secret string) (*Endpoint, error) {
	e := &Endpoint{URL: url, Secret: secret}
	err := l.db.QueryRow(ctx, `INSERT INTO event_endpoints (url, secret, fanned_out)
		VALUES ($1, $2, (SELECT COALESCE(max(position), 0) FROM subscription_events))
		ON CONFLICT (url) DO NOTHING RETURNING id, created_at`, url, secret).Scan(&e.ID, &e.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("endpoint %s is already added: remove it first to change its secret", url)
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: adding endpoint: %w", err)
	}
	return e, nil
}

// Endpoints lists the receivers, oldest first, without their secrets.
func (l *Ledger) Endpoints(ctx context.Context) ([]Endpoint, error) {
	rows, err := l.db.Query(ctx, `SELECT id, url, created_at FROM event_endpoints ORDER BY id`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Endpoint, error) {
		var e Endpoint
		err := r.Scan(&e.ID, &e.URL, &e.CreatedAt)
		return e, err
	})
}

// RemoveEndpoint deletes a receiver and its undelivered events; ErrNotFound
// when there is no such id.
func (l *Ledger) RemoveEndpoint(ctx context.Context, id int64) error {
	tag, err := l.db.Exec(ctx, `DELETE FROM event_endpoints WHERE id = $1`, id)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// DeliveryKey names one subscription's queue of deliveries to one endpoint:
// the unit that is delivered in order.
type DeliveryKey struct {
	EndpointID            int64
	OriginalTransactionID string
}

// FanOutEvents creates a pending delivery, for every endpoint, of each
// sequenced event it has none of yet (at most limit events per endpoint),
// and returns the subscription queues that got one. It must run in the
// caller's transaction (WithTx), so that the delivery jobs for the returned
// keys are inserted atomically with the rows; endpoints are locked, so
// concurrent fan-outs do not double the work.
func (l *Ledger) FanOutEvents(ctx context.Context, limit int) ([]DeliveryKey, error) {
	if err := l.requireTx("FanOutEvents"); err != nil {
		return nil, err
	}
	// The planner cannot know one endpoint's lateral scan stops at limit
	// rows, so it costs this statement high enough to JIT-compile it, which
	// took ~1s per batch (of a few ms of work) and made a backlog's fan-out
	// pass run for minutes.
	if _, err := l.db.Exec(ctx, `SET LOCAL jit = off`); err != nil {
		return nil, fmt.Errorf("ledger: fanning out events: %w", err)
	}
	rows, err := l.db.Query(ctx, `
		WITH ep AS (SELECT id, fanned_out FROM event_endpoints ORDER BY id FOR UPDATE SKIP LOCKED),
		ins AS (
			INSERT INTO event_deliveries (endpoint_id, position, original_transaction_id, state)
			SELECT ep.id, e.position, e.original_transaction_id,
				CASE WHEN EXISTS (SELECT 1 FROM event_holds h WHERE h.run_id = e.cause_import_run AND h.released_at IS NULL)
				THEN 'held' ELSE 'pending' END
			FROM ep
			CROSS JOIN LATERAL (
				SELECT position, original_transaction_id, cause_import_run FROM subscription_events
				WHERE position > ep.fanned_out ORDER BY position LIMIT $1
			) e
			ON CONFLICT DO NOTHING
			RETURNING endpoint_id, position, original_transaction_id
		),
		adv AS (
			UPDATE event_endpoints x SET fanned_out = m.p
			FROM (SELECT endpoint_id, max(position) AS p FROM ins GROUP BY endpoint_id) m
			WHERE x.id = m.endpoint_id
		)
		SELECT DISTINCT endpoint_id, original_transaction_id FROM ins ORDER BY 1, 2`, limit)
	if err != nil {
		return nil, fmt.Errorf("ledger: fanning out events: %w", err)
	}
	return collectKeys(rows)
}

// StalledDeliveries returns the subscription queues with a pending delivery
// older than age (whose job was lost, discarded or raced): the fan-out
// enqueues them again.
func (l *Ledger) StalledDeliveries(ctx context.Context, age time.Duration, limit int) ([]DeliveryKey, error) {
	rows, err := l.db.Query(ctx, `SELECT DISTINCT endpoint_id, original_transaction_id FROM event_deliveries
		WHERE state = 'pending' AND since < now() - make_interval(secs => $1) ORDER BY 1, 2 LIMIT $2`,
		age.Seconds(), limit)
	if err != nil {
		return nil, err
	}
	return collectKeys(rows)
}

func collectKeys(rows pgx.Rows) ([]DeliveryKey, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (DeliveryKey, error) {
		var k DeliveryKey
		err := r.Scan(&k.EndpointID, &k.OriginalTransactionID)
		return k, err
	})
}

// PendingDelivery is the next event a subscription queue owes an endpoint.
type PendingDelivery struct {
	Event    Event
	URL      string
	Secret   string
	Attempts int
	Since    time.Time
}

// NextDelivery returns the oldest pending delivery of key, or nil when the
// queue is empty, starts with a held event (see HoldImportEvents), or the
// endpoint was removed.
func (l *Ledger) NextDelivery(ctx context.Context, key DeliveryKey) (*PendingDelivery, error) {
	// One round trip: the delivery worker runs this once per event sent.
	var d PendingDelivery
	var state string
	var found *int64
	err := scanEvent(l.db.QueryRow(ctx, `WITH next AS (
			SELECT d.position, d.state, d.attempts, d.since, p.url, p.secret
			FROM event_deliveries d JOIN event_endpoints p ON p.id = d.endpoint_id
			WHERE d.endpoint_id = $1 AND d.original_transaction_id = $2 AND d.state IN ('pending', 'held')
			ORDER BY d.position LIMIT 1)
		SELECT COALESCE(e.position, 0), COALESCE(e.type, ''), COALESCE(e.original_transaction_id, ''), COALESCE(e.customer_id, ''),
			COALESCE(e.entitlement, ''), e.before, COALESCE(e.after, 'null'), COALESCE(e.cause_job, ''),
			COALESCE(e.cause_notification_uuid::text, ''), COALESCE(e.cause_import_run, 0), COALESCE(e.signed_date, 0),
			COALESCE(e.created_at, now()), next.state, next.attempts, next.since, next.url, next.secret, e.position
		FROM next LEFT JOIN subscription_events e ON e.position = next.position`, key.EndpointID, key.OriginalTransactionID),
		&d.Event, &state, &d.Attempts, &d.Since, &d.URL, &d.Secret, &found)
	if errors.Is(err, pgx.ErrNoRows) || state == "held" {
		// A held event holds back the subscription's later ones too.
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if found == nil {
		return nil, fmt.Errorf("ledger: the event of a delivery to endpoint %d of %s is missing", key.EndpointID, key.OriginalTransactionID)
	}
	return &d, nil
}

// MarkDelivery records the outcome of one delivery attempt: delivered, or
// failed with reason (attempts counted), or dead (given up: kept for
// `events redeliver`, and no longer holding back the subscription's later
// events).
func (l *Ledger) MarkDelivery(ctx context.Context, endpointID, position int64, state, reason string) error {
	if state != "delivered" && state != "pending" && state != "dead" {
		return fmt.Errorf("ledger: delivery state %q: want delivered, pending or dead", state)
	}
	_, err := l.db.Exec(ctx, `UPDATE event_deliveries SET state = $3, last_error = $4,
			attempts = attempts + 1, delivered_at = CASE WHEN $3 = 'delivered' THEN now() END
		WHERE endpoint_id = $1 AND position = $2 AND state = 'pending'`, endpointID, position, state, reason)
	return err
}

// RedeliverDead makes every dead delivery (of one endpoint, or all when
// endpointID is 0) pending again with a fresh dead-letter clock, and returns
// the queues to enqueue.
func (l *Ledger) RedeliverDead(ctx context.Context, endpointID int64) ([]DeliveryKey, error) {
	rows, err := l.db.Query(ctx, `WITH r AS (
			UPDATE event_deliveries SET state = 'pending', since = now(), last_error = ''
			WHERE state = 'dead' AND ($1 = 0 OR endpoint_id = $1)
			RETURNING endpoint_id, original_transaction_id)
		SELECT DISTINCT endpoint_id, original_transaction_id FROM r ORDER BY 1, 2`, endpointID)
	if err != nil {
		return nil, err
	}
	return collectKeys(rows)
}

// DeliveryStats is one endpoint's delivery backlog, for `status`.
type DeliveryStats struct {
	Endpoint    Endpoint
	Pending     int64
	Held        int64
	Dead        int64
	Delivered   int64
	OldestSince *time.Time // of the pending deliveries
	LastError   string     // of the newest dead or failing delivery
	Behind      int64      // sequenced events not yet fanned out
}

// DeliveryStatus returns the backlog of every endpoint.
func (l *Ledger) DeliveryStatus(ctx context.Context) ([]DeliveryStats, error) {
	rows, err := l.db.Query(ctx, `SELECT p.id, p.url, p.created_at,
			count(*) FILTER (WHERE d.state = 'pending'), count(*) FILTER (WHERE d.state = 'held'),
			count(*) FILTER (WHERE d.state = 'dead'),
			count(*) FILTER (WHERE d.state = 'delivered'),
			min(d.since) FILTER (WHERE d.state = 'pending'),
			COALESCE((SELECT last_error FROM event_deliveries x WHERE x.endpoint_id = p.id AND x.last_error <> ''
				ORDER BY position DESC LIMIT 1), ''),
			GREATEST((SELECT COALESCE(max(position), 0) FROM subscription_events) - p.fanned_out, 0)
		FROM event_endpoints p LEFT JOIN event_deliveries d ON d.endpoint_id = p.id
		GROUP BY p.id ORDER BY p.id`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (DeliveryStats, error) {
		var s DeliveryStats
		err := r.Scan(&s.Endpoint.ID, &s.Endpoint.URL, &s.Endpoint.CreatedAt, &s.Pending, &s.Held, &s.Dead, &s.Delivered,
			&s.OldestSince, &s.LastError, &s.Behind)
		return s, err
	})
}

// HoldImportEvents makes the webhooks of the events an import run causes
// wait until ReleaseImportEvents (import --events=hold): a big migration
// does not flood the backend, which can read them from the feed instead.
// Call it before the run's jobs are enqueued. Holding twice is harmless.
func (l *Ledger) HoldImportEvents(ctx context.Context, runID int64) error {
	_, err := l.db.Exec(ctx, `INSERT INTO event_holds (run_id) VALUES ($1) ON CONFLICT DO NOTHING`, runID)
	return err
}

// ReleaseImportEvents lets a held run's webhooks go (oldest first per
// subscription, with a fresh dead-letter clock) and returns the queues to
// enqueue. ErrNotFound when the run was never held; releasing twice
// returns no queues the second time.
func (l *Ledger) ReleaseImportEvents(ctx context.Context, runID int64) ([]DeliveryKey, error) {
	var keys []DeliveryKey
	err := l.inTx(ctx, func(l *Ledger) error {
		tag, err := l.db.Exec(ctx, `UPDATE event_holds SET released_at = COALESCE(released_at, now()) WHERE run_id = $1`, runID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		rows, err := l.db.Query(ctx, `WITH r AS (
				UPDATE event_deliveries d SET state = 'pending', since = now()
				FROM subscription_events e
				WHERE d.state = 'held' AND e.position = d.position AND e.cause_import_run = $1
				RETURNING d.endpoint_id, d.original_transaction_id)
			SELECT DISTINCT endpoint_id, original_transaction_id FROM r ORDER BY 1, 2`, runID)
		if err != nil {
			return err
		}
		keys, err = collectKeys(rows)
		return err
	})
	return keys, err
}

// FeedBehind reports whether the fan-out has work left: events not yet
// sequenced (including those whose transaction is still open, which will
// be), or sequenced events some endpoint has no deliveries of yet. Both
// checks use indexes: cheap enough to ask after every fan-out pass.
func (l *Ledger) FeedBehind(ctx context.Context) (bool, error) {
	var behind bool
	err := l.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM subscription_events WHERE position IS NULL)
		OR EXISTS (SELECT 1 FROM event_endpoints
			WHERE fanned_out < (SELECT COALESCE(max(position), 0) FROM subscription_events))`).Scan(&behind)
	if err != nil {
		return false, fmt.Errorf("ledger: checking the feed's backlog: %w", err)
	}
	return behind, nil
}
