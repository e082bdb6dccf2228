package appstore

import (
	"context"
	"net/http"
)

// EndpointAppTransaction is Get App Transaction Info (50 req/s in
// production). It is not in Endpoints because storesync's jobs do not call
// it; DefaultRateLimits includes it.
const EndpointAppTransaction Endpoint = "app-transaction"

// AppTransactionInfoResponse is the body of Get App Transaction Info.
type AppTransactionInfoResponse struct {
	SignedAppTransactionInfo string `json:"signedAppTransactionInfo"`
}

// GetAppTransactionInfo returns the signed app transaction (the customer's
// purchase of the app itself) of the customer owning anyTransactionID; 404
// 4040019 when none exists. The Environment returned is the one that
// answered (Sandbox after a fallback).
func (c *Client) GetAppTransactionInfo(ctx context.Context, anyTransactionID string) (*AppTransactionInfoResponse, Environment, error) {
	id, err := pathID("GetAppTransactionInfo: anyTransactionID", anyTransactionID)
	if err != nil {
		return nil, "", err
	}
	return callWithFallback[AppTransactionInfoResponse](ctx, c, request{
		endpoint: EndpointAppTransaction, method: http.MethodGet,
		path: "/inApps/v1/transactions/appTransactions/" + id,
	})
}
