package appstore

import (
	"context"
	"net/http"
)

// GetTransactionInfo returns the signed transaction transactionID (an
// originalTransactionId is accepted too), of any product type, finished or
// not. The Environment returned is the one that answered (Sandbox after a
// fallback).
func (c *Client) GetTransactionInfo(ctx context.Context, transactionID string) (*TransactionInfoResponse, Environment, error) {
	id, err := pathID("GetTransactionInfo: transactionID", transactionID)
	if err != nil {
		return nil, "", err
	}
	return callWithFallback[TransactionInfoResponse](ctx, c, request{
		endpoint: EndpointTransaction, method: http.MethodGet, path: "/inApps/v1/transactions/" + id,
	})
}
