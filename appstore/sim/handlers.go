package sim

import (
	"net/http"
	"slices"
	"strconv"

	"github.com/storesync/storesync/appstore"
)

// getStatuses serves Get All Subscription Statuses: every subscription of
// the customer, grouped by subscription group, each with its latest
// transaction and renewal info signed now.
func (s *Simulator) getStatuses(w http.ResponseWriter, r *http.Request, env appstore.Environment) {
	id := r.PathValue("id")
	if !validID(id) {
		writeError(w, errInvalidTransactionID)
		return
	}
	var want []int
	for _, v := range r.URL.Query()["status"] {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 5 {
			writeError(w, errInvalidStatus)
			return
		}
		want = append(want, n)
	}
	wd := s.world
	wd.mu.RLock()
	defer wd.mu.RUnlock()
	acct, _ := wd.lookup(env, id)
	if acct == nil {
		writeError(w, errTransactionNotFound)
		return
	}
	now := wd.now()
	resp := appstore.StatusResponse{
		Environment: env,
		BundleID:    wd.bundleID,
		AppAppleID:  appstore.Int(wd.appAppleID),
		Data:        []appstore.SubscriptionGroupIdentifierItem{},
	}
	for _, g := range wd.cat.Groups {
		item := appstore.SubscriptionGroupIdentifierItem{SubscriptionGroupIdentifier: g.ID}
		for _, sub := range acct.subs {
			if sub.group != g {
				continue
			}
			st := sub.status(now)
			if len(want) > 0 && !slices.Contains(want, st) {
				continue
			}
			tx, err := wd.signedTx(sub.latest(), now)
			if err != nil {
				writeError(w, errInternal)
				return
			}
			rn, err := wd.signedRenewal(sub, now)
			if err != nil {
				writeError(w, errInternal)
				return
			}
			item.LastTransactions = append(item.LastTransactions, appstore.LastTransactionsItem{
				Status: appstore.Int(st), OriginalTransactionID: sub.otid,
				SignedTransactionInfo: tx, SignedRenewalInfo: rn,
			})
		}
		if len(item.LastTransactions) > 0 {
			resp.Data = append(resp.Data, item)
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

// getTransaction serves Get Transaction Info.
func (s *Simulator) getTransaction(w http.ResponseWriter, r *http.Request, env appstore.Environment) {
	id := r.PathValue("id")
	if !validID(id) {
		writeError(w, errInvalidTransactionID)
		return
	}
	wd := s.world
	wd.mu.RLock()
	defer wd.mu.RUnlock()
	acct, t := wd.lookup(env, id)
	switch {
	case acct == nil:
		writeError(w, errTransactionNotFound)
		return
	case t == nil:
		writeError(w, errAppTxIDNotSupported)
		return
	}
	jws, err := wd.signedTx(t, wd.now())
	if err != nil {
		writeError(w, errInternal)
		return
	}
	writeJSON(w, http.StatusOK, appstore.TransactionInfoResponse{SignedTransactionInfo: jws})
}

// requestTestNotification serves Request a Test Notification: a TEST
// notification sent to the webhook; 4040007 when none is configured.
func (s *Simulator) requestTestNotification(w http.ResponseWriter, r *http.Request, env appstore.Environment) {
	if s.hooks.getURL() == "" {
		writeError(w, errNotificationURLMissing)
		return
	}
	wd := s.world
	wd.mu.Lock()
	n := wd.testNotification(env)
	token := n.uuid + "_" + itoa(n.signedDate.UnixMilli())
	wd.mu.Unlock()
	writeJSON(w, http.StatusOK, appstore.SendTestNotificationResponse{TestNotificationToken: token})
}

// getTestNotification serves Get Test Notification Status.
func (s *Simulator) getTestNotification(w http.ResponseWriter, r *http.Request, env appstore.Environment) {
	wd := s.world
	wd.mu.RLock()
	n := wd.env(env).tests[r.PathValue("id")]
	wd.mu.RUnlock()
	if n == nil {
		writeError(w, errTestNotFound)
		return
	}
	signed, err := n.signedPayload(wd)
	if err != nil {
		writeError(w, errInternal)
		return
	}
	attempts, _ := n.sendAttempts()
	writeJSON(w, http.StatusOK, appstore.CheckTestNotificationResponse{SignedPayload: signed, SendAttempts: attempts})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
