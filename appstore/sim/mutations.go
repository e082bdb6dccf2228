package sim

import (
	"fmt"
	"slices"
	"time"

	"github.com/storesync/storesync/appstore"
)

// MutationKind is a change Mutate applies silently: the world changes as
// if Apple's notification about it was lost, so only reconciliation
// (status and history calls) can notice. MutateAndNotify applies the same
// change and sends the notification Apple sends about it.
type MutationKind string

const (
	// MutateRefund refunds the latest transaction (revocationDate now);
	// notified as REFUND, or REVOKE when family-shared.
	MutateRefund MutationKind = "refund"
	// MutateExpire turns auto-renew off and ends the current period just
	// before now, so the subscription is expired; notified as
	// EXPIRED/VOLUNTARY.
	MutateExpire MutationKind = "expire"
	// MutateRenew adds a renewal transaction purchased now (recovering
	// billing trouble or an expiry); notified as DID_RENEW, with subtype
	// BILLING_RECOVERY when it was in billing retry.
	MutateRenew MutationKind = "renew"
	// MutateAutoRenewOff and MutateAutoRenewOn flip autoRenewStatus;
	// notified as DID_CHANGE_RENEWAL_STATUS/AUTO_RENEW_DISABLED or _ENABLED.
	MutateAutoRenewOff MutationKind = "auto-renew-off"
	MutateAutoRenewOn  MutationKind = "auto-renew-on"
	// MutateChangeRenewalProduct sets autoRenewProductId to the next other
	// product of the subscription's group; notified as
	// DID_CHANGE_RENEWAL_PREF, subtype DOWNGRADE when the new product ranks
	// lower than the current one, none otherwise (Apple's upgrades take
	// effect at once, which this change is not).
	MutateChangeRenewalProduct MutationKind = "change-renewal-product"

	// MutateRefundReversed undoes the refund of the latest transaction: no
	// revocation any more, the status what the dates say, auto-renew as
	// before the refund while the period runs (REFUND_REVERSED). Fails for
	// an unrefunded or family-revoked subscription.
	MutateRefundReversed MutationKind = "refund-reversed"
	// MutatePriceIncrease raises the next renewal's price by 20%, awaiting
	// the customer's consent: priceIncreaseStatus 0, renewalPrice the new
	// price (PRICE_INCREASE/PENDING). A customer who never consents expires
	// at the renewal date (EXPIRED/PRICE_INCREASE). Needs an active,
	// auto-renewing purchase more than two hours from renewal with no
	// increase pending.
	MutatePriceIncrease MutationKind = "price-increase"
	// MutatePriceIncreaseConsent is the customer agreeing to a pending
	// increase: priceIncreaseStatus 1 (PRICE_INCREASE/ACCEPTED); the next
	// renewal is charged the new price.
	MutatePriceIncreaseConsent MutationKind = "price-increase-consent"
	// MutateOfferRedeemed redeems a promotional offer (half price, one
	// period) for the next renewal: renewal info gets offerType 2 and its
	// offerIdentifier (OFFER_REDEEMED, no subtype). Needs an active,
	// auto-renewing purchase with no offer running or waiting.
	MutateOfferRedeemed MutationKind = "offer-redeemed"
	// MutateOfferUpgrade upgrades one level now, the new transaction at the
	// promotional offer's price (OFFER_REDEEMED/UPGRADE). Needs an active,
	// auto-renewing purchase below the group's top level.
	MutateOfferUpgrade MutationKind = "offer-upgrade"
	// MutateExtendRenewalDate extends the renewal date by 30 days under
	// Apple's rules for Extend a Subscription Renewal Date (active, paid
	// once, no free offer, not family-shared, two per 365 days)
	// (RENEWAL_EXTENDED).
	MutateExtendRenewalDate MutationKind = "extend-renewal-date"
	// MutateBillingRetry is a renewal whose billing fails now: the current
	// period ends just before now and Apple retries for 60 days without a
	// grace period (billing retry, DID_FAIL_TO_RENEW). MutateBillingGrace is
	// the same with the product's billing grace period running from the
	// period's end (grace period, DID_FAIL_TO_RENEW/GRACE_PERIOD). Neither
	// recovers by itself (MutateRenew recovers). Both need an active,
	// auto-renewing, unrevoked purchase.
	MutateBillingRetry MutationKind = "billing-retry"
	MutateBillingGrace MutationKind = "billing-grace"

	// MutateConsumptionRequest files a refund request for an active
	// purchase (CONSUMPTION_REQUEST with a consumptionRequestReason); Apple
	// decides it 12 hours to 7 days later, notifying REFUND or
	// REFUND_DECLINED. It only exists with its notification: Mutate
	// refuses it.
	MutateConsumptionRequest MutationKind = "consumption-request"
	// MutateRefundDeclined is Apple declining a refund (REFUND_DECLINED);
	// nothing changes but a pending request ends. It only exists with its
	// notification: Mutate refuses it.
	MutateRefundDeclined MutationKind = "refund-declined"
)

