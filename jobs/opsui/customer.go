package opsui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/storesync/storesync/jobs"
	"github.com/storesync/storesync/ledger"
)

type subscriptionView struct {
	*ledger.Subscription
	Timeline []ledger.TimelineEntry
}

// Search kinds: what the search box's q is. searchAuto guesses.
const (
	searchAuto          = ""
	searchCustomerID    = "customerId"
	searchToken         = "appAccountToken"
	searchOriginalTxID  = "originalTransactionId"
	searchOrderID       = "orderId"
	appleOrderLookupMax = 15 * time.Second
)

// found is what a search found: the ledger's subscriptions, the re-sync
// target that covers them, and for an order id the originalTransactionIds
// Apple listed that the ledger lacks (a re-sync by order id stores them).
type found struct {
	Subs     []*ledger.Subscription
	Target   jobs.ResyncTarget
	Missing  []string
	Resolved string // how q was read, for the page: "customer id", "order id", …
}

// findCustomer resolves a search. With by empty it guesses: a UUID is an
// appAccountToken; else an originalTransactionId when the ledger has one;
// else a customer id when the ledger has one; else, when q has an order
// id's shape, an App Store order id, looked up at Apple (Look Up Order ID,
// through the shared budget: the ledger does not store order ids).
func (c *Console) findCustomer(ctx context.Context, q, by string) (found, error) {
	l := c.deps.Ledger
	switch by {
	case searchToken:
		if !ledger.IsUUID(q) {
			return found{}, &searchError{"", fmt.Errorf("%q is not an appAccountToken (a UUID): pick another kind of search", q)}
		}
		subs, err := l.SubscriptionsByAppAccountToken(ctx, q)
		return found{Subs: subs, Target: jobs.ResyncTarget{AppAccountToken: q}, Resolved: "appAccountToken"}, err
	case searchOriginalTxID:
		s, err := l.Subscription(ctx, q)
		f := found{Target: jobs.ResyncTarget{OriginalTransactionID: q}, Resolved: "originalTransactionId"}
		if err == nil {
			f.Subs = []*ledger.Subscription{s}
		}
		return f, err
	case searchCustomerID:
		subs, err := l.SubscriptionsByCustomerID(ctx, q)
		return found{Subs: subs, Target: jobs.ResyncTarget{CustomerID: q}, Resolved: "customer id"}, err
	case searchOrderID:
		return c.findOrder(ctx, q)
	case searchAuto:
	default:
		return found{}, fmt.Errorf("search by %q: use customerId, appAccountToken, originalTransactionId or orderId", by)
	}
	if ledger.IsUUID(q) {
		return c.findCustomer(ctx, q, searchToken)
	}
	if f, err := c.findCustomer(ctx, q, searchOriginalTxID); !errors.Is(err, ledger.ErrNotFound) {
		return f, err
	}
	f, err := c.findCustomer(ctx, q, searchCustomerID)
	if !errors.Is(err, ledger.ErrNotFound) || jobs.ValidateOrderID(q) != nil || c.deps.Apple == nil {
		return f, err
	}
	return c.findOrder(ctx, q)
}

// findOrder asks Apple which purchases order id q holds and returns those
// the ledger has; the others are Missing.
func (c *Console) findOrder(ctx context.Context, q string) (found, error) {
	f := found{Target: jobs.ResyncTarget{OrderID: q}, Resolved: "order id"}
	if c.deps.Apple == nil {
		return f, errors.New("searching by order id needs Apple's API: serve has no App Store client configured")
	}
	actx, cancel := context.WithTimeout(ctx, appleOrderLookupMax)
	defer cancel()
	ids, err := jobs.LookUpOrder(actx, c.deps, q)
	if err != nil {
		return f, &searchError{"Look Up Order ID: ", err}
	}
	for _, id := range ids {
		s, err := c.deps.Ledger.Subscription(ctx, id)
		switch {
		case err == nil:
			f.Subs = append(f.Subs, s)
		case errors.Is(err, ledger.ErrNotFound):
			f.Missing = append(f.Missing, id)
		default:
			return f, err
		}
	}
	return f, nil
}

