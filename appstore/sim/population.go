package sim

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/storesync/storesync/appstore"
)

// Population mix. Shares are per account (customer) unless noted; the
// numbers aim at a realistic-looking subscriber base in which every state
// Apple reports occurs often enough to matter in a test of 1,000 customers.
const (
	shareSandboxOnly   = 0.02 // customers that exist only in the sandbox
	shareWithToken     = 0.70 // customers whose app set an appAccountToken
	shareLongHistory   = 0.01 // weekly subscribers for 2–3 years (>100 transactions)
	shareFamilyMember  = 0.04 // customers with only a FAMILY_SHARED subscription
	shareBothGroups    = 0.15 // customers subscribed in both groups
	shareIntroOffer    = 0.25 // subscriptions that began with an introductory offer
	shareHistUpgrade   = 0.10 // multi-period subscriptions upgraded once
	shareHistDowngrade = 0.05 // multi-period subscriptions downgraded once
	shareRecoveredGap  = 0.03 // per renewal: billing failed, then recovered days later
)

// scenario is the state a generated subscription is in at the start.
type scenario int

const (
	scActive scenario = iota
	scAutoRenewOff
	scBillingRetry
	scGracePeriod
	scExpiredVoluntary
	scExpiredBilling
	scRevoked
)

// scenarioWeights are per subscription.
var scenarioWeights = []struct {
	sc scenario
	w  float64
}{
	{scActive, 0.59}, {scAutoRenewOff, 0.08}, {scBillingRetry, 0.04}, {scGracePeriod, 0.03},
	{scExpiredVoluntary, 0.16}, {scExpiredBilling, 0.06}, {scRevoked, 0.04},
}

const day = 24 * time.Hour

// populate generates n customers with their histories up to the clock's
// start, then numbers every transaction's modification sequence in the
// order the changes happened, and schedules what happens next.
func (w *world) populate(n int) {
	w.populating = true
	for range n {
		w.genAccount()
	}
	w.populating = false

	var all []*transaction
	for _, a := range w.accounts {
		for _, s := range a.subs {
			all = append(all, s.txs...)
		}
	}
	// A total order (ids are unique), so the unstable sort is deterministic.
	slices.SortFunc(all, func(x, y *transaction) int {
		if c := x.modAt.Compare(y.modAt); c != 0 {
			return c
		}
		if c := cmp.Compare(x.sub.acct.index, y.sub.acct.index); c != 0 {
			return c
		}
		return cmp.Or(cmp.Compare(len(x.id), len(y.id)), strings.Compare(x.id, y.id))
	})
	for _, t := range all {
		t.seq = w.nextSeq()
		t.sub.acct.bySeq = append(t.sub.acct.bySeq, t)
	}
	for _, s := range w.subs {
		s.version = w.nextSeq()
		w.schedule(s)
	}
	w.scheduleSpontaneous()
	w.scheduleLater()
}

// pick returns true with probability p.
func (w *world) pick(p float64) bool { return chance(w.rng, p) }

// chance returns true with probability p, drawing from r.
func chance(r *rand.Rand, p float64) bool { return r.Float64() < p }

// between returns a uniformly random duration in [lo, hi), in whole
// milliseconds: Apple's dates have millisecond precision, and so must the
// world's, or truth and signed payloads would differ.
func (w *world) between(lo, hi time.Duration) time.Duration { return between(w.rng, lo, hi) }

// between is world.between drawing from r.
func between(r *rand.Rand, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return (lo + time.Duration(r.Int64N(int64(hi-lo)))).Truncate(time.Millisecond)
}

func (w *world) pickGroup(r *rand.Rand) *group {
	if chance(r, 0.65) {
		return w.cat.Groups[0]
	}
	return w.cat.Groups[1]
}

// pickProduct chooses a period: monthly plans dominate, as in most apps.
func (w *world) pickProduct(r *rand.Rand, g *group) *product {
	u := r.Float64()
	if len(g.Products) == 3 {
		switch {
		case u < 0.25:
			return g.Products[0] // yearly
		case u < 0.85:
			return g.Products[1] // monthly
		}
		return g.Products[2] // weekly
	}
	if u < 0.3 {
		return g.Products[0]
	}
	return g.Products[1]
}

func (w *world) pickScenario() scenario {
	u := w.rng.Float64()
	for _, s := range scenarioWeights {
		if u < s.w {
			return s.sc
		}
		u -= s.w
	}
	return scActive
}

func (w *world) genAccount() {
	env := appstore.Production
	if w.pick(shareSandboxOnly) {
		env = appstore.Sandbox
	}
	a := w.newAccount(w.rng, env, w.pick(shareWithToken))
	switch {
	case w.pick(shareLongHistory):
		weekly := w.cat.products[ProductPremiumWeekly]
		w.genSubscription(a, weekly, scActive, "PURCHASED", true)
	case w.pick(shareFamilyMember):
		g := w.pickGroup(w.rng)
		w.genSubscription(a, w.pickProduct(w.rng, g), w.pickScenario(), "FAMILY_SHARED", false)
	default:
		g := w.pickGroup(w.rng)
		w.genSubscription(a, w.pickProduct(w.rng, g), w.pickScenario(), "PURCHASED", false)
		if w.pick(shareBothGroups) {
			other := w.cat.Groups[0]
			if g == other {
				other = w.cat.Groups[1]
			}
			w.genSubscription(a, w.pickProduct(w.rng, other), w.pickScenario(), "PURCHASED", false)
		}
	}
}

