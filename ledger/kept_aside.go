package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/storesync/storesync/appstore"
)

// KeptAside is a notification Apple signed (its signature and certificate
// chain verified) that names another app or environment than the
// configured one, so it was refused from the ledger and kept aside
// (kept_aside_notifications) instead of being lost.
type KeptAside struct {
	UUID string
	// Reason is the verification status that refused it:
	// "INVALID_APP_IDENTIFIER" or "INVALID_ENVIRONMENT".
	Reason string
	// Detail is the verifier's reason in words (which field differed).
	Detail             string
	Type, Subtype      string
	ClaimedBundleID    string
	ClaimedAppAppleID  int64
	ClaimedEnvironment appstore.Environment
	SignedPayload      string
}

// KeepAside stores n aside, or, when its UUID is already kept aside (Apple
// retries a refused notification), counts one more delivery and moves its
// last received time. It never touches the ledger's notifications or
// subscriptions. An n whose UUID is not a UUID is an error: the webhook
// only keeps notifications whose signature verified, and those carry one.
func (l *Ledger) KeepAside(ctx context.Context, n KeptAside) error {
	if !IsUUID(n.UUID) {
		return fmt.Errorf("ledger: keeping aside notification %q: notificationUUID is not a UUID", n.UUID)
	}
	// Stored like the ledger's notifications (encodePayload), chain first.
	stored := encodePayload(n.SignedPayload)
	var chains chainSet
	chains.add(stored.ChainSHA, stored.Chain)
	if chains.sha == nil {
		chains.sha, chains.chain = [][]byte{}, []string{}
	}
	var signed, decoded *string // exactly one is set
	if stored.Decoded != "" {
		decoded = &stored.Decoded
	} else {
		signed = &stored.Signed
	}
	_, err := l.db.Exec(ctx, `WITH chains AS (`+insertChainsSQL+`)
		INSERT INTO kept_aside_notifications (notification_uuid, reason, detail,
			notification_type, subtype, claimed_bundle_id, claimed_app_apple_id, claimed_environment, signed_payload,
			signed_payload_decoded, payload_chain)
		VALUES ($3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
		ON CONFLICT (notification_uuid) DO UPDATE SET last_received_at = now(),
			deliveries = kept_aside_notifications.deliveries + 1`,
		chains.sha, chains.chain, n.UUID, n.Reason, n.Detail, n.Type, n.Subtype, n.ClaimedBundleID, n.ClaimedAppAppleID,
		string(n.ClaimedEnvironment), signed, decoded, stored.ChainSHA)
	if err != nil {
		return fmt.Errorf("ledger: keeping aside notification %s: %w", n.UUID, err)
	}
	return nil
}

// KeptAsideReason summarises the kept-aside notifications of one reason.
type KeptAsideReason struct {
	Reason string
	// Notifications counts distinct notificationUUIDs; Deliveries counts
	// every delivery of them (Apple retries).
	Notifications, Deliveries int64
	// Latest is the last time one of them arrived; LatestBundleID and
	// LatestEnvironment are what that one claimed: the app or environment
	// the notification URL is receiving by mistake.
	Latest            time.Time
	LatestBundleID    string
	LatestEnvironment appstore.Environment
}

// KeptAsideSummary returns one KeptAsideReason per reason, ordered by
// reason; none when nothing was kept aside.
func (l *Ledger) KeptAsideSummary(ctx context.Context) ([]KeptAsideReason, error) {
	rows, err := l.db.Query(ctx, `SELECT DISTINCT ON (reason) reason,
			count(*) OVER w, sum(deliveries) OVER w, last_received_at, claimed_bundle_id, claimed_environment
		FROM kept_aside_notifications
		WINDOW w AS (PARTITION BY reason)
		ORDER BY reason, last_received_at DESC, notification_uuid`)
	if err != nil {
		return nil, fmt.Errorf("ledger: summarising kept-aside notifications: %w", err)
	}
	defer rows.Close()
	var out []KeptAsideReason
	for rows.Next() {
		var r KeptAsideReason
		var env string
		if err := rows.Scan(&r.Reason, &r.Notifications, &r.Deliveries, &r.Latest, &r.LatestBundleID, &env); err != nil {
			return nil, fmt.Errorf("ledger: summarising kept-aside notifications: %w", err)
		}
		r.LatestEnvironment = appstore.Environment(env)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: summarising kept-aside notifications: %w", err)
	}
	return out, nil
}

// KeptAsideNotifications returns up to limit kept-aside notifications
// whose UUID sorts after after ("" for the first page), in UUID order, so
// a caller can page through all of them while deleting some.
func (l *Ledger) KeptAsideNotifications(ctx context.Context, after string, limit int) ([]KeptAside, error) {
	if after == "" {
		after = "00000000-0000-0000-0000-000000000000"
	}
	rows, err := l.db.Query(ctx, `SELECT notification_uuid::text, reason, detail, notification_type, subtype,
			claimed_bundle_id, claimed_app_apple_id, claimed_environment, signed_payload, signed_payload_decoded,
			payload_chain
		FROM kept_aside_notifications WHERE notification_uuid > $1::uuid ORDER BY notification_uuid LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("ledger: listing kept-aside notifications: %w", err)
	}
	defer rows.Close()
	var out []KeptAside
	type form struct {
		signed, decoded *string
		chainSHA        []byte
	}
	var forms []form
	for rows.Next() {
		var k KeptAside
		var env string
		var f form
		if err := rows.Scan(&k.UUID, &k.Reason, &k.Detail, &k.Type, &k.Subtype, &k.ClaimedBundleID,
			&k.ClaimedAppAppleID, &env, &f.signed, &f.decoded, &f.chainSHA); err != nil {
			return nil, fmt.Errorf("ledger: listing kept-aside notifications: %w", err)
		}
		k.ClaimedEnvironment = appstore.Environment(env)
		out = append(out, k)
		forms = append(forms, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: listing kept-aside notifications: %w", err)
	}
	rows.Close() // before rebuilding: a WithTx ledger's connection is busy until then
	for i, f := range forms {
		if out[i].SignedPayload, err = l.rebuildPayload(ctx, f.signed, f.decoded, f.chainSHA); err != nil {
			return nil, fmt.Errorf("ledger: kept-aside notification %s: %w", out[i].UUID, err)
		}
	}
	return out, nil
}

// DeleteKeptAside removes a kept-aside notification, once it is stored in
// the ledger (call it on WithTx, in the transaction that stores it). An
// unknown UUID is not an error: another process resubmitted it first.
func (l *Ledger) DeleteKeptAside(ctx context.Context, uuid string) error {
	if _, err := l.db.Exec(ctx, `DELETE FROM kept_aside_notifications WHERE notification_uuid = $1`, uuid); err != nil {
		return fmt.Errorf("ledger: deleting kept-aside notification %s: %w", uuid, err)
	}
	return nil
}
