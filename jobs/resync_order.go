package jobs

import (
	"context"
	"errors"
	"fmt"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/storesync/storesync/appstore"
)

// maxOrderIDLength bounds an order id: Apple's are about 10 characters
// (e.g. MKJ9XFLQ5L); anything much longer was pasted wrong.
const maxOrderIDLength = 64

// ValidateOrderID checks the shape of an App Store order id, the "Order ID"
// on the customer's emailed receipt from Apple: letters and digits, at most
// 64 of them. It says nothing about whether Apple knows the order.
func ValidateOrderID(orderID string) error {
	if orderID == "" || len(orderID) > maxOrderIDLength {
		return fmt.Errorf("orderId %q is not an App Store order id: copy the Order ID (e.g. MKJ9XFLQ5L) from the customer's receipt email", clip(orderID))
	}
	for i := 0; i < len(orderID); i++ {
		c := orderID[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return fmt.Errorf("orderId %q is not an App Store order id (letters and digits only): copy the Order ID (e.g. MKJ9XFLQ5L) from the customer's receipt email", clip(orderID))
		}
	}
	return nil
}

// orderSubscriptions asks Apple's Look Up Order ID (from the shared budget)
// which purchases the order holds and returns their originalTransactionIds,
// in Apple's order, without repeats. An order Apple does not know (status 1)
// cancels the re-sync with a message saying so; transient errors and 429s
// go back to River.
func (d *Deps) orderSubscriptions(ctx context.Context, orderID string) ([]string, error) {
	if d.Apple == nil {
		return nil, fmt.Errorf("jobs: no App Store client configured")
	}
	type answer struct {
		resp *appstore.OrderLookupResponse
		env  appstore.Environment
	}
	a, err := retryTransient(ctx, d, func(ctx context.Context) (answer, error) {
		resp, env, err := d.Apple.LookUpOrderID(ctx, orderID)
		d.Metrics.appleCall(appstore.EndpointOrderLookup, err)
		return answer{resp, env}, err
	})
	if err != nil {
		if isPermanentAppleError(err) {
			return nil, river.JobCancel(fmt.Errorf("orderId %s: %s", orderID, reasonOf(err)))
		}
		return nil, appleOutcome(err)
	}
	if a.resp.Status != appstore.OrderLookupValid || len(a.resp.SignedTransactions) == 0 {
		return nil, river.JobCancel(fmt.Errorf("orderId %s: Apple knows no such order (Look Up Order ID status %d, invalid): check the Order ID on the customer's receipt email, and that it is a purchase in this app", orderID, a.resp.Status))
	}
	v, err := d.verifierFor(a.env)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, jws := range a.resp.SignedTransactions {
		tx, err := v.VerifyTransaction(jws)
		if err != nil {
			return nil, river.JobCancel(fmt.Errorf("orderId %s: Apple's transaction fails verification: %w", orderID, err))
		}
		if tx.OriginalTransactionID != "" && !containsString(ids, tx.OriginalTransactionID) {
			ids = append(ids, tx.OriginalTransactionID)
		}
	}
	return ids, nil
}

// LookUpOrder returns the originalTransactionIds of the purchases in an
// App Store order, asking Apple's Look Up Order ID through d.Apple (and so
// through the shared rate budget), with the in-job retries of transient
// errors. A malformed order id fails before any call (ValidateOrderID's
// message); an order Apple does not know fails saying so; no App Store
// client configured fails naming it. It is what a re-sync by orderId
// does first, for callers that only want to find the subscriptions (the
// ops console's search).
func LookUpOrder(ctx context.Context, d *Deps, orderID string) ([]string, error) {
	if err := ValidateOrderID(orderID); err != nil {
		return nil, err
	}
	ids, err := d.orderSubscriptions(ctx, orderID)
	// Outside a job, River's cancel marker means nothing: give the reason.
	var cancel *rivertype.JobCancelError
	if errors.As(err, &cancel) {
		return nil, cancel.Unwrap()
	}
	return ids, err
}
