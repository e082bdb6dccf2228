package sim

import (
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/storesync/storesync/appstore"
)

// pageSize is Apple's page size for every paged endpoint.
const pageSize = 20

// historyFilter is the parsed query of Get Transaction History (v2).
type historyFilter struct {
	desc         bool
	start, end   time.Time // zero: unset
	productIDs   []string
	productTypes []string
	groups       []string
	ownership    string
	revoked      *bool
}

var productTypes = []string{"AUTO_RENEWABLE", "NON_RENEWABLE", "CONSUMABLE", "NON_CONSUMABLE"}

// parseHistoryQuery validates every parameter of docs/appstore-api.md §2.3.
func parseHistoryQuery(q url.Values) (historyFilter, *apiError) {
	var f historyFilter
	switch q.Get("sort") {
	case "", "ASCENDING":
	case "DESCENDING":
		f.desc = true
	default:
		return f, &errInvalidSort
	}
	for _, v := range q["productType"] {
		if !slices.Contains(productTypes, v) {
			return f, &errInvalidProductType
		}
	}
	f.productTypes = q["productType"]
	for _, v := range q["productId"] {
		if strings.TrimSpace(v) == "" {
			return f, &errInvalidProductID
		}
	}
	f.productIDs = q["productId"]
	for _, v := range q["subscriptionGroupIdentifier"] {
		if strings.TrimSpace(v) == "" {
			return f, &errInvalidGroupID
		}
	}
	f.groups = q["subscriptionGroupIdentifier"]
	if q.Has("inAppOwnershipType") {
		f.ownership = q.Get("inAppOwnershipType")
		if f.ownership != "PURCHASED" && f.ownership != "FAMILY_SHARED" {
			return f, &errInvalidOwnershipType
		}
	}
	parseBool := func(key string, e *apiError) (*bool, *apiError) {
		if !q.Has(key) {
			return nil, nil
		}
		switch v := q.Get(key); {
		case strings.EqualFold(v, "true"):
			t := true
			return &t, nil
		case strings.EqualFold(v, "false"):
			f := false
			return &f, nil
		}
		return nil, e
	}
	var err *apiError
	if f.revoked, err = parseBool("revoked", &errInvalidRevoked); err != nil {
		return f, err
	}
	// excludeRevoked (deprecated) = true means revoked=false.
	if ex, err := parseBool("excludeRevoked", &errInvalidExcludeRevoked); err != nil {
		return f, err
	} else if ex != nil && *ex && f.revoked == nil {
		no := false
		f.revoked = &no
	}
	parseDate := func(key string, e *apiError) (time.Time, *apiError) {
		if !q.Has(key) {
			return time.Time{}, nil
		}
		ms, perr := strconv.ParseInt(q.Get(key), 10, 64)
		if perr != nil || ms < 0 {
			return time.Time{}, e
		}
		return time.UnixMilli(ms).UTC(), nil
	}
	if f.start, err = parseDate("startDate", &errInvalidStartDate); err != nil {
		return f, err
	}
	if f.end, err = parseDate("endDate", &errInvalidEndDate); err != nil {
		return f, err
	}
	if !f.start.IsZero() && !f.end.IsZero() && !f.start.Before(f.end) {
		return f, &errStartDateAfterEndDate
	}
	return f, nil
}

// match reports whether t passes the filter.
func (f *historyFilter) match(t *transaction) bool {
	if !f.start.IsZero() && t.purchase.Before(f.start) {
		return false
	}
	if !f.end.IsZero() && !t.purchase.Before(f.end) {
		return false
	}
	if len(f.productTypes) > 0 && !slices.Contains(f.productTypes, "AUTO_RENEWABLE") {
		return false
	}
	if len(f.productIDs) > 0 && !slices.Contains(f.productIDs, t.product.ID) {
		return false
	}
	if len(f.groups) > 0 && !slices.Contains(f.groups, t.sub.group.ID) {
		return false
	}
	if f.ownership != "" && f.ownership != t.sub.ownership {
		return false
	}
	if f.revoked != nil && *f.revoked != !t.revokedAt.IsZero() {
		return false
	}
	return true
}

