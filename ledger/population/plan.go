package population

import (
	"fmt"
	"time"
)

// Products Fill sells, in one subscription group. Yearly subscriptions
// have at most two transactions; monthly ones up to thirteen.
const (
	ProductMonthly = "com.example.monthly"
	ProductPremium = "com.example.monthly.premium"
	ProductYearly  = "com.example.yearly"
	// GroupID is the subscription group of every product.
	GroupID = "21482456"
)

// Status classes and their shares of the population. Their shares sum to
// 1 in order: active 62%, expired 28%, billing retry 2%, grace period 1%,
// revoked 3%, active with auto-renew off 4%.
const (
	classActive = iota
	classExpired
	classBillingRetry
	classGrace
	classRevoked
	classAutoRenewOff
)

var classShares = []float64{0.62, 0.28, 0.02, 0.01, 0.03, 0.04}

// plan is one subscription's shape, a function of (seed, i) alone.
type plan struct {
	i          int
	otid       string
	customer   int // index of its customer; -1: none
	token      string
	env        string
	product    string
	months     int // period length
	class      int
	start      time.Time
	n          int // transactions
	revokedAt  time.Time
	checkedAt  time.Time // zero: never checked
	riSigned   time.Time
	graceUntil time.Time
	intent     int
}

// mix is splitmix64: a cheap, well-spread hash of (seed, i, salt).
func mix(seed uint64, i int, salt uint64) uint64 {
	z := seed + uint64(i)*0x9e3779b97f4a7c15 + salt*0xbf58476d1ce4e5b9
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// unit is mix mapped to [0, 1).
func unit(seed uint64, i int, salt uint64) float64 {
	return float64(mix(seed, i, salt)>>11) / (1 << 53)
}

// OriginalTransactionID is subscription i's originalTransactionId: 16
// decimal digits, as Apple's.
func OriginalTransactionID(i int) string { return fmt.Sprint(2000000000000000 + i) }

// transactionID is the k-th transaction of subscription i (k < 16).
func transactionID(i, k int) string {
	if k == 0 {
		return OriginalTransactionID(i)
	}
	return fmt.Sprint(3000000000000000 + int64(i)*16 + int64(k))
}

// customerOf returns the customer index of subscription i: every tenth
// subscription belongs to the previous one's customer; a twentieth of the
// customers are absent (-1: no link, no appAccountToken).
func customerOf(seed uint64, i int) int {
	c := i
	if i%10 == 9 {
		c = i - 1
	}
	if mix(seed, c, 1)%20 == 0 {
		return -1
	}
	return c
}

// CustomerID is the customer id of Fill's customer c, as the company's
// backend names it. Subscription i's customer, when it has one, is
// CustomerOf(seed, i).
func CustomerID(c int) string { return fmt.Sprintf("cust-%d", c) }

// CustomerOf returns the index of subscription i's customer in a ledger
// Fill built with seed, and false when the subscription has none.
func CustomerOf(seed uint64, i int) (int, bool) {
	c := customerOf(seed, i)
	return c, c >= 0
}

// AppAccountToken is customer c's appAccountToken (a UUID v4 derived
// from seed and c).
func AppAccountToken(seed uint64, c int) string {
	a, b := mix(seed, c, 2), mix(seed, c, 3)
	a = a&^0xf000 | 0x4000     // version 4
	b = b&^(0xc<<60) | 0x8<<60 // variant 10
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", a>>32, (a>>16)&0xffff, a&0xffff, b>>48, b&0xffffffffffff)
}

// planOf builds subscription i's shape as of now.
func planOf(seed uint64, i int, now time.Time) plan {
	const day = 24 * time.Hour
	p := plan{i: i, otid: OriginalTransactionID(i), customer: customerOf(seed, i), env: "Production", months: 1}
	if p.customer >= 0 {
		p.token = AppAccountToken(seed, p.customer)
	}
	if unit(seed, i, 4) < 0.02 {
		p.env = "Sandbox" // testers and reviewers
	}
	switch r := unit(seed, i, 5); {
	case r < 0.70:
		p.product = ProductMonthly
	case r < 0.90:
		p.product = ProductPremium
	default:
		p.product, p.months = ProductYearly, 12
	}
	r := unit(seed, i, 6)
	for c, share := range classShares {
		if r < share || c == len(classShares)-1 {
			p.class = c
			break
		}
		r -= share
	}
	// age periods: the period covering now is number age (0-based); phase
	// is how far into it now lies, at least a day (so facts signed an hour
	// after an expiry are still in the past) and less than any period.
	maxAge := 12
	if p.months == 12 {
		maxAge = 1
	}
	age := int(mix(seed, i, 7) % uint64(maxAge+1))
	phaseDays := 27
	if p.class == classGrace {
		phaseDays = 15 // still inside the 16-day grace period
	}
	phase := day + time.Duration(unit(seed, i, 8)*float64(phaseDays-1)*float64(day)).Truncate(time.Second)
	if age == 0 && (p.class == classExpired || p.class == classBillingRetry || p.class == classGrace) {
		age = 1 // they need an ended period
	}
	p.start = now.AddDate(0, -age*p.months, 0).Add(-phase).Truncate(time.Second)
	switch p.class {
	case classActive, classAutoRenewOff, classRevoked:
		p.n = age + 1
	case classBillingRetry, classGrace:
		p.n = age
	case classExpired:
		p.n = 1 + int(mix(seed, i, 9)%uint64(age))
	}
	latestPurchase := p.purchase(p.n - 1)
	latestExpires := p.expires(p.n - 1)
	switch p.class {
	case classRevoked:
		p.revokedAt = latestPurchase.Add(time.Duration(unit(seed, i, 10) * float64(now.Sub(latestPurchase)-time.Hour))).Truncate(time.Millisecond)
		p.riSigned = p.revokedAt.Add(time.Second)
	case classActive, classAutoRenewOff:
		p.riSigned = latestPurchase.Add(3 * time.Second)
		if p.class == classAutoRenewOff {
			p.riSigned = latestPurchase.Add(now.Sub(latestPurchase) / 2).Truncate(time.Millisecond)
		}
	default: // ended: Apple re-signs renewal info when the period ends
		p.riSigned = latestExpires.Add(time.Hour)
	}
	switch p.class {
	case classExpired:
		p.intent = 1 // voluntary
		if mix(seed, i, 11)%5 == 0 {
			p.intent = 2 // billing error
		}
	case classBillingRetry, classGrace:
		p.intent = 2
	}
	if p.class == classGrace {
		p.graceUntil = latestExpires.Add(16 * day)
	}
	// Reconciliation checks a seventh of the ledger a night; a
	// twenty-fifth was never checked (new since the last cycle).
	if mix(seed, i, 12)%25 != 0 {
		p.checkedAt = now.Add(-time.Duration(mix(seed, i, 13)%604800) * time.Second)
	}
	return p
}

// purchase is the purchaseDate of transaction k.
func (p *plan) purchase(k int) time.Time { return p.start.AddDate(0, k*p.months, 0) }

// expires is the expiresDate of transaction k.
func (p *plan) expires(k int) time.Time { return p.start.AddDate(0, (k+1)*p.months, 0) }

// txSigned is when Apple signed transaction k: two seconds after the
// purchase, or a second after the revocation of a revoked one.
func (p *plan) txSigned(k int) time.Time {
	if p.class == classRevoked && k == p.n-1 {
		return p.revokedAt.Add(time.Second)
	}
	return p.purchase(k).Add(2 * time.Second)
}

// status is Apple's status of the subscription (1–5).
func (p *plan) status() int {
	switch p.class {
	case classExpired:
		return 2
	case classBillingRetry:
		return 3
	case classGrace:
		return 4
	case classRevoked:
		return 5
	}
	return 1
}

// autoRenew is the renewal info's autoRenewStatus.
func (p *plan) autoRenew() bool {
	return p.class == classActive || p.class == classBillingRetry || p.class == classGrace
}

// statusSigned is when Apple last stated the status: the last check, or
// the renewal info's signing when never checked.
func (p *plan) statusSigned() time.Time {
	if !p.checkedAt.IsZero() && p.checkedAt.After(p.riSigned) {
		return p.checkedAt.Truncate(time.Millisecond)
	}
	return p.riSigned
}

// lastSigned is the newest fact Apple signed about the subscription.
func (p *plan) lastSigned() time.Time {
	t := p.statusSigned()
	for _, c := range []time.Time{p.riSigned, p.txSigned(p.n - 1)} {
		if c.After(t) {
			t = c
		}
	}
	return t
}
