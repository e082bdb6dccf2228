package appstore

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
)

// Sort orders of Get Transaction History, by each record's last
// modification.
const (
	SortAscending  = "ASCENDING"
	SortDescending = "DESCENDING"
)

// Product types (HistoryQuery.ProductTypes, TransactionPayload.Type uses
// Apple's longer names).
const (
	ProductTypeAutoRenewable = "AUTO_RENEWABLE"
	ProductTypeNonRenewable  = "NON_RENEWABLE"
	ProductTypeConsumable    = "CONSUMABLE"
	ProductTypeNonConsumable = "NON_CONSUMABLE"
)

// In-app ownership types (HistoryQuery.InAppOwnershipType,
// TransactionPayload.InAppOwnershipType).
const (
	OwnershipPurchased    = "PURCHASED"
	OwnershipFamilyShared = "FAMILY_SHARED"
)

// HistoryQuery holds the query parameters of Get Transaction History (v2).
// Zero values are left out. Keep every field but Revision the same while
// paging: Apple's revision belongs to the query.
type HistoryQuery struct {
	// Revision is the previous page's revision; empty for the first page.
	// A revision saved from the last page of an ASCENDING query asks for
	// only what changed since.
	Revision string
	// StartDate keeps purchases at or after it; EndDate keeps purchases
	// before it (UNIX ms; zero: unbounded).
	StartDate, EndDate Millis
	// ProductIDs, ProductTypes (ProductType…) and
	// SubscriptionGroupIdentifiers filter; several values are OR-ed.
	ProductIDs                   []string
	ProductTypes                 []string
	SubscriptionGroupIdentifiers []string
	// Sort is SortAscending (Apple's default) or SortDescending.
	Sort string
	// InAppOwnershipType is OwnershipPurchased or OwnershipFamilyShared.
	InAppOwnershipType string
	// Revoked: nil gives both, true only revoked, false only non-revoked.
	Revoked *bool
}

// values encodes q, each multi-valued parameter as a repeated key.
func (q HistoryQuery) values() url.Values {
	v := url.Values{}
	if q.Revision != "" {
		v.Set("revision", q.Revision)
	}
	if q.StartDate != 0 {
		v.Set("startDate", strconv.FormatInt(int64(q.StartDate), 10))
	}
	if q.EndDate != 0 {
		v.Set("endDate", strconv.FormatInt(int64(q.EndDate), 10))
	}
	v["productId"] = q.ProductIDs
	v["productType"] = q.ProductTypes
	v["subscriptionGroupIdentifier"] = q.SubscriptionGroupIdentifiers
	for k, vs := range v {
		if len(vs) == 0 {
			delete(v, k)
		}
	}
	if q.Sort != "" {
		v.Set("sort", q.Sort)
	}
	if q.InAppOwnershipType != "" {
		v.Set("inAppOwnershipType", q.InAppOwnershipType)
	}
	if q.Revoked != nil {
		v.Set("revoked", strconv.FormatBool(*q.Revoked)) // lower case, as Apple documents
	}
	return v
}

// GetTransactionHistory returns one page (up to 20 signed transactions of
// every product type and state) of the history of the customer owning
// anyTransactionID. Ask for the next page with q.Revision = page.Revision
// while page.HasMore, or use TransactionHistory. The Environment returned is
// the one that answered (Sandbox after a fallback); ask for later pages there.
func (c *Client) GetTransactionHistory(ctx context.Context, anyTransactionID string, q HistoryQuery) (*HistoryResponse, Environment, error) {
	req, err := historyRequest(anyTransactionID, q)
	if err != nil {
		return nil, "", err
	}
	return callWithFallback[HistoryResponse](ctx, c, req)
}

func historyRequest(anyTransactionID string, q HistoryQuery) (request, error) {
	id, err := pathID("GetTransactionHistory: anyTransactionID", anyTransactionID)
	if err != nil {
		return request{}, err
	}
	return request{
		endpoint: EndpointHistory, method: http.MethodGet,
		path: "/inApps/v2/history/" + id, query: q.values(),
	}, nil
}

// errStuckRevision stops a pager whose answer would make it ask for the
// same page forever.
var errStuckRevision = errors.New("appstore: transaction history has more pages but no new revision")

// TransactionHistory pages through the history of the customer owning id,
// starting at q.Revision (empty: the beginning), yielding each page as it
// arrives: nothing is collected in memory. It stops after the page with
// HasMore false, at the first error (yielded once, with a nil page), or as
// soon as the loop body breaks. The last page's Revision is what to save
// for the next incremental sync.
//
// The first page may come from the sandbox (SandboxFallback); every later
// page is asked of the environment that answered the first, since a
// revision belongs to it.
func (c *Client) TransactionHistory(ctx context.Context, id string, q HistoryQuery) iter.Seq2[*HistoryResponse, error] {
	return func(yield func(*HistoryResponse, error) bool) {
		var env Environment
		for {
			req, err := historyRequest(id, q)
			var page *HistoryResponse
			if err == nil {
				if env == "" {
					page, env, err = callWithFallback[HistoryResponse](ctx, c, req)
				} else {
					page, err = call[HistoryResponse](ctx, c, env, req)
				}
			}
			if err == nil && page.HasMore && (page.Revision == "" || page.Revision == q.Revision) {
				err = fmt.Errorf("%w (revision %q)", errStuckRevision, page.Revision)
			}
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(page, nil) || !page.HasMore {
				return
			}
			q.Revision = page.Revision
		}
	}
}
