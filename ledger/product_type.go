package ledger

import "github.com/storesync/storesync/appstore"

// AutoRenewableType is the transaction type ("type" of a signed
// transaction) of an auto-renewable subscription, the only kind of purchase
// the ledger keeps as a subscription.
const AutoRenewableType = "Auto-Renewable Subscription"

// IsSubscriptionTransaction reports whether a signed transaction belongs to
// an auto-renewable subscription, so that it may create or change a
// subscription row.
//
// Consumables, non-consumables and non-renewing subscriptions ("Consumable",
// "Non-Consumable", "Non-Renewing Subscription") reach the ledger too: a
// ONE_TIME_CHARGE or REFUND notification, or a history read with no
// subscription-group filter, carries them. Apple has no status, renewal info
// or expiry for them, so making them subscriptions would show customers
// "subscribed" to a coin pack; they are stored as transactions only.
//
// A transaction with no type at all (Apple always sends one; hand-built
// payloads may not) counts as a subscription's, as the ledger always read
// it. A nil payload is not a subscription's.
func IsSubscriptionTransaction(p *appstore.TransactionPayload) bool {
	return p != nil && (p.Type == AutoRenewableType || p.Type == "")
}
