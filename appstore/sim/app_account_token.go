package sim

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/storesync/storesync/appstore"
)

// companyTokenOf is the appAccountToken the company's own records hold for
// customer index when the app never set one at Apple: a version-4 UUID
// derived from the seed by hashing, not drawn from the world's generators,
// so adding it moved nothing in existing seeded worlds.
func companyTokenOf(seed int64, index int) string {
	var in [16]byte
	binary.BigEndian.PutUint64(in[:8], uint64(seed))
	binary.BigEndian.PutUint64(in[8:], uint64(index))
	h := sha256.Sum256(append([]byte("storesync sim company appAccountToken "), in[:]...))
	b := h[:16]
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// appleToken is the appAccountToken Apple states for s: none for a
// family-shared subscription (it belongs to the organiser's purchase), the
// one Set App Account Token gave it, else the one the app set on the
// customer's purchases ("" when it never did).
func (s *subscription) appleToken() string {
	switch {
	case s.ownership != "PURCHASED":
		return ""
	case s.tokenSet:
		return s.token
	}
	return s.acct.token
}

// setToken makes token Apple's appAccountToken of s. Every transaction of
// the subscription is signed with it from now on, so each counts as
// modified (a saved history revision returns them again), as does the
// renewal info. Setting the token it already has changes nothing. Callers
// hold the write lock.
func (w *world) setToken(s *subscription, token string) {
	if s.appleToken() == token {
		return
	}
	s.token, s.tokenSet = token, true
	for _, t := range s.txs {
		w.touchTx(t)
	}
	w.touchSub(s)
}

// setAppAccountToken serves Set App Account Token: PUT
// /inApps/v1/transactions/{originalTransactionId}/appAccountToken with
// {"appAccountToken": UUID}, answered 200 with no body. Apple sends no
// notification about it; the token shows in everything signed afterwards.
//
// Errors, as Apple documents them: a malformed id 4000006; an unreadable
// body 4000000; a missing or non-UUID token 4000183; an app transaction id
// 4000048; a transaction id that is not its subscription's original one
// 4000187; a family-shared subscription 4000185; an id unknown in this
// environment 404 4040005 (OriginalTransactionIdNotFoundError, the one 404
// Apple's page for this endpoint lists, not 4040010).
func (s *Simulator) setAppAccountToken(w http.ResponseWriter, r *http.Request, env appstore.Environment) {
	id := r.PathValue("id")
	if !validID(id) {
		writeError(w, errInvalidTransactionID)
		return
	}
	var body struct {
		AppAccountToken *string `json:"appAccountToken"`
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err != nil || json.Unmarshal(b, &body) != nil {
		writeError(w, errGeneralBadRequest)
		return
	}
	if body.AppAccountToken == nil || !uuidPattern.MatchString(*body.AppAccountToken) {
		writeError(w, errInvalidAppAccountTokenUUID)
		return
	}
	wd := s.world
	wd.mu.Lock()
	defer wd.mu.Unlock()
	acct, t := wd.lookup(env, id)
	switch {
	case acct == nil:
		writeError(w, errOriginalTransactionIDNotFound)
		return
	case t == nil:
		writeError(w, errAppTxIDNotSupported)
		return
	case t.sub.otid != id:
		writeError(w, errNotOriginalTransactionID)
		return
	case t.sub.ownership != "PURCHASED":
		writeError(w, errFamilyTransactionNotSupported)
		return
	}
	wd.setToken(t.sub, strings.ToLower(*body.AppAccountToken))
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

// ImportRow is one line of the company's import file (/sim/ids): a
// subscription and the token the company holds for its customer.
type ImportRow struct {
	OriginalTransactionID string `json:"originalTransactionId"`
	// AppAccountToken is the company's token of the customer: never
	// empty, family-shared subscriptions included, and for ~30% of
	// customers one Apple does not know (Truth's AppAccountToken is "").
	AppAccountToken string `json:"appAccountToken"`
}

// ImportRows is the company's import file of env: every subscription,
// ordered by originalTransactionId, with its customer's company token.
func (s *Simulator) ImportRows(env appstore.Environment) []ImportRow {
	w := s.world
	w.mu.RLock()
	defer w.mu.RUnlock()
	e := w.env(env)
	ids := sortedOTIDs(e)
	out := make([]ImportRow, 0, len(ids))
	for _, id := range ids {
		out = append(out, ImportRow{OriginalTransactionID: id, AppAccountToken: e.subByOTID[id].acct.companyToken})
	}
	return out
}
