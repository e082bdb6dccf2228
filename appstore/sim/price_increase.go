package sim

import (
	"fmt"
	"time"

	"github.com/storesync/storesync/appstore"
)

// A price increase is modelled per subscription, as its customer meets it:
// the next renewal of the auto-renew product will cost more. When the
// increase needs consent (priceIncreaseConsentShare of them) Apple sends
// PRICE_INCREASE/PENDING (priceIncreaseStatus 0), then
// PRICE_INCREASE/ACCEPTED (1) if the customer agrees before the renewal;
// one who never agrees expires at the renewal date (EXPIRED/PRICE_INCREASE,
// expirationIntent 3). An increase without consent is
// PRICE_INCREASE/ACCEPTED straight away. The renewal after an accepted
// increase is charged the new price.
const (
	priceIncreaseConsentShare = 0.5
	priceIncreaseAcceptShare  = 0.7
)

// priceIncrease is a price increase pending for a subscription's next
// renewal of product.
type priceIncrease struct {
	product *product
	price   int64 // new price in the storefront's currency, milliunits
	status  int   // priceIncreaseStatus: 0 no answer yet, 1 accepted or notified
}

// pendingPriceIncrease is the increase that applies to s's next renewal,
// or nil (none, or one for a product s no longer renews to).
func (s *subscription) pendingPriceIncrease() *priceIncrease {
	if pi := s.priceInc; pi != nil && pi.product == s.autoRenewProduct {
		return pi
	}
	return nil
}

// increasePrice raises the price of s's next renewal by percent. Only an
// active, auto-renewing purchase with no increase pending and more than
// two hours left can get one. Callers hold the write lock.
func (w *world) increasePrice(s *subscription, percent int64, consent bool) (change, error) {
	now := w.now()
	switch {
	case s.ownership != "PURCHASED":
		return change{}, fmt.Errorf("subscription %s is family-shared: its purchaser gets the price increase", s.otid)
	case s.status(now) != appstore.StatusActive || !s.autoRenew:
		return change{}, fmt.Errorf("subscription %s does not renew", s.otid)
	case s.pendingPriceIncrease() != nil:
		return change{}, fmt.Errorf("subscription %s has a price increase pending", s.otid)
	case s.latest().expires.Sub(now) < 2*time.Hour:
		return change{}, fmt.Errorf("subscription %s renews within two hours", s.otid)
	}
	p := s.autoRenewProduct
	pi := &priceIncrease{product: p, price: s.acct.storefront.localPrice(p.Price * (100 + percent) / 100), status: 1}
	if consent {
		pi.status = 0
	}
	s.priceInc = pi
	w.touchSub(s)
	if consent {
		return change{typ: "PRICE_INCREASE", subtype: "PENDING"}, nil
	}
	return change{typ: "PRICE_INCREASE", subtype: "ACCEPTED"}, nil
}

// consentToPrice is the customer agreeing to s's pending increase.
// Callers hold the write lock.
func (w *world) consentToPrice(s *subscription) (change, error) {
	pi := s.pendingPriceIncrease()
	if pi == nil || pi.status != 0 || s.status(w.now()) != appstore.StatusActive {
		return change{}, fmt.Errorf("subscription %s has no price increase awaiting consent", s.otid)
	}
	pi.status = 1
	w.touchSub(s)
	return change{typ: "PRICE_INCREASE", subtype: "ACCEPTED"}, nil
}

// spontaneousPriceIncrease is a random increase of 10–30%; a customer
// asked for consent agrees, or not, at a random instant before renewing.
func (w *world) spontaneousPriceIncrease(s *subscription) (change, error) {
	consent := chance(w.xrng, priceIncreaseConsentShare)
	c, err := w.increasePrice(s, 10+w.xrng.Int64N(21), consent)
	if err == nil && consent && chance(w.xrng, priceIncreaseAcceptShare) {
		left := s.latest().expires.Sub(w.now())
		w.push(w.now().Add(between(w.xrng, time.Hour, left-time.Hour)), evPriceConsent, s)
	}
	return c, err
}

// onPriceConsent applies a scheduled consent, if still awaited.
func (w *world) onPriceConsent(s *subscription) {
	if c, err := w.consentToPrice(s); err == nil {
		w.send(w.newNote(w.xrng, s, c.typ, c.subtype))
	}
}

// expireForPrice ends s at its renewal date because its customer never
// agreed to the price increase; it reports whether it did.
func (w *world) expireForPrice(s *subscription) bool {
	pi := s.pendingPriceIncrease()
	if pi == nil || pi.status != 0 {
		return false
	}
	s.autoRenew = false
	s.expirationIntent = 3
	s.priceInc = nil
	w.touchSub(s)
	w.send(w.newNote(w.xrng, s, "EXPIRED", "PRICE_INCREASE"))
	s.gen++ // nothing follows an expiry
	return true
}
