package sim

import (
	"fmt"
	"time"

	"github.com/storesync/storesync/appstore"
)

// A refund request runs as at Apple: the customer asks, Apple sends
// CONSUMPTION_REQUEST (asking the developer for consumption data), and
// decides between 12 hours and 7 days later: REFUND (the latest
// transaction revoked) or REFUND_DECLINED (nothing changes). A refund may
// later be reversed (REFUND_REVERSED), e.g. after a dispute.
const (
	refundApprovalShare  = 0.4
	refundReversalWindow = 90 * day // spontaneous reversals only
)

// consumptionRequestReasons are Apple's consumptionRequestReason values.
var consumptionRequestReasons = []string{
	"UNINTENDED_PURCHASE", "FULFILLMENT_ISSUE", "UNSATISFIED_WITH_PURCHASE", "LEGAL", "OTHER",
}

// change is what an event or mutation did, as the notification Apple sends
// about it says: type, subtype and a consumption request's reason.
type change struct {
	typ, subtype, reason string
}

// requestRefund files a refund request for s's latest transaction and
// schedules Apple's decision. Only the purchaser of an active
// subscription with no request pending can ask. Callers hold the write
// lock.
func (w *world) requestRefund(s *subscription) (change, error) {
	now := w.now()
	switch {
	case s.ownership != "PURCHASED":
		return change{}, fmt.Errorf("subscription %s is family-shared: only the purchaser can ask for a refund", s.otid)
	case s.status(now) != appstore.StatusActive:
		return change{}, fmt.Errorf("subscription %s is %s, not active", s.otid, statusNames[s.status(now)])
	case s.refundRequested:
		return change{}, fmt.Errorf("subscription %s has a refund request pending", s.otid)
	}
	s.refundRequested = true
	reason := consumptionRequestReasons[w.xrng.IntN(len(consumptionRequestReasons))]
	w.push(now.Add(between(w.xrng, 12*time.Hour, 7*day)), evRefundDecision, s)
	return change{typ: "CONSUMPTION_REQUEST", reason: reason}, nil
}

// decideRefund is Apple's decision on s's pending refund request: REFUND
// for refundApprovalShare of them, else REFUND_DECLINED. A subscription
// refunded meanwhile (or with no request) gets nothing. Callers hold the
// write lock.
func (w *world) decideRefund(s *subscription) {
	if !s.refundRequested {
		return
	}
	s.refundRequested = false
	if !s.latest().revokedAt.IsZero() {
		return
	}
	if chance(w.xrng, refundApprovalShare) {
		w.revoke(w.xrng, s)
		w.send(w.newNote(w.xrng, s, "REFUND", ""))
		return
	}
	w.send(w.newNote(w.xrng, s, "REFUND_DECLINED", ""))
}

// declineRefund is REFUND_DECLINED on demand: Apple declined a refund
// request; nothing changes but a pending request ends.
func (w *world) declineRefund(s *subscription) (change, error) {
	if !s.latest().revokedAt.IsZero() {
		return change{}, fmt.Errorf("subscription %s is already refunded", s.otid)
	}
	s.refundRequested = false
	return change{typ: "REFUND_DECLINED"}, nil
}

// reverseRefund undoes the refund of s's latest transaction: the
// revocation goes, the status is again what the dates say (active until
// expiresDate), and auto-renew is restored as it was before the refund if
// the period is still running (else the subscription is expired, auto-renew
// off). A family revocation is not a refund. within limits spontaneous
// reversals to refunds of the past refundReversalWindow. Callers hold the
// write lock.
func (w *world) reverseRefund(s *subscription, within bool) (change, error) {
	l := s.latest()
	now := w.now()
	switch {
	case l.revokedAt.IsZero():
		return change{}, fmt.Errorf("subscription %s is not refunded", s.otid)
	case l.revType == "FAMILY_REVOKE":
		return change{}, fmt.Errorf("subscription %s was revoked from the family, not refunded", s.otid)
	case within && now.Sub(l.revokedAt) > refundReversalWindow:
		return change{}, fmt.Errorf("subscription %s was refunded too long ago", s.otid)
	}
	l.revokedAt, l.revReason, l.revType, l.revPercent = time.Time{}, 0, "", 0
	w.touchTx(l)
	s.autoRenew = s.renewedBeforeRevoke && now.Before(l.expires)
	if s.autoRenew {
		s.expirationIntent = 0
	} else {
		s.expirationIntent = 1
	}
	w.touchSub(s)
	w.schedule(s)
	return change{typ: "REFUND_REVERSED"}, nil
}
