package sim

import (
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/storesync/storesync/appstore"
)

// Renewal-date extensions (Apple's "Extending the renewal date for
// auto-renewable subscriptions"): the latest transaction's expiresDate
// moves by up to 90 days, twice per 365 days at most, for active
// subscriptions that have paid at least once and are not in a free offer.
const (
	maxExtendByDays     = 90
	maxExtensionsInYear = 2
	maxRequestIDLength  = 128
)

var (
	errInvalidOriginalTransactionID = apiError{400, 4000008, "Invalid original transaction id."}
	errInvalidExtendByDays          = apiError{400, 4000009, "Invalid extend by days value."}
	errInvalidExtendReasonCode      = apiError{400, 4000010, "Invalid extend reason code."}
	errInvalidRequestIdentifier     = apiError{400, 4000011, "Invalid request identifier."}
	errExtensionIneligible          = apiError{403, 4030004, "Forbidden - subscription state ineligible for extension."}
	errMaxExtensions                = apiError{403, 4030005, "Forbidden - subscription has reached maximum extension count."}
	errFamilyExtensionIneligible    = apiError{403, 4030007, "Subscriptions that users obtain through Family Sharing can't get a renewal date extension directly."}
)

// extensionsInYear counts the extensions of s in the 365 days before now.
func (s *subscription) extensionsInYear(now time.Time) int {
	n := 0
	for _, at := range s.extensions {
		if now.Sub(at) < 365*day {
			n++
		}
	}
	return n
}

// extensionRefusal is why s may not be extended now (nil: it may). Family
// sharing is the caller's question: the single-subscription endpoint
// refuses it, a mass extension includes it.
func (s *subscription) extensionRefusal(now time.Time) *apiError {
	l := s.latest()
	if s.status(now) != appstore.StatusActive || l.offerDisc == "FREE_TRIAL" {
		return &errExtensionIneligible
	}
	paid := false
	for _, t := range s.txs {
		paid = paid || t.price > 0
	}
	if !paid {
		return &errExtensionIneligible
	}
	if s.extensionsInYear(now) >= maxExtensionsInYear {
		return &errMaxExtensions
	}
	return nil
}

// extendRenewal moves s's expiresDate (and renewal date) days later now;
// the latest transaction counts as modified. Callers checked
// extensionRefusal and hold the write lock; they send the notification.
func (w *world) extendRenewal(s *subscription, days int) appstore.ExtendRenewalDateResponse {
	l := s.latest()
	l.expires = l.expires.Add(time.Duration(days) * day)
	w.touchTx(l)
	s.extensions = append(s.extensions, w.now())
	w.schedule(s)
	return appstore.ExtendRenewalDateResponse{
		OriginalTransactionID: s.otid, WebOrderLineItemID: l.webOrder,
		Success: true, EffectiveDate: appstore.MillisOf(l.expires),
	}
}

// extendRequest is ExtendRenewalDateRequest (and MassExtendRenewalDateRequest)
// decoded so that a missing field is told from a zero one.
type extendRequest struct {
	ExtendByDays           *int      `json:"extendByDays"`
	ExtendReasonCode       *int      `json:"extendReasonCode"`
	RequestIdentifier      *string   `json:"requestIdentifier"`
	ProductID              *string   `json:"productId"`
	StorefrontCountryCodes *[]string `json:"storefrontCountryCodes"`
}

// readExtendRequest decodes an extension request body; 4000000 when it is
// not JSON of the right shape.
func readExtendRequest(r *http.Request) (extendRequest, *apiError) {
	var req extendRequest
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err != nil || json.Unmarshal(b, &req) != nil {
		return req, &errGeneralBadRequest
	}
	return req, nil
}

// daysError is 4000009 unless extendByDays is 1–90.
func (q extendRequest) daysError() *apiError {
	if q.ExtendByDays == nil || *q.ExtendByDays < 1 || *q.ExtendByDays > maxExtendByDays {
		return &errInvalidExtendByDays
	}
	return nil
}

// reasonError is 4000010 unless extendReasonCode is 0–3.
func (q extendRequest) reasonError() *apiError {
	c := q.ExtendReasonCode
	if c == nil || *c < appstore.ExtendReasonUndeclared || *c > appstore.ExtendReasonServiceIssue {
		return &errInvalidExtendReasonCode
	}
	return nil
}

// firstError returns the first non-nil check, so each endpoint lists its
// checks in the order Apple documents its errors.
func firstError(checks ...func() *apiError) *apiError {
	for _, c := range checks {
		if e := c(); e != nil {
			return e
		}
	}
	return nil
}

// extendSubscription serves Extend a Subscription Renewal Date: PUT
// /inApps/v1/subscriptions/extend/{originalTransactionId}. On success the
// latest transaction's expiresDate moves, RENEWAL_EXTENDED is sent and the
// answer is an ExtendRenewalDateResponse whose effectiveDate is the new
// expiresDate.
//
// The call is idempotent per requestIdentifier: repeating a request that
// succeeded (same subscription and environment) answers the first answer
// again and extends nothing, whatever the rest of the body says. Refused
// requests are not remembered.
//
// Errors: a malformed id 4000008; an unreadable body 4000000; extendByDays
// missing or outside 1–90 4000009; extendReasonCode missing or outside 0–3
// 4000010; requestIdentifier missing, empty or over 128 characters
// 4000011; not a subscription's original transaction id in this
// environment 404 4040005; family-shared 403 4030007; not active, in a
// free offer or never paid 403 4030004; two extensions in the past 365
// days 403 4030005.
func (s *Simulator) extendSubscription(w http.ResponseWriter, r *http.Request, env appstore.Environment) {
	id := r.PathValue("id")
	if !validID(id) {
		writeError(w, errInvalidOriginalTransactionID)
		return
	}
	req, aerr := readExtendRequest(r)
	if aerr == nil {
		aerr = firstError(req.daysError, req.reasonError, func() *apiError {
			if id := req.RequestIdentifier; id == nil || *id == "" || len(*id) > maxRequestIDLength {
				return &errInvalidRequestIdentifier
			}
			return nil
		})
	}
	if aerr != nil {
		writeError(w, *aerr)
		return
	}
	wd := s.world
	wd.mu.Lock()
	defer wd.mu.Unlock()
	sub := wd.env(env).subByOTID[id]
	if sub == nil {
		writeError(w, errOriginalTransactionIDNotFound)
		return
	}
	key := string(env) + "|" + id + "|" + *req.RequestIdentifier
	if done, ok := wd.extendRequests[key]; ok {
		writeJSON(w, http.StatusOK, done)
		return
	}
	if sub.ownership != "PURCHASED" {
		writeError(w, errFamilyExtensionIneligible)
		return
	}
	if aerr := sub.extensionRefusal(wd.now()); aerr != nil {
		writeError(w, *aerr)
		return
	}
	resp := wd.extendRenewal(sub, *req.ExtendByDays)
	wd.extendRequests[key] = resp
	wd.send(wd.newNote(wd.xrng, sub, "RENEWAL_EXTENDED", ""))
	writeJSON(w, http.StatusOK, resp)
}