// searchError is a search that cannot be answered as asked (a malformed
// appAccountToken, an order Apple does not know, Apple unavailable): shown
// to the operator, not a ledger failure.
type searchError struct {
	prefix string
	err    error
}

func (e *searchError) Error() string { return e.prefix + e.err.Error() }
func (e *searchError) Unwrap() error { return e.err }

// customer searches by customer id, appAccountToken, originalTransactionId
// or order id and shows each subscription's state and timeline.
func (c *Console) customer(w http.ResponseWriter, r *http.Request, session string) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	by := r.URL.Query().Get("by")
	data := map[string]any{"Title": "Customer", "CSRFSession": c.auth.csrfToken(session), "Q": q, "By": by}
	if q == "" {
		c.render(w, http.StatusOK, "customer", data)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second+appleOrderLookupMax)
	defer cancel()
	f, err := c.findCustomer(ctx, q, by)
	var bad *searchError
	switch {
	case errors.As(err, &bad):
		data["Error"] = bad.Error()
	case err != nil && !errors.Is(err, ledger.ErrNotFound):
		data["Error"] = "reading the ledger: " + err.Error()
		c.render(w, http.StatusServiceUnavailable, "customer", data)
		return
	}
	views := make([]subscriptionView, 0, len(f.Subs))
	for _, s := range f.Subs {
		tl, err := c.deps.Ledger.Timeline(ctx, s.OriginalTransactionID, 50)
		if err != nil {
			data["Error"] = err.Error()
		}
		views = append(views, subscriptionView{Subscription: s, Timeline: tl})
	}
	data["Subscriptions"] = views
	data["Missing"] = f.Missing
	data["Resolved"] = f.Resolved
	data["Target"] = f.Target
	data["Searched"] = true
	c.render(w, http.StatusOK, "customer", data)
}

// resync enqueues the high-priority re-sync of the posted target, waits
// up to ResyncWait for it, then redirects to its result page (which
// refreshes itself until the job finishes).
func (c *Console) resync(w http.ResponseWriter, r *http.Request, _ string) {
	t := jobs.ResyncTarget{
		OriginalTransactionID: r.PostFormValue("originalTransactionId"),
		AppAccountToken:       r.PostFormValue("appAccountToken"),
		CustomerID:            r.PostFormValue("customerId"),
		OrderID:               r.PostFormValue("orderId"),
	}
	if err := t.Validate(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	st, err := jobs.EnqueueResync(r.Context(), c.client, t)
	if err != nil {
		http.Error(w, "enqueueing the re-sync: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), c.opts.ResyncWait)
	defer cancel()
	_, _ = jobs.WaitResync(ctx, c.client, st.JobID, 100*time.Millisecond)
	http.Redirect(w, r, "/ops/resync/"+strconv.FormatInt(st.JobID, 10)+"?q="+url.QueryEscape(r.PostFormValue("q")), http.StatusSeeOther)
}

func (c *Console) resyncResult(w http.ResponseWriter, r *http.Request, session string) {
	id, err := strconv.ParseInt(r.PathValue("jobId"), 10, 64)
	if err != nil || id <= 0 {
		http.Error(w, "jobId must be a positive number", http.StatusBadRequest)
		return
	}
	st, err := jobs.ResyncStatusOf(r.Context(), c.client, id)
	if errors.Is(err, jobs.ErrNotResync) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	data := map[string]any{"Title": "Re-sync " + strconv.FormatInt(id, 10), "CSRFSession": c.auth.csrfToken(session),
		"Status": st, "Q": r.URL.Query().Get("q")}
	if !st.Finished() {
		data["Refresh"] = 1
	}
	c.render(w, http.StatusOK, "resync", data)
}
