package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"github.com/storesync/storesync/jobs"
	"github.com/storesync/storesync/ledger"
)

// registerBackend adds the read-only API the company's backend calls:
//
//	GET /v1/customers/{customerId}/entitlements
//	GET /v1/app-account-tokens/{appAccountToken}/entitlements
//	GET /v1/subscriptions/{originalTransactionId}/entitlements
//	GET /v1/events?after=CURSOR&limit=N     the change feed (see events.go)
//
// Each needs "Authorization: Bearer T" with T one of opts.APITokens or the
// admin token (admin may read too; a read token may never act as admin).
// Anything else gets 401 and nothing more: no hint whether the token exists,
// is malformed or lacks the scope.
func registerBackend(mux *http.ServeMux, deps *jobs.Deps, opts Options) {
	tokens := append([]string{}, opts.APITokens...)
	if opts.AdminToken != "" {
		tokens = append(tokens, opts.AdminToken)
	}
	auth := bearerAny(tokens)
	b := &backend{deps: deps}
	mux.Handle("GET /v1/customers/{customerId}/entitlements", auth(http.HandlerFunc(b.byCustomer)))
	mux.Handle("GET /v1/app-account-tokens/{appAccountToken}/entitlements", auth(http.HandlerFunc(b.byToken)))
	mux.Handle("GET /v1/subscriptions/{originalTransactionId}/entitlements", auth(http.HandlerFunc(b.bySubscription)))
	mux.Handle("GET /v1/events", auth(http.HandlerFunc(b.events)))
}

// bearerAny is bearer for a set of tokens: every token's hash is compared
// in constant time, without stopping at a match, so timing tells neither
// which token matched nor how many there are of a given length. No tokens:
// every request is refused.
func bearerAny(tokens []string) func(http.Handler) http.Handler {
	sums := make([][sha256.Size]byte, len(tokens))
	for i, t := range tokens {
		sums[i] = sha256.Sum256([]byte(t))
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			sum := sha256.Sum256([]byte(got))
			match := 0
			for i := range sums {
				match |= subtle.ConstantTimeCompare(sum[:], sums[i][:])
			}
			if match != 1 || !ok || got == "" {
				w.Header().Set("WWW-Authenticate", `Bearer realm="storesync"`)
				writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized"})
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

type backend struct {
	deps *jobs.Deps
}

func (b *backend) byCustomer(w http.ResponseWriter, r *http.Request) {
	e, err := b.deps.Ledger.EntitlementsByCustomerID(r.Context(), r.PathValue("customerId"))
	b.answer(w, e, err)
}

func (b *backend) byToken(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("appAccountToken")
	if !ledger.IsUUID(token) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "appAccountToken must be a UUID"})
		return
	}
	e, err := b.deps.Ledger.EntitlementsByAppAccountToken(r.Context(), token)
	b.answer(w, e, err)
}

func (b *backend) bySubscription(w http.ResponseWriter, r *http.Request) {
	e, err := b.deps.Ledger.EntitlementsByOriginalTransactionID(r.Context(), r.PathValue("originalTransactionId"))
	b.answer(w, e, err)
}

// answer writes an entitlement lookup. An unknown id answers 200 with no
// entitlements (the ledger's rule: unknown and "never bought" look alike).
func (b *backend) answer(w http.ResponseWriter, e *ledger.Entitlements, err error) {
	if err != nil {
		if errors.Is(err, ledger.ErrNotFound) {
			writeJSON(w, http.StatusOK, &ledger.Entitlements{Entitlements: []ledger.Entitlement{}})
			return
		}
		// The error names no secret; it may name the database's trouble.
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "reading the ledger"})
		if b.deps.Logger != nil {
			b.deps.Logger.Error("entitlement lookup", "error", err)
		}
		return
	}
	writeJSON(w, http.StatusOK, e)
}
