package sim

import (
	"container/heap"
	"math/rand/v2"
	"time"

	"github.com/storesync/storesync/appstore"
)

// eventKind is what happens when an event comes due.
type eventKind uint8

const (
	evPeriodEnd   eventKind = iota // renew, fail to renew, or expire
	evGraceEnd                     // the billing grace period ends
	evRecover                      // billing succeeds during retry
	evRetryEnd                     // billing retry gives up
	evSpontaneous                  // a customer does something (global process)
	// Kinds below are not lifecycle events: they carry no generation check
	// and look at the state they find instead.
	evLater          // the second process of customer actions (later_events.go)
	evRefundDecision // Apple decides a refund request
	evPriceConsent   // a customer agrees to a price increase
	evMassExtension  // a mass renewal-date extension completes
)

// event is one scheduled change. Lifecycle events carry the subscription's
// generation when scheduled; any later change bumps it, so stale events are
// skipped instead of searched for and removed.
type event struct {
	at    time.Time
	order uint64 // ties at one instant run in scheduling order
	kind  eventKind
	sub   *subscription
	gen   uint64
	mass  *massExtension // evMassExtension
}

// eventQueue is a min-heap by (at, order).
type eventQueue struct {
	items []*event
	order uint64
}

func (q *eventQueue) Len() int { return len(q.items) }
func (q *eventQueue) Less(i, j int) bool {
	a, b := q.items[i], q.items[j]
	if !a.at.Equal(b.at) {
		return a.at.Before(b.at)
	}
	return a.order < b.order
}
func (q *eventQueue) Swap(i, j int) { q.items[i], q.items[j] = q.items[j], q.items[i] }
func (q *eventQueue) Push(x any)    { q.items = append(q.items, x.(*event)) }
func (q *eventQueue) Pop() any {
	n := len(q.items)
	e := q.items[n-1]
	q.items[n-1] = nil
	q.items = q.items[:n-1]
	return e
}

func (w *world) push(at time.Time, kind eventKind, s *subscription) {
	w.events.order++
	e := &event{at: at, order: w.events.order, kind: kind, sub: s}
	if s != nil {
		e.gen = s.gen
	}
	heap.Push(&w.events, e)
}

// pushMass schedules the completion of mass extension m.
func (w *world) pushMass(at time.Time, m *massExtension) {
	w.events.order++
	heap.Push(&w.events, &event{at: at, order: w.events.order, kind: evMassExtension, mass: m})
}

// Rates of spontaneous customer actions, per subscription per day. An
// action only happens when the picked subscription is eligible (e.g. a
// refund needs an active one), so effective rates are lower. Renewals come
// on top, from each subscription's own period end.
var spontaneousRates = []struct {
	kind spontaneousKind
	rate float64
}{
	{spAutoRenewOff, 0.004},
	{spAutoRenewOn, 0.01},
	{spRefund, 0.001},
	{spUpgrade, 0.001},
	{spDowngrade, 0.0006},
	{spResubscribe, 0.002},
	{spNewCustomer, 0.002},
	{spOtherGroup, 0.0006},
}

type spontaneousKind int

const (
	spAutoRenewOff spontaneousKind = iota
	spAutoRenewOn
	spRefund
	spUpgrade
	spDowngrade
	spResubscribe
	spNewCustomer
	spOtherGroup
)

// billingFailureRate is the share of renewals whose billing fails.
const billingFailureRate = 0.04

// schedule bumps s's generation and queues its next lifecycle events.
func (w *world) schedule(s *subscription) {
	s.gen++
	now := w.now()
	l := s.latest()
	switch {
	case !l.revokedAt.IsZero():
	case s.inRetry:
		if !s.recoverAt.IsZero() && s.recoverAt.Before(s.retryEnd) {
			w.push(s.recoverAt, evRecover, s)
		} else {
			w.push(s.retryEnd, evRetryEnd, s)
		}
		if s.graceExpires.After(now) {
			w.push(s.graceExpires, evGraceEnd, s)
		}
	case l.expires.After(now):
		w.push(l.expires, evPeriodEnd, s)
	}
}

func (w *world) scheduleSpontaneous() {
	var perSub float64
	for _, r := range spontaneousRates {
		perSub += r.rate
	}
	perDay := perSub * float64(max(len(w.subs), 50))
	wait := time.Duration(w.rng.ExpFloat64() / perDay * float64(day)).Truncate(time.Millisecond)
	w.push(w.now().Add(wait+time.Millisecond), evSpontaneous, nil)
}

