package appstore

import (
	"context"
	"net/http"
	"net/url"
)

// GetRefundHistory returns one page (up to 20) of the refunded transactions
// of the customer owning anyTransactionID. Pass "" as revision for the first
// page and the previous page's Revision for the next while HasMore. The
// Environment returned is the one that answered (Sandbox after a fallback).
func (c *Client) GetRefundHistory(ctx context.Context, anyTransactionID, revision string) (*RefundHistoryResponse, Environment, error) {
	id, err := pathID("GetRefundHistory: anyTransactionID", anyTransactionID)
	if err != nil {
		return nil, "", err
	}
	q := url.Values{}
	if revision != "" {
		q.Set("revision", revision)
	}
	return callWithFallback[RefundHistoryResponse](ctx, c, request{
		endpoint: EndpointRefundHistory, method: http.MethodGet,
		path: "/inApps/v2/refund/lookup/" + id, query: q,
	})
}
