package sim

import (
	"net/http"
	"regexp"
	"slices"
	"time"

	"github.com/storesync/storesync/appstore"
)

// MassExtensionDelay is how long, on the simulated clock, a mass
// renewal-date extension takes from request to completion. Apple's take
// hours or days; the simulator applies every extension at once when the
// delay has passed (Advance past it), then sends the summary.
const MassExtensionDelay = time.Hour

var (
	errInvalidEmptyStorefronts = apiError{400, 4000027, "Invalid request. The storefront country code list is empty."}
	errInvalidStorefront       = apiError{400, 4000028, "Invalid request. A storefront country code is invalid."}
	errStatusRequestNotFound   = apiError{404, 4040009, "The server didn't find a subscription-renewal-date extension request for this requestIdentifier and productId combination."}
)

var storefrontPattern = regexp.MustCompile(`^[A-Z]{3}$`)

// massExtension is one Extend Renewal Dates for All Active Subscribers
// request and, once complete, its outcome.
type massExtension struct {
	env         appstore.Environment
	id          string // requestIdentifier
	productID   string
	storefronts []string // nil: every storefront
	days        int

	complete          bool
	completeDate      time.Time
	succeeded, failed int
}

// runMassExtension completes m now: every subscription of m's environment
// whose current product is m's, in m's storefronts, and active is tried in
// creation order. Those in a free offer period or never paid are skipped,
// as Apple only attempts eligible ones; those with two extensions in the
// past 365 days fail (RENEWAL_EXTENSION/FAILURE); the others are extended
// (RENEWAL_EXTENDED), family-shared ones included, since Apple extends
// family members with the purchase. RENEWAL_EXTENSION/SUMMARY follows.
// Callers hold the write lock.
func (w *world) runMassExtension(m *massExtension) {
	now := w.now()
	for _, s := range w.subs {
		if s.acct.env.env != m.env || s.product.ID != m.productID || s.status(now) != appstore.StatusActive {
			continue
		}
		if m.storefronts != nil && !slices.Contains(m.storefronts, s.acct.storefront.Code) {
			continue
		}
		switch refusal := s.extensionRefusal(now); {
		case refusal == nil:
			w.extendRenewal(s, m.days)
			m.succeeded++
			w.send(w.newNote(w.xrng, s, "RENEWAL_EXTENDED", ""))
		case refusal.code == errMaxExtensions.code:
			m.failed++
			w.send(w.newNote(w.xrng, s, "RENEWAL_EXTENSION", "FAILURE"))
		}
	}
	m.complete, m.completeDate = true, now
	w.send(&notification{
		uuid: uuidFrom(w.xrng), env: m.env, typ: "RENEWAL_EXTENSION", subtype: "SUMMARY", signedDate: now,
		summary: &summaryJSON{
			RequestIdentifier: m.id, Environment: m.env, AppAppleID: w.appAppleID, BundleID: w.bundleID,
			ProductID: m.productID, StorefrontCountryCodes: m.storefronts,
			SucceededCount: m.succeeded, FailedCount: m.failed,
		},
	})
}

// summaryJSON is the summary object of RENEWAL_EXTENSION/SUMMARY as Apple
// writes it, both counts always present (appstore.NotificationSummary, the
// decoding side, drops zeros).
type summaryJSON struct {
	RequestIdentifier      string               `json:"requestIdentifier"`
	Environment            appstore.Environment `json:"environment"`
	AppAppleID             int64                `json:"appAppleId"`
	BundleID               string               `json:"bundleId"`
	ProductID              string               `json:"productId"`
	StorefrontCountryCodes []string             `json:"storefrontCountryCodes,omitempty"`
	SucceededCount         int                  `json:"succeededCount"`
	FailedCount            int                  `json:"failedCount"`
}

// summaryNotification is a signedPayload with a summary and no data.
type summaryNotification struct {
	NotificationType string          `json:"notificationType"`
	Subtype          string          `json:"subtype"`
	NotificationUUID string          `json:"notificationUUID"`
	Version          string          `json:"version"`
	SignedDate       appstore.Millis `json:"signedDate"`
	Summary          *summaryJSON    `json:"summary"`
}