// step applies the next event due at or before target and reports whether
// there was one. The clock moves to the event's time first, so everything
// it produces is signed at that instant.
func (w *world) step(target time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.events.Len() == 0 || w.events.items[0].at.After(target) {
		w.clock.set(target)
		return false
	}
	e := heap.Pop(&w.events).(*event)
	w.clock.set(e.at)
	if e.sub != nil && e.kind <= evRetryEnd && e.gen != e.sub.gen {
		return true
	}
	switch e.kind {
	case evPeriodEnd:
		w.onPeriodEnd(e.sub)
	case evGraceEnd:
		w.notify(e.sub, "GRACE_PERIOD_EXPIRED", "")
	case evRecover:
		w.renew(e.sub, w.now())
		w.notify(e.sub, "DID_RENEW", "BILLING_RECOVERY")
		w.schedule(e.sub)
	case evRetryEnd:
		s := e.sub
		s.inRetry, s.autoRenew = false, false
		s.graceExpires, s.recoverAt, s.retryEnd = time.Time{}, time.Time{}, time.Time{}
		s.expirationIntent = 2
		w.touchSub(s)
		w.notify(s, "EXPIRED", "BILLING_RETRY")
		w.schedule(s)
	case evSpontaneous:
		w.spontaneous()
		w.scheduleSpontaneous()
	case evLater:
		w.later()
		w.scheduleLater()
	case evRefundDecision:
		w.decideRefund(e.sub)
	case evPriceConsent:
		w.onPriceConsent(e.sub)
	case evMassExtension:
		w.runMassExtension(e.mass)
	}
	return true
}

// onPeriodEnd: the latest period of s ends now.
func (w *world) onPeriodEnd(s *subscription) {
	l := s.latest()
	if !s.autoRenew {
		s.expirationIntent = 1
		w.touchSub(s)
		w.notify(s, "EXPIRED", "VOLUNTARY")
		s.gen++ // nothing follows an expiry
		return
	}
	if w.expireForPrice(s) {
		return
	}
	if w.pick(billingFailureRate) {
		s.inRetry = true
		s.expirationIntent = 2
		s.retryEnd = l.expires.Add(60 * day)
		grace := w.pick(0.5)
		s.graceExpires = time.Time{}
		if grace {
			s.graceExpires = l.expires.Add(l.product.gracePeriod())
		}
		s.recoverAt = time.Time{}
		if w.pick(0.6) {
			s.recoverAt = w.now().Add(w.between(time.Hour, 20*day))
		}
		w.touchSub(s)
		sub := ""
		if grace {
			sub = "GRACE_PERIOD"
		}
		w.notify(s, "DID_FAIL_TO_RENEW", sub)
		w.schedule(s)
		return
	}
	w.renew(s, l.expires)
	w.notify(s, "DID_RENEW", "")
	w.schedule(s)
}

// renew adds a renewal transaction starting at purchase and clears any
// billing trouble. A redeemed offer or an accepted price increase for the
// renewed product sets its price (the offer wins); both are used up.
func (w *world) renew(s *subscription, purchase time.Time) *transaction {
	p := s.autoRenewProduct
	t := w.newTx(s, p, purchase, p.end(purchase), "RENEWAL")
	if pi := s.pendingPriceIncrease(); pi != nil && pi.status == 1 {
		t.price = pi.price
	}
	if o := s.renewalOfferOf(); o != nil {
		o.apply(t)
	}
	s.priceInc, s.renewalOffer = nil, nil
	s.inRetry = false
	s.graceExpires, s.recoverAt, s.retryEnd = time.Time{}, time.Time{}, time.Time{}
	s.expirationIntent = 0
	return t
}

