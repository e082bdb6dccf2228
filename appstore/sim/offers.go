package sim

import (
	"fmt"

	"github.com/storesync/storesync/appstore"
)

// Subscription offers other than the introductory one (offerType 1):
// promotional offers (2) the app presents to existing or lapsed customers,
// and offer codes (3) customers redeem in the App Store, where the app
// cannot set an appAccountToken. Every one lasts one billing period.
// Redeeming one is OFFER_REDEEMED, with Apple's subtypes: none (for the
// next renewal of the current plan), UPGRADE (at once), DOWNGRADE (from the
// next renewal), RESUBSCRIBE and INITIAL_BUY.
const (
	offerTypePromotional = 2
	offerTypeCode        = 3
)

// offer is one redeemed offer, for product.
type offer struct {
	product *product
	typ     int    // offerType
	id      string // offerIdentifier: the promotional offer's or the code's name
	disc    string // offerDiscountType
	period  string // offerPeriod
	price   int64  // in the storefront's currency, milliunits
}

// billingPeriod is p's period as an ISO 8601 duration (offerPeriod).
func billingPeriod(p *product) string {
	switch {
	case p.Months == 12:
		return "P1Y"
	case p.Months > 0:
		return fmt.Sprintf("P%dM", p.Months)
	}
	return fmt.Sprintf("P%dW", p.Days/7)
}

// halfPrice is the promotional offer every product has: one period at half
// price.
func halfPrice(a *account, p *product) *offer {
	return &offer{product: p, typ: offerTypePromotional, id: "promo.half_price", disc: "PAY_AS_YOU_GO",
		period: billingPeriod(p), price: a.storefront.localPrice(p.Price / 2)}
}

// comeback is the offer code for lapsed customers: one period at half
// price.
func comeback(a *account, p *product) *offer {
	return &offer{product: p, typ: offerTypeCode, id: "COMEBACK50", disc: "PAY_AS_YOU_GO",
		period: billingPeriod(p), price: a.storefront.localPrice(p.Price / 2)}
}

// freePeriod is the offer code for new customers: one period free.
func freePeriod(p *product) *offer {
	return &offer{product: p, typ: offerTypeCode, id: "FREE" + billingPeriod(p), disc: "FREE_TRIAL", period: billingPeriod(p)}
}

// apply makes t a transaction of o.
func (o *offer) apply(t *transaction) {
	t.offerType, t.offerID, t.offerDisc, t.offerPer, t.price = o.typ, o.id, o.disc, o.period, o.price
}

// renewalOfferOf is the offer s's next renewal applies, or nil (none, or
// one for a product s no longer renews to).
func (s *subscription) renewalOfferOf() *offer {
	if o := s.renewalOffer; o != nil && o.product == s.autoRenewProduct {
		return o
	}
	return nil
}

// offerChecks refuses what no offer applies to: a family-shared
// subscription (the purchaser redeems) and, unless expired is wanted, one
// that is not active and renewing.
func (w *world) offerChecks(s *subscription, expired bool) error {
	now := w.now()
	st := s.status(now)
	switch {
	case s.ownership != "PURCHASED":
		return fmt.Errorf("subscription %s is family-shared: only its purchaser redeems offers", s.otid)
	case expired && st != appstore.StatusExpired:
		return fmt.Errorf("subscription %s is %s, not expired", s.otid, statusNames[st])
	case !expired && (st != appstore.StatusActive || !s.autoRenew):
		return fmt.Errorf("subscription %s is not active and renewing", s.otid)
	}
	return nil
}

// redeemOffer is OFFER_REDEEMED without subtype: a promotional offer for
// the next renewal of the current plan. Not while another offer is
// running or waiting. Callers hold the write lock.
func (w *world) redeemOffer(s *subscription) (change, error) {
	if err := w.offerChecks(s, false); err != nil {
		return change{}, err
	}
	if s.renewalOfferOf() != nil || s.latest().offerType != 0 {
		return change{}, fmt.Errorf("subscription %s already has an offer", s.otid)
	}
	s.renewalOffer = halfPrice(s.acct, s.autoRenewProduct)
	w.touchSub(s)
	return change{typ: "OFFER_REDEEMED"}, nil
}

// redeemUpgrade is OFFER_REDEEMED/UPGRADE: an upgrade, effective now, whose
// first period is the higher product's promotional offer.
func (w *world) redeemUpgrade(s *subscription) (change, error) {
	if err := w.offerChecks(s, false); err != nil {
		return change{}, err
	}
	hp := s.product.higher()
	if hp == nil {
		return change{}, fmt.Errorf("subscription %s has no higher plan", s.otid)
	}
	w.upgrade(s)
	halfPrice(s.acct, hp).apply(s.latest())
	return change{typ: "OFFER_REDEEMED", subtype: "UPGRADE"}, nil
}

// redeemDowngrade is OFFER_REDEEMED/DOWNGRADE: from the next renewal, the
// lower product at its promotional price.
func (w *world) redeemDowngrade(s *subscription) (change, error) {
	if err := w.offerChecks(s, false); err != nil {
		return change{}, err
	}
	lp := s.product.lower()
	if lp == nil || s.autoRenewProduct != s.product {
		return change{}, fmt.Errorf("subscription %s has no lower plan or already changes plan", s.otid)
	}
	s.autoRenewProduct = lp
	s.renewalOffer = halfPrice(s.acct, lp)
	w.touchSub(s)
	return change{typ: "OFFER_REDEEMED", subtype: "DOWNGRADE"}, nil
}

// redeemResubscribe is OFFER_REDEEMED/RESUBSCRIBE: a lapsed customer comes
// back with an offer code.
func (w *world) redeemResubscribe(s *subscription) (change, error) {
	if err := w.offerChecks(s, true); err != nil {
		return change{}, err
	}
	w.resubscribe(s)
	comeback(s.acct, s.product).apply(s.latest())
	return change{typ: "OFFER_REDEEMED", subtype: "RESUBSCRIBE"}, nil
}

// offerCodeCustomer is OFFER_REDEEMED/INITIAL_BUY: a new customer redeems a
// free-period offer code in the App Store. The app was not involved, so
// Apple has no appAccountToken for them (the company has one: a case for
// Set App Account Token). Callers hold the write lock.
func (w *world) offerCodeCustomer() *subscription {
	env := appstore.Production
	if chance(w.xrng, shareSandboxOnly) {
		env = appstore.Sandbox
	}
	a := w.newAccount(w.xrng, env, false)
	p := w.pickProduct(w.xrng, w.pickGroup(w.xrng))
	s := w.purchase(a, p, false)
	freePeriod(p).apply(s.latest())
	w.send(w.newNote(w.xrng, s, "OFFER_REDEEMED", "INITIAL_BUY"))
	return s
}