// massExtendKey identifies a mass extension: requestIdentifiers are
// one-time UUIDs per environment.
func massExtendKey(env appstore.Environment, requestID string) string {
	return string(env) + "|" + requestID
}

// massExtend serves Extend Renewal Dates for All Active Subscribers: POST
// /inApps/v1/subscriptions/extend/mass with a MassExtendRenewalDateRequest,
// answered {requestIdentifier} at once; the extensions happen
// MassExtensionDelay later (see runMassExtension). Reusing a
// requestIdentifier answers 200 again and starts nothing.
//
// Errors, in Apple's order: an unreadable body 4000000; extendByDays
// missing or outside 1–90 4000009; productId missing or not one of the
// app's subscriptions 4000023; extendReasonCode missing or outside 0–3
// 4000010; requestIdentifier not a UUID 4000011; storefrontCountryCodes
// present but empty 4000027; a code that is not three capital letters
// 4000028.
func (s *Simulator) massExtend(w http.ResponseWriter, r *http.Request, env appstore.Environment) {
	wd := s.world
	req, aerr := readExtendRequest(r)
	if aerr == nil {
		aerr = firstError(req.daysError, func() *apiError {
			if req.ProductID == nil || wd.cat.products[*req.ProductID] == nil {
				return &errInvalidProductID
			}
			return nil
		}, req.reasonError, func() *apiError {
			if req.RequestIdentifier == nil || !uuidPattern.MatchString(*req.RequestIdentifier) {
				return &errInvalidRequestIdentifier
			}
			return nil
		}, func() *apiError {
			codes := req.StorefrontCountryCodes
			switch {
			case codes == nil:
			case len(*codes) == 0:
				return &errInvalidEmptyStorefronts
			case slices.ContainsFunc(*codes, func(c string) bool { return !storefrontPattern.MatchString(c) }):
				return &errInvalidStorefront
			}
			return nil
		})
	}
	if aerr != nil {
		writeError(w, *aerr)
		return
	}
	wd.mu.Lock()
	defer wd.mu.Unlock()
	key := massExtendKey(env, *req.RequestIdentifier)
	if wd.massExtensions[key] == nil {
		m := &massExtension{env: env, id: *req.RequestIdentifier, productID: *req.ProductID, days: *req.ExtendByDays}
		if req.StorefrontCountryCodes != nil {
			m.storefronts = slices.Clone(*req.StorefrontCountryCodes)
		}
		wd.massExtensions[key] = m
		wd.pushMass(wd.now().Add(MassExtensionDelay), m)
	}
	writeJSON(w, http.StatusOK, appstore.MassExtendRenewalDateResponse{RequestIdentifier: *req.RequestIdentifier})
}

// massExtendStatus serves Get Status of Subscription Renewal Date
// Extensions: GET /inApps/v1/subscriptions/extend/mass/{productId}/{requestIdentifier}
// (Apple's documented order; Apple's library tests pass the two swapped).
// Until the extension completes, complete is false and both counts are 0.
//
// Errors: productId not one of the app's subscriptions 4000023;
// requestIdentifier not a UUID 4000011; no such request for that product
// in this environment 404 4040009.
func (s *Simulator) massExtendStatus(w http.ResponseWriter, r *http.Request, env appstore.Environment) {
	wd := s.world
	productID, requestID := r.PathValue("product"), r.PathValue("request")
	if wd.cat.products[productID] == nil {
		writeError(w, errInvalidProductID)
		return
	}
	if !uuidPattern.MatchString(requestID) {
		writeError(w, errInvalidRequestIdentifier)
		return
	}
	wd.mu.RLock()
	defer wd.mu.RUnlock()
	m := wd.massExtensions[massExtendKey(env, requestID)]
	if m == nil || m.productID != productID {
		writeError(w, errStatusRequestNotFound)
		return
	}
	writeJSON(w, http.StatusOK, appstore.MassExtendRenewalDateStatusResponse{
		RequestIdentifier: m.id, Complete: m.complete, CompleteDate: appstore.MillisOf(m.completeDate),
		SucceededCount: appstore.Int(m.succeeded), FailedCount: appstore.Int(m.failed),
	})
}