// spontaneous applies one random customer action.
func (w *world) spontaneous() {
	var total float64
	for _, r := range spontaneousRates {
		total += r.rate
	}
	u := w.rng.Float64() * total
	kind := spontaneousRates[len(spontaneousRates)-1].kind
	for _, r := range spontaneousRates {
		if u < r.rate {
			kind = r.kind
			break
		}
		u -= r.rate
	}
	if kind == spNewCustomer {
		w.newCustomer()
		return
	}
	if len(w.subs) == 0 {
		return
	}
	s := w.subs[w.rng.IntN(len(w.subs))]
	now := w.now()
	st := s.status(now)
	purchased := s.ownership == "PURCHASED"
	switch kind {
	case spAutoRenewOff:
		if st == appstore.StatusActive && s.autoRenew {
			s.autoRenew = false
			w.touchSub(s)
			w.notify(s, "DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_DISABLED")
		}
	case spAutoRenewOn:
		if st == appstore.StatusActive && !s.autoRenew {
			s.autoRenew = true
			s.expirationIntent = 0
			w.touchSub(s)
			w.notify(s, "DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_ENABLED")
		}
	case spRefund:
		if st == appstore.StatusActive {
			w.revoke(w.rng, s)
			if purchased {
				w.notify(s, "REFUND", "")
			} else {
				w.notify(s, "REVOKE", "")
			}
		}
	case spUpgrade:
		if st == appstore.StatusActive && s.autoRenew && purchased && s.product.higher() != nil {
			w.upgrade(s)
			w.notify(s, "DID_CHANGE_RENEWAL_PREF", "UPGRADE")
		}
	case spDowngrade:
		if st == appstore.StatusActive && s.autoRenew && s.autoRenewProduct == s.product && s.product.lower() != nil {
			s.autoRenewProduct = s.product.lower()
			w.touchSub(s)
			w.notify(s, "DID_CHANGE_RENEWAL_PREF", "DOWNGRADE")
		}
	case spResubscribe:
		if st == appstore.StatusExpired && purchased {
			w.resubscribe(s)
			w.notify(s, "SUBSCRIBED", "RESUBSCRIBE")
		}
	case spOtherGroup:
		a := s.acct
		if !purchased || len(a.subs) != 1 {
			return
		}
		other := w.cat.Groups[0]
		if s.group == other {
			other = w.cat.Groups[1]
		}
		ns := w.purchase(a, w.pickProduct(w.rng, other), w.pick(0.3))
		w.notify(ns, "SUBSCRIBED", "INITIAL_BUY")
	}
}

// revoke refunds (or family-revokes) the latest transaction of s now,
// drawing the refund's details from r. Auto-renew stops; what it was is
// kept for a reversal.
func (w *world) revoke(r *rand.Rand, s *subscription) {
	l := s.latest()
	w.setRevoked(r, l, w.now())
	s.renewedBeforeRevoke = s.autoRenew
	s.autoRenew = false
	w.touchTx(l)
	w.schedule(s)
}

// upgrade moves s one level up now: the current transaction is flagged
// isUpgraded and a new purchase of the higher product starts.
func (w *world) upgrade(s *subscription) {
	old := s.latest()
	hp := s.product.higher()
	old.upgraded = true
	w.touchTx(old)
	now := w.now()
	w.newTx(s, hp, now, hp.end(now), "PURCHASE")
	s.autoRenewProduct = hp
	w.schedule(s)
}

// resubscribe restarts an expired subscription now.
func (w *world) resubscribe(s *subscription) {
	now := w.now()
	l := s.latest()
	p := s.autoRenewProduct
	if now.Sub(l.expires) > 60*day {
		s.recentStart = now
	}
	w.newTx(s, p, now, p.end(now), "PURCHASE")
	s.priceInc, s.renewalOffer = nil, nil
	s.autoRenew = true
	s.inRetry = false
	s.expirationIntent = 0
	s.graceExpires, s.recoverAt, s.retryEnd = time.Time{}, time.Time{}, time.Time{}
	w.schedule(s)
}

// newCustomer adds a customer who subscribes now.
func (w *world) newCustomer() {
	env := appstore.Production
	if w.pick(shareSandboxOnly) {
		env = appstore.Sandbox
	}
	a := w.newAccount(w.rng, env, w.pick(shareWithToken))
	s := w.purchase(a, w.pickProduct(w.rng, w.pickGroup(w.rng)), w.pick(0.3))
	w.notify(s, "SUBSCRIBED", "INITIAL_BUY")
}

// purchase opens a new subscription of p for a now, optionally starting
// with p's introductory offer.
func (w *world) purchase(a *account, p *product, intro bool) *subscription {
	s := w.newSubscription(a, p, "PURCHASED")
	now := w.now()
	if intro {
		t := w.newTx(s, p, now, now.Add(time.Duration(p.Intro.Days)*day), "PURCHASE")
		t.offerType = 1
		t.offerDisc = p.Intro.DiscountType
		t.offerPer = p.Intro.Period
		t.price = a.storefront.localPrice(p.Intro.Price)
	} else {
		w.newTx(s, p, now, p.end(now), "PURCHASE")
	}
	w.schedule(s)
	return s
}
