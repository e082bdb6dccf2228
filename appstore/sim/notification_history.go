package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/storesync/storesync/appstore"
)

// Notification-history look-back (docs/appstore-api.md §2.5), on the simulated
// clock.
const (
	productionLookBack = 180 * day
	sandboxLookBack    = 30 * day
)

// notificationTypes are the V2 types Apple documents; another value in a
// notification-history request is 4000018.
var notificationTypes = []string{
	"SUBSCRIBED", "DID_CHANGE_RENEWAL_PREF", "DID_CHANGE_RENEWAL_STATUS", "OFFER_REDEEMED", "DID_RENEW",
	"EXPIRED", "DID_FAIL_TO_RENEW", "GRACE_PERIOD_EXPIRED", "PRICE_INCREASE", "REFUND", "REFUND_DECLINED",
	"REFUND_REVERSED", "CONSUMPTION_REQUEST", "RENEWAL_EXTENDED", "RENEWAL_EXTENSION", "REVOKE", "TEST",
	"EXTERNAL_PURCHASE_TOKEN", "ONE_TIME_CHARGE", "RESCIND_CONSENT", "METADATA_UPDATE", "MIGRATION", "PRICE_CHANGE",
}

// historyRequest is NotificationHistoryRequest decoded strictly enough to
// tell a missing field from an empty one.
type historyRequest struct {
	StartDate           json.RawMessage `json:"startDate"`
	EndDate             json.RawMessage `json:"endDate"`
	NotificationType    *string         `json:"notificationType"`
	NotificationSubtype *string         `json:"notificationSubtype"`
	TransactionID       *string         `json:"transactionId"`
	OnlyFailures        *bool           `json:"onlyFailures"`
}

func parseMillis(raw json.RawMessage) (time.Time, bool) {
	if len(raw) == 0 {
		return time.Time{}, false
	}
	ms, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || ms <= 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(ms).UTC(), true
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// getNotificationHistory serves Get Notification History: notifications
// whose first send (signedDate) lies in [startDate, endDate), oldest first,
// 20 per page. The paginationToken is bound to the exact request body and
// expires after Options.PaginationTokenTTL of wall time.
func (s *Simulator) getNotificationHistory(w http.ResponseWriter, r *http.Request, env appstore.Environment) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err != nil {
		writeError(w, errGeneralBadRequest)
		return
	}
	var req historyRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, errGeneralBadRequest)
		return
	}
	start, ok := parseMillis(req.StartDate)
	if !ok {
		writeError(w, errInvalidStartDate)
		return
	}
	end, ok := parseMillis(req.EndDate)
	if !ok {
		writeError(w, errInvalidEndDate)
		return
	}
	if !start.Before(end) {
		writeError(w, errStartDateAfterEndDate)
		return
	}
	if req.TransactionID != nil && req.NotificationType != nil {
		writeError(w, errMultipleFilters)
		return
	}
	if req.NotificationType != nil && !slices.Contains(notificationTypes, *req.NotificationType) {
		writeError(w, errInvalidNotifType)
		return
	}
	if req.NotificationSubtype != nil && req.NotificationType == nil {
		writeError(w, errInvalidNotifType)
		return
	}
	if req.TransactionID != nil && !validID(*req.TransactionID) {
		writeError(w, errInvalidTransactionID)
		return
	}

	wd := s.world
	wd.mu.RLock()
	defer wd.mu.RUnlock()
	now := wd.now()
	lookBack := productionLookBack
	if env == appstore.Sandbox {
		lookBack = sandboxLookBack
	}
	if start.Before(now.Add(-lookBack)) {
		writeError(w, errStartDateTooFarInPast)
		return
	}
	var acct *account
	if req.TransactionID != nil {
		if acct, _ = wd.lookup(env, *req.TransactionID); acct == nil {
			writeError(w, errTransactionNotFound)
			return
		}
	}
	scope := scopeOf("notifications", string(env), fmt.Sprintf("%d|%d|%q|%q|%q|%t",
		start.UnixMilli(), end.UnixMilli(), deref(req.NotificationType), deref(req.NotificationSubtype),
		deref(req.TransactionID), deref(req.OnlyFailures)))

	log := wd.env(env).log
	pos := uint64(sort.Search(len(log), func(i int) bool { return !log[i].signedDate.Before(start) }))
	page := uint32(1)
	if tok := r.URL.Query().Get("paginationToken"); tok != "" {
		t, ok := s.openToken(tok, tokenNotifications)
		if !ok || t.scope != scope {
			writeError(w, errInvalidPaginationToken)
			return
		}
		if time.Since(time.UnixMilli(t.issued)) > s.opts.PaginationTokenTTL {
			writeError(w, errPaginationExpired)
			return
		}
		pos, page = max(pos, t.pos), t.page
	}
	if end.After(now) {
		end = now.Add(time.Millisecond) // a future endDate is clamped to now
	}
	match := func(n *notification) bool {
		if req.NotificationType != nil && n.typ != *req.NotificationType {
			return false
		}
		if req.NotificationSubtype != nil && n.subtype != *req.NotificationSubtype {
			return false
		}
		if acct != nil && n.acct != acct {
			return false
		}
		if deref(req.OnlyFailures) {
			if _, ok := n.sendAttempts(); ok {
				return false
			}
		}
		return true
	}
	resp := appstore.NotificationHistoryResponse{NotificationHistory: []appstore.NotificationHistoryResponseItem{}}
	i := int(pos)
	for ; i < len(log) && log[i].signedDate.Before(end); i++ {
		n := log[i]
		if !match(n) {
			continue
		}
		if len(resp.NotificationHistory) == pageSize {
			resp.HasMore = true
			break
		}
		signed, err := n.signedPayload(wd)
		if err != nil {
			writeError(w, errInternal)
			return
		}
		attempts, _ := n.sendAttempts()
		resp.NotificationHistory = append(resp.NotificationHistory, appstore.NotificationHistoryResponseItem{
			SignedPayload: signed, SendAttempts: attempts,
		})
	}
	if resp.HasMore {
		resp.PaginationToken = s.sealToken(pageToken{
			kind: tokenNotifications, page: page + 1, pos: uint64(i), issued: time.Now().UnixMilli(), scope: scope,
		})
	}
	writeJSON(w, http.StatusOK, resp)
}
