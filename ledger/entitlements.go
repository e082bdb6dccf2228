package ledger

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// EntitlementRules says which entitlements a product grants to a purchase
// made in an App Store environment ("Production", "Sandbox", "Xcode").
// config.Entitlements implements it (the file of STORESYNC_ENTITLEMENTS_FILE);
// the ledger only asks, so that the mapping stays configuration.
type EntitlementRules interface {
	Grants(productID, environment string) []string
}

// WithEntitlements returns a ledger (on the same connection) that computes
// entitlements with rules; nil rules grant nothing. Set it once per process
// before any write: the change feed records entitlement changes with the
// rules in force when the change was applied.
func (l *Ledger) WithEntitlements(rules EntitlementRules) *Ledger {
	return &Ledger{db: l.db, pool: l.pool, rules: rules}
}

// grantingStatus reports whether Apple's status grants access: active (1)
// and billing grace period (4) do; billing retry (3), expired (2) and
// revoked (5) do not, as Apple defines them.
func grantingStatus(status string) bool {
	return status == "active" || status == "grace_period"
}

// entitlementsOf returns the sorted entitlements s grants now under l's
// rules: none unless its status grants access (see grantingStatus) and its
// product grants them in its environment.
func (l *Ledger) entitlementsOf(s *Subscription) []string {
	if s == nil || l.rules == nil || !grantingStatus(s.Status) {
		return nil
	}
	return l.rules.Grants(s.ProductID, s.Environment)
}

// Entitlement is one entitlement a customer holds, with the subscription
// that grants it. Its JSON is the contract of GET /v1/…/entitlements and
// `storesync show --entitlements`.
type Entitlement struct {
	Entitlement           string     `json:"entitlement"`
	ProductID             string     `json:"productId"`
	OriginalTransactionID string     `json:"originalTransactionId"`
	Status                string     `json:"status"`
	Environment           string     `json:"environment"`
	ExpiresDate           *time.Time `json:"expiresDate,omitempty"`
	// LastCheckedAt is when the ledger last compared the subscription with
	// Apple (reconciliation or re-sync); absent when never, in which case
	// LastSignedDate, the newest fact Apple signed, says how fresh it is.
	LastCheckedAt  *time.Time `json:"lastCheckedAt,omitempty"`
	LastSignedDate *time.Time `json:"lastSignedDate,omitempty"`
}

// Entitlements is the answer of an entitlement lookup: what the customer
// (or token, or subscription) holds now, and the subscriptions looked at.
type Entitlements struct {
	Entitlements  []Entitlement `json:"entitlements"`
	Subscriptions int           `json:"subscriptions"`
}

// EntitlementsByCustomerID returns the entitlements of every subscription
// linked to customerID (by the subscriptions_customer_id index). An unknown
// customer holds none: the answer is empty, not ErrNotFound, so a backend
// treats "never bought" and "unknown" alike.
func (l *Ledger) EntitlementsByCustomerID(ctx context.Context, customerID string) (*Entitlements, error) {
	return l.entitlementsWhere(ctx, "s.customer_id = $1", customerID)
}

// EntitlementsByAppAccountToken is EntitlementsByCustomerID by Apple's
// appAccountToken (subscriptions_app_account_token index); a token that is
// not a UUID is an error naming it.
func (l *Ledger) EntitlementsByAppAccountToken(ctx context.Context, token string) (*Entitlements, error) {
	if !isUUID(token) {
		return nil, fmt.Errorf("appAccountToken %q is not a UUID", token)
	}
	return l.entitlementsWhere(ctx, "s.app_account_token = $1::uuid", token)
}

// EntitlementsByOriginalTransactionID is EntitlementsByCustomerID for one
// subscription (its primary key).
func (l *Ledger) EntitlementsByOriginalTransactionID(ctx context.Context, otid string) (*Entitlements, error) {
	return l.entitlementsWhere(ctx, "s.original_transaction_id = $1", otid)
}

// entitlementsWhere gathers the entitlements of the subscriptions matching
// where. When several subscriptions grant the same entitlement (a customer
// with two Apple accounts, or a sandbox and a production purchase), the one
// that lasts longest answers: no expiry beats any expiry, then the later
// expiry, then the smaller originalTransactionId so the answer is stable.
func (l *Ledger) entitlementsWhere(ctx context.Context, where string, arg any) (*Entitlements, error) {
	rows, err := l.db.Query(ctx, subscriptionSelect+" WHERE "+where+" ORDER BY s.original_transaction_id", arg)
	if err != nil {
		return nil, fmt.Errorf("ledger: reading entitlements: %w", err)
	}
	subs, err := collectSubscriptions(rows)
	if err != nil {
		return nil, err
	}
	return l.entitlementsFrom(subs), nil
}

func (l *Ledger) entitlementsFrom(subs []*Subscription) *Entitlements {
	best := map[string]Entitlement{}
	for _, s := range subs {
		for _, name := range l.entitlementsOf(s) {
			e := Entitlement{
				Entitlement: name, ProductID: s.ProductID, OriginalTransactionID: s.OriginalTransactionID,
				Status: s.Status, Environment: s.Environment, ExpiresDate: s.ExpiresDate,
				LastCheckedAt: s.LastCheckedAt, LastSignedDate: s.LastSignedDate,
			}
			if cur, ok := best[name]; !ok || lastsLonger(e.ExpiresDate, cur.ExpiresDate) {
				best[name] = e
			}
		}
	}
	out := &Entitlements{Entitlements: make([]Entitlement, 0, len(best)), Subscriptions: len(subs)}
	for _, e := range best {
		out.Entitlements = append(out.Entitlements, e)
	}
	sort.Slice(out.Entitlements, func(i, j int) bool {
		return out.Entitlements[i].Entitlement < out.Entitlements[j].Entitlement
	})
	return out
}

// lastsLonger reports whether expiry a is strictly later than b (nil: never
// expires). Subscriptions are visited in id order, so ties keep the first.
func lastsLonger(a, b *time.Time) bool {
	switch {
	case b == nil:
		return false
	case a == nil:
		return true
	}
	return a.After(*b)
}