// MutationKinds lists every MutationKind.
var MutationKinds = []MutationKind{
	MutateRefund, MutateExpire, MutateRenew, MutateAutoRenewOff, MutateAutoRenewOn, MutateChangeRenewalProduct,
	MutateRefundReversed, MutatePriceIncrease, MutatePriceIncreaseConsent, MutateOfferRedeemed, MutateOfferUpgrade,
	MutateExtendRenewalDate, MutateBillingRetry, MutateBillingGrace, MutateConsumptionRequest, MutateRefundDeclined,
}

// notifyOnly are the kinds that change nothing worth hiding: without their
// notification they would not have happened.
var notifyOnly = []MutationKind{MutateConsumptionRequest, MutateRefundDeclined}

// mutate applies a change, silently or (notify) with Apple's notification;
// it fails when the subscription is unknown or the change would not change
// anything or does not apply.
func (w *world) mutate(otid string, kind MutationKind, notify bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.envs[0].subByOTID[otid]
	if s == nil {
		s = w.envs[1].subByOTID[otid]
	}
	if s == nil {
		return fmt.Errorf("sim: Mutate: no subscription with originalTransactionId %q", otid)
	}
	if !notify && slices.Contains(notifyOnly, kind) {
		return fmt.Errorf("sim: Mutate %s: it exists only with its notification: use MutateAndNotify (or notify=true)", kind)
	}
	now := w.now()
	l := s.latest()
	revoked := !l.revokedAt.IsZero()
	var c change
	var err error
	switch kind {
	case MutateRefund:
		if revoked {
			return fmt.Errorf("sim: Mutate %s: subscription %s is already revoked", kind, otid)
		}
		w.revoke(w.rng, s)
		c.typ = "REFUND"
		if s.ownership != "PURCHASED" {
			c.typ = "REVOKE"
		}
	case MutateExpire:
		if revoked || s.status(now) == appstore.StatusExpired {
			return fmt.Errorf("sim: Mutate %s: subscription %s is already %s", kind, otid, statusNames[s.status(now)])
		}
		s.autoRenew = false
		s.inRetry = false
		s.graceExpires, s.recoverAt, s.retryEnd = time.Time{}, time.Time{}, time.Time{}
		s.expirationIntent = 1
		if !l.expires.Before(now) {
			l.expires = now.Add(-time.Millisecond)
			w.touchTx(l)
		}
		w.touchSub(s)
		w.schedule(s)
		c = change{typ: "EXPIRED", subtype: "VOLUNTARY"}
	case MutateRenew:
		if revoked {
			return fmt.Errorf("sim: Mutate %s: subscription %s is revoked", kind, otid)
		}
		c.typ = "DID_RENEW"
		if s.inRetry {
			c.subtype = "BILLING_RECOVERY"
		}
		if now.Sub(l.expires) > 60*day {
			s.recentStart = now
		}
		w.renew(s, now)
		s.autoRenew = true
		w.schedule(s)
	case MutateAutoRenewOff, MutateAutoRenewOn:
		on := kind == MutateAutoRenewOn
		if revoked || s.autoRenew == on {
			return fmt.Errorf("sim: Mutate %s: subscription %s has autoRenewStatus %t already or is revoked", kind, otid, s.autoRenew)
		}
		s.autoRenew = on
		c = change{typ: "DID_CHANGE_RENEWAL_STATUS", subtype: "AUTO_RENEW_DISABLED"}
		if on {
			s.expirationIntent = 0
			c.subtype = "AUTO_RENEW_ENABLED"
		} else {
			s.expirationIntent = 1
		}
		w.touchSub(s)
		w.schedule(s)
	case MutateChangeRenewalProduct:
		ps := s.group.Products
		for i, p := range ps {
			if p == s.autoRenewProduct {
				s.autoRenewProduct = ps[(i+1)%len(ps)]
				break
			}
		}
		c.typ = "DID_CHANGE_RENEWAL_PREF"
		if s.autoRenewProduct.Level > s.product.Level {
			c.subtype = "DOWNGRADE"
		}
		w.touchSub(s)
		w.schedule(s)
	case MutateRefundReversed:
		c, err = w.reverseRefund(s, false)
	case MutatePriceIncrease:
		c, err = w.increasePrice(s, 20, true)
	case MutatePriceIncreaseConsent:
		c, err = w.consentToPrice(s)
	case MutateOfferRedeemed:
		c, err = w.redeemOffer(s)
	case MutateOfferUpgrade:
		c, err = w.redeemUpgrade(s)
	case MutateExtendRenewalDate:
		if s.ownership != "PURCHASED" {
			err = errFamilyExtensionIneligible
		} else if refusal := s.extensionRefusal(now); refusal != nil {
			err = *refusal
		} else {
			w.extendRenewal(s, 30)
			c.typ = "RENEWAL_EXTENDED"
		}
	case MutateBillingRetry, MutateBillingGrace:
		c, err = w.failBilling(s, kind == MutateBillingGrace)
	case MutateConsumptionRequest:
		c, err = w.requestRefund(s)
	case MutateRefundDeclined:
		c, err = w.declineRefund(s)
	default:
		return fmt.Errorf("sim: Mutate: unknown kind %q: use one of %v", kind, MutationKinds)
	}
	if err != nil {
		return fmt.Errorf("sim: Mutate %s: %w", kind, err)
	}
	if notify {
		w.sendChange(s, c)
	}
	return nil
}

// failBilling ends s's current period just before now with its renewal's
// billing failed: in billing retry for 60 days, in the grace period first
// when grace says so. It never recovers by itself, so a test decides when
// (or whether) billing succeeds again.
func (w *world) failBilling(s *subscription, grace bool) (change, error) {
	now := w.now()
	l := s.latest()
	if !l.revokedAt.IsZero() || s.status(now) != appstore.StatusActive || !s.autoRenew {
		return change{}, fmt.Errorf("subscription %s is %s with autoRenewStatus %t; a billing failure needs an active, auto-renewing one",
			s.otid, statusNames[s.status(now)], s.autoRenew)
	}
	l.expires = now.Add(-time.Millisecond)
	w.touchTx(l)
	s.inRetry = true
	s.expirationIntent = 2
	s.retryEnd = l.expires.Add(60 * day)
	s.recoverAt = time.Time{}
	s.graceExpires = time.Time{}
	c := change{typ: "DID_FAIL_TO_RENEW"}
	if grace {
		s.graceExpires = l.expires.Add(l.product.gracePeriod())
		c.subtype = "GRACE_PERIOD"
	}
	w.touchSub(s)
	w.schedule(s)
	return c, nil
}
