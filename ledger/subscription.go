package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Status names of Apple's subscription statuses 1–5, as show prints them.
var statusNames = map[int]string{
	1: "active", 2: "expired", 3: "billing_retry", 4: "grace_period", 5: "revoked",
}

// StatusName returns the ledger name of Apple status s ("active" for 1,
// ... "revoked" for 5), or "unknown".
func StatusName(s int) string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return "unknown"
}

// StatusCode returns Apple's status number for a ledger status name, or 0.
func StatusCode(name string) int {
	for k, v := range statusNames {
		if v == name {
			return k
		}
	}
	return 0
}

// Subscription is the ledger's view of one subscription. Its JSON is the
// contract of `storesync show` and GET /admin/subscriptions/{id}.
type Subscription struct {
	OriginalTransactionID       string     `json:"originalTransactionId"`
	AppAccountToken             string     `json:"appAccountToken,omitempty"`
	CustomerID                  string     `json:"customerId,omitempty"`
	Environment                 string     `json:"environment"`
	ProductID                   string     `json:"productId"`
	SubscriptionGroupIdentifier string     `json:"subscriptionGroupIdentifier"`
	Status                      string     `json:"status"`
	ExpiresDate                 *time.Time `json:"expiresDate,omitempty"`
	AutoRenewStatus             *bool      `json:"autoRenewStatus,omitempty"`
	LatestTransactionID         string     `json:"latestTransactionId"`
	TransactionCount            int        `json:"transactionCount"`
	LastSignedDate              *time.Time `json:"lastSignedDate,omitempty"`

	// Not part of the show contract; used by jobs.
	AutoRenewProductID string     `json:"-"`
	HistoryRevision    string     `json:"-"`
	RevocationDate     *time.Time `json:"-"`
	LastCheckedAt      *time.Time `json:"-"`
}

// SameState reports whether s and o hold the same state (ignoring
// bookkeeping such as LastSignedDate and LastCheckedAt).
func (s *Subscription) SameState(o *Subscription) bool {
	if s == nil || o == nil {
		return s == o
	}
	return s.AppAccountToken == o.AppAccountToken && s.CustomerID == o.CustomerID &&
		s.Environment == o.Environment && s.ProductID == o.ProductID &&
		s.SubscriptionGroupIdentifier == o.SubscriptionGroupIdentifier && s.Status == o.Status &&
		timeEqual(s.ExpiresDate, o.ExpiresDate) && boolEqual(s.AutoRenewStatus, o.AutoRenewStatus) &&
		s.LatestTransactionID == o.LatestTransactionID && s.TransactionCount == o.TransactionCount &&
		s.AutoRenewProductID == o.AutoRenewProductID && timeEqual(s.RevocationDate, o.RevocationDate)
}

func timeEqual(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

func boolEqual(a, b *bool) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

const subscriptionSelect = `SELECT s.original_transaction_id, COALESCE(s.app_account_token::text, ''),
	COALESCE(s.customer_id, ''), s.environment, s.product_id, s.subscription_group_identifier, s.status,
	s.expires_date, s.auto_renew_status, s.latest_transaction_id, s.transaction_count, s.last_signed_date,
	s.auto_renew_product_id, s.history_revision, s.revocation_date, s.last_checked_at
	FROM subscriptions s`

func collectSubscriptions(rows pgx.Rows) ([]*Subscription, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (*Subscription, error) {
		var s Subscription
		var status int16
		var lastSigned int64
		err := row.Scan(&s.OriginalTransactionID, &s.AppAccountToken, &s.CustomerID, &s.Environment,
			&s.ProductID, &s.SubscriptionGroupIdentifier, &status, &s.ExpiresDate, &s.AutoRenewStatus,
			&s.LatestTransactionID, &s.TransactionCount, &lastSigned, &s.AutoRenewProductID,
			&s.HistoryRevision, &s.RevocationDate, &s.LastCheckedAt)
		if err != nil {
			return nil, fmt.Errorf("ledger: reading subscription: %w", err)
		}
		s.Status = StatusName(int(status))
		if status == 0 {
			s.Status = "unknown"
		}
		if lastSigned > 0 {
			t := time.UnixMilli(lastSigned).UTC()
			s.LastSignedDate = &t
		}
		for _, tp := range []**time.Time{&s.ExpiresDate, &s.RevocationDate, &s.LastCheckedAt} {
			if *tp != nil {
				u := (*tp).UTC()
				*tp = &u
			}
		}
		return &s, nil
	})
}

// Subscription returns the ledger's view of one subscription, or
// ErrNotFound.
func (l *Ledger) Subscription(ctx context.Context, originalTransactionID string) (*Subscription, error) {
	rows, err := l.db.Query(ctx, subscriptionSelect+" WHERE s.original_transaction_id = $1", originalTransactionID)
	if err != nil {
		return nil, err
	}
	subs, err := collectSubscriptions(rows)
	if err != nil {
		return nil, err
	}
	if len(subs) == 0 {
		return nil, ErrNotFound
	}
	return subs[0], nil
}

// SubscriptionsByAppAccountToken returns every subscription whose Apple
// appAccountToken is token, ordered by id; ErrNotFound when none.
func (l *Ledger) SubscriptionsByAppAccountToken(ctx context.Context, token string) ([]*Subscription, error) {
	if !isUUID(token) {
		return nil, fmt.Errorf("appAccountToken %q is not a UUID", token)
	}
	return l.subscriptionsWhere(ctx, "s.app_account_token = $1::uuid", token)
}

// SubscriptionsByCustomerID returns every subscription linked to the
// company's customer id, ordered by id; ErrNotFound when none.
func (l *Ledger) SubscriptionsByCustomerID(ctx context.Context, customerID string) ([]*Subscription, error) {
	return l.subscriptionsWhere(ctx, "s.customer_id = $1", customerID)
}

func (l *Ledger) subscriptionsWhere(ctx context.Context, where string, arg any) ([]*Subscription, error) {
	rows, err := l.db.Query(ctx, subscriptionSelect+" WHERE "+where+" ORDER BY s.original_transaction_id", arg)
	if err != nil {
		return nil, err
	}
	subs, err := collectSubscriptions(rows)
	if err != nil {
		return nil, err
	}
	if len(subs) == 0 {
		return nil, ErrNotFound
	}
	return subs, nil
}

// HistoryRevision returns the revision saved after the last complete history
// sync of a subscription ("" when never synced).
func (l *Ledger) HistoryRevision(ctx context.Context, originalTransactionID string) (string, error) {
	var rev string
	err := l.db.QueryRow(ctx, "SELECT history_revision FROM subscriptions WHERE original_transaction_id = $1", originalTransactionID).Scan(&rev)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return rev, err
}

// SetHistoryRevision saves the revision of the last page of a complete
// history sync, for incremental syncs later. It works on a pool; on WithTx of
// the transaction that applied the last page, the revision commits with it.
func (l *Ledger) SetHistoryRevision(ctx context.Context, originalTransactionID, revision string) error {
	_, err := l.db.Exec(ctx, `INSERT INTO subscriptions (original_transaction_id, history_revision, history_synced_at)
		VALUES ($1, $2, now()) ON CONFLICT (original_transaction_id)
		DO UPDATE SET history_revision = excluded.history_revision, history_synced_at = now()`,
		originalTransactionID, revision)
	return err
}
