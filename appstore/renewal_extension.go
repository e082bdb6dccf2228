package appstore

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// Renewal-date extension endpoints. storesync's jobs do not call them, so
// they are not in Endpoints; DefaultRateLimits includes them. They never
// fall back to the sandbox: they change state.
const (
	// EndpointExtendRenewalDate is Extend a Subscription Renewal Date (20 req/s).
	EndpointExtendRenewalDate Endpoint = "extend-renewal-date"
	// EndpointMassExtendRenewalDate is Extend Renewal Dates for All Active
	// Subscribers (1 req/s).
	EndpointMassExtendRenewalDate Endpoint = "mass-extend-renewal-date"
	// EndpointMassExtendStatus is Get Status of Subscription Renewal Date
	// Extensions. Apple publishes no limit; 1 req/s is assumed.
	EndpointMassExtendStatus Endpoint = "mass-extend-status"
)

// Extend reason codes (ExtendRenewalDateRequest.ExtendReasonCode).
const (
	ExtendReasonUndeclared           = 0
	ExtendReasonCustomerSatisfaction = 1
	ExtendReasonOther                = 2
	ExtendReasonServiceIssue         = 3
)

// ExtendRenewalDateRequest is the body of Extend a Subscription Renewal Date.
type ExtendRenewalDateRequest struct {
	// ExtendByDays is 1 to 90.
	ExtendByDays int `json:"extendByDays"`
	// ExtendReasonCode is one of ExtendReason….
	ExtendReasonCode int `json:"extendReasonCode"`
	// RequestIdentifier is a UUID you choose, making the call idempotent.
	RequestIdentifier string `json:"requestIdentifier"`
}

// ExtendRenewalDateResponse is the body answered to an extension.
type ExtendRenewalDateResponse struct {
	OriginalTransactionID string `json:"originalTransactionId"`
	WebOrderLineItemID    string `json:"webOrderLineItemId"`
	Success               bool   `json:"success"`
	EffectiveDate         Millis `json:"effectiveDate"`
}

// MassExtendRenewalDateRequest is the body of Extend Renewal Dates for All
// Active Subscribers.
type MassExtendRenewalDateRequest struct {
	ExtendByDays      int    `json:"extendByDays"`
	ExtendReasonCode  int    `json:"extendReasonCode"`
	RequestIdentifier string `json:"requestIdentifier"`
	ProductID         string `json:"productId"`
	// StorefrontCountryCodes limits the extension to these ISO 3166-1
	// alpha-3 storefronts; empty: all.
	StorefrontCountryCodes []string `json:"storefrontCountryCodes,omitempty"`
}

// MassExtendRenewalDateResponse is the body answered to a mass extension.
type MassExtendRenewalDateResponse struct {
	RequestIdentifier string `json:"requestIdentifier"`
}

// MassExtendRenewalDateStatusResponse reports the progress of a mass
// extension.
type MassExtendRenewalDateStatusResponse struct {
	RequestIdentifier string `json:"requestIdentifier"`
	Complete          bool   `json:"complete"`
	CompleteDate      Millis `json:"completeDate,omitempty"`
	SucceededCount    Int    `json:"succeededCount"`
	FailedCount       Int    `json:"failedCount"`
}

// ExtendSubscriptionRenewalDate extends one subscription's renewal date.
// Apple refuses some (4030004 ineligible, 4030005 too many extensions,
// 4030007 family shared).
func (c *Client) ExtendSubscriptionRenewalDate(ctx context.Context, originalTransactionID string, req ExtendRenewalDateRequest) (*ExtendRenewalDateResponse, error) {
	id, err := pathID("ExtendSubscriptionRenewalDate: originalTransactionID", originalTransactionID)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("appstore: encoding ExtendRenewalDateRequest: %w", err)
	}
	return call[ExtendRenewalDateResponse](ctx, c, c.env, request{
		endpoint: EndpointExtendRenewalDate, method: http.MethodPut,
		path: "/inApps/v1/subscriptions/extend/" + id, body: body,
	})
}

// ExtendRenewalDateForAllActiveSubscribers starts extending every active
// subscription of req.ProductID. Apple reports completion with a
// RENEWAL_EXTENSION/SUMMARY notification; poll with
// GetStatusOfSubscriptionRenewalDateExtensions.
func (c *Client) ExtendRenewalDateForAllActiveSubscribers(ctx context.Context, req MassExtendRenewalDateRequest) (*MassExtendRenewalDateResponse, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("appstore: encoding MassExtendRenewalDateRequest: %w", err)
	}
	return call[MassExtendRenewalDateResponse](ctx, c, c.env, request{
		endpoint: EndpointMassExtendRenewalDate, method: http.MethodPost,
		path: "/inApps/v1/subscriptions/extend/mass", body: body,
	})
}

// GetStatusOfSubscriptionRenewalDateExtensions reports the progress of the
// mass extension requestIdentifier of productID; 404 4040009 when unknown.
//
// The path is …/extend/mass/{productId}/{requestIdentifier} as Apple
// documents it. (Apple's library tests pass the two arguments swapped.)
func (c *Client) GetStatusOfSubscriptionRenewalDateExtensions(ctx context.Context, productID, requestIdentifier string) (*MassExtendRenewalDateStatusResponse, error) {
	p, err := pathID("GetStatusOfSubscriptionRenewalDateExtensions: productID", productID)
	if err != nil {
		return nil, err
	}
	r, err := pathID("GetStatusOfSubscriptionRenewalDateExtensions: requestIdentifier", requestIdentifier)
	if err != nil {
		return nil, err
	}
	return call[MassExtendRenewalDateStatusResponse](ctx, c, c.env, request{
		endpoint: EndpointMassExtendStatus, method: http.MethodGet,
		path: "/inApps/v1/subscriptions/extend/mass/" + p + "/" + r,
	})
}