// segment is one generated transaction before it gets its id.
type segment struct {
	p                  *product
	purchase, expires  time.Time
	upgraded           bool
	upgradedAt         time.Time
	intro              bool
	purchaseNotRenewal bool
}

// genSubscription builds a history backwards from the subscription's
// latest period, so the final state (active now, expired 40 days ago, in
// grace period, ...) is exact, then creates the transactions oldest first
// so ids grow with time.
func (w *world) genSubscription(a *account, p *product, sc scenario, ownership string, long bool) {
	now := w.now()
	var latestExpires time.Time
	switch sc {
	case scActive, scAutoRenewOff, scRevoked:
		latestExpires = now.Add(w.between(time.Hour, p.length()-time.Hour))
	case scBillingRetry:
		latestExpires = now.Add(-w.between(time.Hour, 50*day))
	case scGracePeriod:
		latestExpires = now.Add(-w.between(time.Hour, p.gracePeriod()-time.Hour))
	case scExpiredVoluntary:
		latestExpires = now.Add(-w.between(day, 400*day))
	case scExpiredBilling:
		latestExpires = now.Add(-w.between(61*day, 400*day))
	}
	latestPurchase := p.start(latestExpires)

	var periods int
	switch {
	case long:
		periods = 105 + w.rng.IntN(50)
	case p.Months >= 12:
		periods = 1 + w.rng.IntN(3)
	case p.Months > 0:
		periods = 1 + w.rng.IntN(18)
	default:
		periods = 1 + w.rng.IntN(30)
	}
	upgradeAt, downgradeAt := -1, -1
	if !long && periods >= 3 {
		switch {
		case p.lower() != nil && w.pick(shareHistUpgrade):
			upgradeAt = 1 + w.rng.IntN(periods-1)
		case p.higher() != nil && w.pick(shareHistDowngrade):
			downgradeAt = 1 + w.rng.IntN(periods-1)
		}
	}

	segs := []segment{{p: p, purchase: latestPurchase, expires: latestExpires}}
	cur, start := p, latestPurchase
	for i := 1; i < periods; i++ {
		if i == upgradeAt {
			// The customer upgraded to cur 30% into a period of the lower
			// product; that transaction is flagged isUpgraded.
			lower := cur.lower()
			purchase := start.Add(-lower.length() * 3 / 10)
			segs[len(segs)-1].purchaseNotRenewal = true
			segs = append(segs, segment{p: lower, purchase: purchase, expires: lower.end(purchase), upgraded: true, upgradedAt: start})
			cur, start = lower, purchase
			continue
		}
		if i == downgradeAt {
			cur = cur.higher()
		}
		end := start
		if w.pick(shareRecoveredGap) {
			end = end.Add(-w.between(day, 10*day))
		}
		start = cur.start(end)
		segs = append(segs, segment{p: cur, purchase: start, expires: end})
	}
	if !long && w.pick(shareIntroOffer) {
		segs = append(segs, segment{p: cur, purchase: start.Add(-time.Duration(cur.Intro.Days) * day), expires: start, intro: true})
	}
	slices.Reverse(segs)

	s := w.newSubscription(a, segs[0].p, ownership)
	for i, sg := range segs {
		reason := "RENEWAL"
		if i == 0 || sg.purchaseNotRenewal {
			reason = "PURCHASE"
		}
		t := w.newTx(s, sg.p, sg.purchase, sg.expires, reason)
		if sg.intro {
			t.offerType = 1
			t.offerDisc = sg.p.Intro.DiscountType
			t.offerPer = sg.p.Intro.Period
			t.price = a.storefront.localPrice(sg.p.Intro.Price)
		}
		if sg.upgraded {
			t.upgraded = true
			t.modAt = sg.upgradedAt
		}
	}
	s.autoRenewProduct = s.product
	w.applyScenario(s, sc, p)
}

// applyScenario sets the renewal state the scenario ends in.
func (w *world) applyScenario(s *subscription, sc scenario, p *product) {
	now := w.now()
	l := s.latest()
	switch sc {
	case scAutoRenewOff:
		s.autoRenew = false
		s.expirationIntent = 1
	case scBillingRetry, scGracePeriod:
		s.inRetry = true
		s.expirationIntent = 2
		s.retryEnd = l.expires.Add(60 * day)
		if sc == scGracePeriod {
			s.graceExpires = l.expires.Add(p.gracePeriod())
		}
		if w.pick(0.5) {
			s.recoverAt = now.Add(w.between(time.Hour, s.retryEnd.Sub(now)))
		}
	case scExpiredVoluntary:
		s.autoRenew = false
		s.expirationIntent = 1
	case scExpiredBilling:
		s.autoRenew = false
		s.expirationIntent = 2
	case scRevoked:
		at := l.purchase.Add(w.between(time.Minute, now.Sub(l.purchase)))
		w.setRevoked(w.rng, l, at)
		l.modAt = at
		s.renewedBeforeRevoke = s.autoRenew
		s.autoRenew = false
	}
}

// setRevoked marks t refunded (or, when family-shared, revoked) at at,
// drawing the refund's kind and reason from r.
func (w *world) setRevoked(r *rand.Rand, t *transaction, at time.Time) {
	t.revokedAt = at
	t.revPercent = 100000
	switch {
	case t.sub.ownership == "FAMILY_SHARED":
		t.revType = "FAMILY_REVOKE"
	case chance(r, 0.15):
		t.revType = "REFUND_PRORATED"
		t.revPercent = 25000 + r.Int64N(65000)
	default:
		t.revType = "REFUND_FULL"
	}
	if chance(r, 0.3) {
		t.revReason = 1
	}
}
