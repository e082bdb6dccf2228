package appstore

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// GetAllSubscriptionStatuses returns the latest signed state of every
// subscription of the customer owning anyTransactionID (any
// originalTransactionId, transactionId or appTransactionId of theirs),
// grouped by subscription group. statuses, when given, keeps only those
// status values (StatusActive, ...; OR-ed); none means all.
//
// The Environment returned is the one that answered (Sandbox after a
// fallback). Errors are *APIError for Apple's answers.
func (c *Client) GetAllSubscriptionStatuses(ctx context.Context, anyTransactionID string, statuses ...int) (*StatusResponse, Environment, error) {
	id, err := pathID("GetAllSubscriptionStatuses: anyTransactionID", anyTransactionID)
	if err != nil {
		return nil, "", err
	}
	q := url.Values{}
	for _, s := range statuses {
		q.Add("status", strconv.Itoa(s))
	}
	return callWithFallback[StatusResponse](ctx, c, request{
		endpoint: EndpointStatuses, method: http.MethodGet,
		path: "/inApps/v1/subscriptions/" + id, query: q,
	})
}
