package appstore

import (
	"context"
	"net/http"
)

// Order lookup statuses (OrderLookupResponse.Status).
const (
	OrderLookupValid   = 0
	OrderLookupInvalid = 1
)

// LookUpOrderID returns the transactions of the order orderID, the id on
// the customer's emailed receipt. Status OrderLookupInvalid means Apple
// knows no such order. The Environment returned is the one that answered
// (Sandbox after a fallback).
func (c *Client) LookUpOrderID(ctx context.Context, orderID string) (*OrderLookupResponse, Environment, error) {
	id, err := pathID("LookUpOrderID: orderID", orderID)
	if err != nil {
		return nil, "", err
	}
	return callWithFallback[OrderLookupResponse](ctx, c, request{
		endpoint: EndpointOrderLookup, method: http.MethodGet, path: "/inApps/v1/lookup/" + id,
	})
}
