package sim

import (
	"slices"
	"strings"
	"time"

	"github.com/storesync/storesync/appstore"
)

// SubscriptionTruth is what a perfect ledger holds for one subscription at
// the simulated now. Field names follow `storesync show`.
type SubscriptionTruth struct {
	OriginalTransactionID string `json:"originalTransactionId"`
	AccountID             string `json:"accountId"`
	// AppAccountToken is Apple's: "" for family-shared subscriptions and
	// for customers whose token Apple was never told (their company
	// token is in /sim/ids and Account.CompanyAppAccountToken).
	AppAccountToken             string               `json:"appAccountToken,omitempty"`
	Environment                 appstore.Environment `json:"environment"`
	ProductID                   string               `json:"productId"` // of the latest transaction
	AutoRenewProductID          string               `json:"autoRenewProductId"`
	SubscriptionGroupIdentifier string               `json:"subscriptionGroupIdentifier"`
	InAppOwnershipType          string               `json:"inAppOwnershipType"`
	// Status is active, expired, billing_retry, grace_period or revoked
	// (Apple's 1–5, StatusCode).
	Status          string    `json:"status"`
	StatusCode      int       `json:"statusCode"`
	ExpiresDate     time.Time `json:"expiresDate"` // of the latest transaction
	AutoRenewStatus bool      `json:"autoRenewStatus"`
	// LatestTransactionID has the latest purchaseDate of the subscription.
	LatestTransactionID string `json:"latestTransactionId"`
	// TransactionCount counts every transaction of the subscription
	// (revoked and upgraded ones included).
	TransactionCount int `json:"transactionCount"`
	// Notifications are the UUIDs of every notification sent about it,
	// oldest first.
	Notifications []string `json:"notifications"`

	// OfferType and OfferIdentifier are the latest transaction's offer (0
	// and "" for none; 1 introductory, 2 promotional, 3 offer code).
	OfferType       int    `json:"offerType,omitempty"`
	OfferIdentifier string `json:"offerIdentifier,omitempty"`
	// RenewalOfferType and RenewalOfferIdentifier are the offer redeemed
	// for the next renewal, as renewal info states it (0 and "": none).
	RenewalOfferType       int    `json:"renewalOfferType,omitempty"`
	RenewalOfferIdentifier string `json:"renewalOfferIdentifier,omitempty"`
	// PriceIncreaseStatus is renewal info's priceIncreaseStatus: nil when
	// no price increase applies to the next renewal, 0 while the customer
	// has not consented, 1 once they did (or needed not).
	PriceIncreaseStatus *int `json:"priceIncreaseStatus,omitempty"`
	// RenewalExtensions counts the renewal-date extensions of the past 365
	// days (Apple allows two).
	RenewalExtensions int `json:"renewalExtensions,omitempty"`
	// RefundRequested: the customer asked for a refund
	// (CONSUMPTION_REQUEST) and Apple has not decided yet.
	RefundRequested bool `json:"refundRequested,omitempty"`
}

// Account is one simulated customer.
type Account struct {
	ID          string               `json:"id"`
	Environment appstore.Environment `json:"environment"`
	// AppAccountToken is the token the app set on the customer's
	// purchases, as Apple knows it ("" for ~30% of customers; Set App
	// Account Token changes single subscriptions, not this).
	AppAccountToken string `json:"appAccountToken,omitempty"`
	// CompanyAppAccountToken is the customer's token in the company's
	// records (/sim/ids): never empty; AppAccountToken when that is set.
	CompanyAppAccountToken string   `json:"companyAppAccountToken"`
	AppTransactionID       string   `json:"appTransactionId"`
	OriginalTransactionIDs []string `json:"originalTransactionIds"`
}

func (w *world) truthOf(s *subscription) SubscriptionTruth {
	now := w.now()
	l := s.latest()
	st := s.status(now)
	t := SubscriptionTruth{
		OriginalTransactionID:       s.otid,
		AccountID:                   s.acct.ID(),
		Environment:                 s.acct.env.env,
		ProductID:                   l.product.ID,
		AutoRenewProductID:          s.autoRenewProduct.ID,
		SubscriptionGroupIdentifier: s.group.ID,
		InAppOwnershipType:          s.ownership,
		Status:                      statusNames[st],
		StatusCode:                  st,
		ExpiresDate:                 l.expires,
		AutoRenewStatus:             s.autoRenew,
		LatestTransactionID:         l.id,
		TransactionCount:            len(s.txs),
		Notifications:               slices.Clone(s.notes),
	}
	t.AppAccountToken = s.appleToken()
	t.OfferType, t.OfferIdentifier = l.offerType, l.offerID
	if o := s.renewalOfferOf(); o != nil {
		t.RenewalOfferType, t.RenewalOfferIdentifier = o.typ, o.id
	}
	if pi := s.pendingPriceIncrease(); pi != nil {
		st := pi.status
		t.PriceIncreaseStatus = &st
	}
	t.RenewalExtensions = s.extensionsInYear(now)
	t.RefundRequested = s.refundRequested
	if t.Notifications == nil {
		t.Notifications = []string{}
	}
	return t
}

// Truth returns every subscription of both environments, production first,
// each ordered by originalTransactionId.
func (s *Simulator) Truth() []SubscriptionTruth {
	w := s.world
	w.mu.RLock()
	defer w.mu.RUnlock()
	out := make([]SubscriptionTruth, 0, len(w.subs))
	for _, e := range w.envs {
		for _, id := range sortedOTIDs(e) {
			out = append(out, w.truthOf(e.subByOTID[id]))
		}
	}
	return out
}

// TruthOf returns the truth of one subscription in either environment.
func (s *Simulator) TruthOf(originalTransactionID string) (SubscriptionTruth, bool) {
	w := s.world
	w.mu.RLock()
	defer w.mu.RUnlock()
	for _, e := range w.envs {
		if sub := e.subByOTID[originalTransactionID]; sub != nil {
			return w.truthOf(sub), true
		}
	}
	return SubscriptionTruth{}, false
}

// OriginalTransactionIDs lists every subscription of env, ordered; use it
// to build import files.
func (s *Simulator) OriginalTransactionIDs(env appstore.Environment) []string {
	w := s.world
	w.mu.RLock()
	defer w.mu.RUnlock()
	return sortedOTIDs(w.env(env))
}

// AccountOf returns the customer owning a subscription (any transaction id
// of it works too).
func (s *Simulator) AccountOf(transactionID string) (Account, bool) {
	w := s.world
	w.mu.RLock()
	defer w.mu.RUnlock()
	for _, e := range w.envs {
		if a, _ := w.lookup(e.env, transactionID); a != nil {
			out := Account{ID: a.ID(), Environment: e.env, AppAccountToken: a.token,
				CompanyAppAccountToken: a.companyToken, AppTransactionID: a.appTxID}
			for _, sub := range a.subs {
				out.OriginalTransactionIDs = append(out.OriginalTransactionIDs, sub.otid)
			}
			return out, true
		}
	}
	return Account{}, false
}

// sortedOTIDs orders ids numerically (equal-length decimal strings compare
// as numbers when compared by length first).
func sortedOTIDs(e *envWorld) []string {
	ids := make([]string, 0, len(e.subByOTID))
	for id := range e.subByOTID {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int {
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return strings.Compare(a, b)
	})
	return ids
}
