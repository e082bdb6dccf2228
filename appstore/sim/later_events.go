package sim

import (
	"time"
)

// The second process of spontaneous events: what customers, Apple and the
// developer's support staff do beyond the first process (events.go), at
// modest rates per subscription per day. It has its own schedule and its
// own random stream (world.xrng), so the first process keeps the draws it
// always made; the two only meet through the state they change. As in the
// first, an event picks a subscription at random and happens only when
// that subscription is eligible, so effective rates are lower.
var laterRates = []struct {
	kind laterKind
	rate float64
}{
	{lkOfferRedeemed, 0.0008},
	{lkOfferUpgrade, 0.0003},
	{lkOfferDowngrade, 0.0002},
	{lkOfferResubscribe, 0.0008},
	{lkOfferCodeCustomer, 0.0004},
	{lkPriceIncrease, 0.0006},
	{lkRefundRequest, 0.0008},
	{lkRefundReversed, 0.004}, // only refunds of the past 90 days qualify
	{lkSupportExtension, 0.0003},
}

type laterKind int

const (
	lkOfferRedeemed     laterKind = iota // OFFER_REDEEMED
	lkOfferUpgrade                       // OFFER_REDEEMED/UPGRADE
	lkOfferDowngrade                     // OFFER_REDEEMED/DOWNGRADE
	lkOfferResubscribe                   // OFFER_REDEEMED/RESUBSCRIBE
	lkOfferCodeCustomer                  // OFFER_REDEEMED/INITIAL_BUY, a new customer
	lkPriceIncrease                      // PRICE_INCREASE/PENDING or ACCEPTED
	lkRefundRequest                      // CONSUMPTION_REQUEST (Options.ConsumptionRequests), then REFUND or REFUND_DECLINED
	lkRefundReversed                     // REFUND_REVERSED
	lkSupportExtension                   // RENEWAL_EXTENDED: support extends one subscription by 1–30 days
)

// scheduleLater queues the second process's next event.
func (w *world) scheduleLater() {
	var perSub float64
	for _, r := range laterRates {
		perSub += r.rate
	}
	perDay := perSub * float64(max(len(w.subs), 50))
	wait := time.Duration(w.xrng.ExpFloat64() / perDay * float64(day)).Truncate(time.Millisecond)
	w.push(w.now().Add(wait+time.Millisecond), evLater, nil)
}

// later applies one random event of the second process and notifies about
// it when it happened.
func (w *world) later() {
	var total float64
	for _, r := range laterRates {
		total += r.rate
	}
	u := w.xrng.Float64() * total
	kind := laterRates[len(laterRates)-1].kind
	for _, r := range laterRates {
		if u < r.rate {
			kind = r.kind
			break
		}
		u -= r.rate
	}
	if kind == lkOfferCodeCustomer {
		w.offerCodeCustomer()
		return
	}
	if len(w.subs) == 0 {
		return
	}
	s := w.subs[w.xrng.IntN(len(w.subs))]
	var c change
	var err error
	switch kind {
	case lkOfferRedeemed:
		c, err = w.redeemOffer(s)
	case lkOfferUpgrade:
		c, err = w.redeemUpgrade(s)
	case lkOfferDowngrade:
		c, err = w.redeemDowngrade(s)
	case lkOfferResubscribe:
		c, err = w.redeemResubscribe(s)
	case lkPriceIncrease:
		c, err = w.spontaneousPriceIncrease(s)
	case lkRefundRequest:
		if c, err = w.requestRefund(s); err == nil && !w.consumptionRequests {
			return // asked, but Apple wants no consumption data: only the decision is notified
		}
	case lkRefundReversed:
		c, err = w.reverseRefund(s, true)
	case lkSupportExtension:
		c, err = w.supportExtension(s)
	}
	if err == nil {
		w.sendChange(s, c)
	}
}

// sendChange sends the notification c describes, about s.
func (w *world) sendChange(s *subscription, c change) {
	n := w.newNote(w.xrng, s, c.typ, c.subtype)
	n.reason = c.reason
	w.send(n)
}

// supportExtension is the developer's support staff extending one
// customer's subscription by 1–30 days through Extend a Subscription
// Renewal Date, outside storesync: RENEWAL_EXTENDED.
func (w *world) supportExtension(s *subscription) (change, error) {
	if s.ownership != "PURCHASED" {
		return change{}, errFamilyExtensionIneligible
	}
	if refusal := s.extensionRefusal(w.now()); refusal != nil {
		return change{}, *refusal
	}
	w.extendRenewal(s, 1+w.xrng.IntN(30))
	return change{typ: "RENEWAL_EXTENDED"}, nil
}
