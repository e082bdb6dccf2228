package opsui

import (
	"context"
	"errors"
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

// findCustomer resolves a search: a UUID is an appAccountToken; else an
// originalTransactionId when the ledger has one; else a customer id. It
// returns the re-sync target matching what was found.
func (c *Console) findCustomer(ctx context.Context, q string) ([]*ledger.Subscription, jobs.ResyncTarget, error) {
	l := c.deps.Ledger
	if ledger.IsUUID(q) {
		subs, err := l.SubscriptionsByAppAccountToken(ctx, q)
		return subs, jobs.ResyncTarget{AppAccountToken: q}, err
	}
	s, err := l.Subscription(ctx, q)
	if err == nil {
		return []*ledger.Subscription{s}, jobs.ResyncTarget{OriginalTransactionID: q}, nil
	}
	if !errors.Is(err, ledger.ErrNotFound) {
		return nil, jobs.ResyncTarget{}, err
	}
	subs, err := l.SubscriptionsByCustomerID(ctx, q)
	return subs, jobs.ResyncTarget{CustomerID: q}, err
}

// customer searches by customer id, appAccountToken or
// originalTransactionId and shows each subscription's state and timeline.
func (c *Console) customer(w http.ResponseWriter, r *http.Request, session string) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	data := map[string]any{"Title": "Customer", "CSRFSession": c.auth.csrfToken(session), "Q": q}
	if q == "" {
		c.render(w, http.StatusOK, "customer", data)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	subs, target, err := c.findCustomer(ctx, q)
	if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		data["Error"] = "reading the ledger: " + err.Error()
		c.render(w, http.StatusServiceUnavailable, "customer", data)
		return
	}
	views := make([]subscriptionView, 0, len(subs))
	for _, s := range subs {
		tl, err := c.deps.Ledger.Timeline(ctx, s.OriginalTransactionID, 50)
		if err != nil {
			data["Error"] = err.Error()
		}
		views = append(views, subscriptionView{Subscription: s, Timeline: tl})
	}
	data["Subscriptions"] = views
	data["Target"] = target
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