// getHistory serves Get Transaction History (v2): the customer's
// transactions ordered by modification sequence, 20 per page. A
// transaction changed while a client pages gets a new sequence number and
// so comes back, with its new data, on a later ASCENDING page.
func (s *Simulator) getHistory(w http.ResponseWriter, r *http.Request, env appstore.Environment) {
	id := r.PathValue("id")
	if !validID(id) {
		writeError(w, errInvalidTransactionID)
		return
	}
	q := r.URL.Query()
	f, perr := parseHistoryQuery(q)
	if perr != nil {
		writeError(w, *perr)
		return
	}
	wd := s.world
	wd.mu.RLock()
	defer wd.mu.RUnlock()
	acct, _ := wd.lookup(env, id)
	if acct == nil {
		writeError(w, errTransactionNotFound)
		return
	}
	scope := scopeOf("history", string(env), strconv.Itoa(acct.index), canonicalQuery(q, "revision"))
	cur, ok := s.revisionCursor(q.Get("revision"), tokenHistory, scope)
	if !ok {
		writeError(w, errInvalidRevision)
		return
	}
	failKey := string(env) + "|" + id + "|" + q.Encode()
	if s.faults.failPage(failKey, int(cur.page)) {
		writeError(w, errInternalRetryable)
		return
	}
	page, next, hasMore := pageBySeq(acct.bySeq, cur.pos, cur.page > 1, f.desc, f.match)
	if !f.desc && !hasMore {
		// Nothing after this: any later change gets a higher number.
		next = wd.seq
	}
	now := wd.now()
	resp := appstore.HistoryResponse{
		Revision:    s.sealToken(pageToken{kind: tokenHistory, page: cur.page + 1, pos: next, scope: scope}),
		HasMore:     hasMore,
		BundleID:    wd.bundleID,
		AppAppleID:  appstore.Int(wd.appAppleID),
		Environment: env,
	}
	signed, err := wd.signedTxs(page, now)
	if err != nil {
		writeError(w, errInternal)
		return
	}
	resp.SignedTransactions = signed
	writeJSON(w, http.StatusOK, resp)
}

// pageBySeq returns up to pageSize transactions of bySeq (ascending by
// sequence) after cursor pos in the given direction that pass match, the
// cursor for the next page and whether more match. For DESCENDING the
// first page (resumed false) starts at the newest.
func pageBySeq(bySeq []*transaction, pos uint64, resumed, desc bool, match func(*transaction) bool) ([]*transaction, uint64, bool) {
	var out []*transaction
	next := pos
	if !desc {
		i := sort.Search(len(bySeq), func(i int) bool { return bySeq[i].seq > pos })
		for ; i < len(bySeq); i++ {
			t := bySeq[i]
			if !match(t) {
				continue
			}
			if len(out) == pageSize {
				return out, next, true
			}
			out = append(out, t)
			next = t.seq
		}
		return out, next, false
	}
	i := len(bySeq) - 1
	if resumed {
		i = sort.Search(len(bySeq), func(i int) bool { return bySeq[i].seq >= pos }) - 1
	}
	for ; i >= 0; i-- {
		t := bySeq[i]
		if !match(t) {
			continue
		}
		if len(out) == pageSize {
			return out, next, true
		}
		out = append(out, t)
		next = t.seq
	}
	return out, 0, false
}

// getRefundHistory serves Get Refund History (v2): the customer's revoked
// transactions, paged like transaction history.
func (s *Simulator) getRefundHistory(w http.ResponseWriter, r *http.Request, env appstore.Environment) {
	id := r.PathValue("id")
	if !validID(id) {
		writeError(w, errInvalidTransactionID)
		return
	}
	q := r.URL.Query()
	wd := s.world
	wd.mu.RLock()
	defer wd.mu.RUnlock()
	acct, _ := wd.lookup(env, id)
	if acct == nil {
		writeError(w, errTransactionNotFound)
		return
	}
	scope := scopeOf("refund", string(env), strconv.Itoa(acct.index))
	cur, ok := s.revisionCursor(q.Get("revision"), tokenRefund, scope)
	if !ok {
		writeError(w, errInvalidRevision)
		return
	}
	page, next, hasMore := pageBySeq(acct.bySeq, cur.pos, cur.page > 1, false,
		func(t *transaction) bool { return !t.revokedAt.IsZero() })
	if !hasMore {
		next = wd.seq
	}
	now := wd.now()
	resp := appstore.RefundHistoryResponse{
		Revision: s.sealToken(pageToken{kind: tokenRefund, page: cur.page + 1, pos: next, scope: scope}),
		HasMore:  hasMore,
	}
	signed, err := wd.signedTxs(page, now)
	if err != nil {
		writeError(w, errInternal)
		return
	}
	resp.SignedTransactions = signed
	writeJSON(w, http.StatusOK, resp)
}

// signedTxs signs a page of transactions as of now, in order.
func (w *world) signedTxs(page []*transaction, now time.Time) ([]string, error) {
	out := make([]string, 0, len(page))
	for _, t := range page {
		jws, err := w.signedTx(t, now)
		if err != nil {
			return nil, err
		}
		out = append(out, jws)
	}
	return out, nil
}

// revisionCursor opens a revision of the given kind issued for scope (the
// same customer and query); an empty revision counts as none, the first
// page, since some clients send "revision=" on the first call. ok is false
// for a garbage, foreign or other-kind revision (Apple's 4000005).
func (s *Simulator) revisionCursor(rev string, kind byte, scope [8]byte) (pageToken, bool) {
	if rev == "" {
		return pageToken{kind: kind, page: 1, scope: scope}, true
	}
	t, ok := s.openToken(rev, kind)
	return t, ok && t.scope == scope
}
