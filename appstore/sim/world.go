package sim

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/storesync/storesync/appstore"
)

// Transaction-id ranges: 16-digit decimals like Apple's, production and
// sandbox in distinct ranges so an id's environment is never ambiguous.
const (
	productionTxBase  = 2_000_000_000_000_000
	sandboxTxBase     = 1_000_000_000_000_000
	productionWebBase = 5_000_000_000_000_000
	sandboxWebBase    = 5_100_000_000_000_000
	appTxBase         = 7_040_000_000_000_000
)

// world is the simulated App Store state of one app: both environments,
// their customers, subscriptions, transactions and notifications, and the
// event queue that moves them on.
//
// mu guards everything below it. HTTP handlers hold the read lock while
// they read and sign; events and mutations hold the write lock.
type world struct {
	mu sync.RWMutex

	bundleID   string
	appAppleID int64
	ca         *CA
	cat        *catalog
	clock      simClock

	seed int64
	rng  *rand.Rand // every random decision about the world's first events
	// xrng decides everything the simulator learnt later (offers, price
	// increases, refund requests, extensions, API changes): a stream of its
	// own, so worlds of a seed keep the draws of w.rng they always had.
	xrng     *rand.Rand
	seq      uint64 // modification sequence; bumped on every change
	envs     [2]*envWorld
	accounts []*account
	subs     []*subscription // creation order, for random picks
	events   eventQueue

	// extendRequests remembers every successful single extension by
	// environment, subscription and requestIdentifier (idempotence);
	// massExtensions every mass extension by environment and
	// requestIdentifier.
	extendRequests map[string]appstore.ExtendRenewalDateResponse
	massExtensions map[string]*massExtension

	// consumptionRequests: spontaneous refund requests send
	// CONSUMPTION_REQUEST (Options.ConsumptionRequests).
	consumptionRequests bool
	// populating is true while the initial population is generated:
	// modification sequence numbers are assigned afterwards, by time.
	populating bool
	// onNotify receives every notification created (under mu).
	onNotify func(*notification)
}

// envWorld holds one environment's indexes. Ids never collide across
// environments, but each environment answers only for its own.
type envWorld struct {
	env         appstore.Environment
	nextTx      uint64
	nextWeb     uint64
	txByID      map[string]*transaction
	subByOTID   map[string]*subscription
	acctByAppTx map[string]*account
	log         []*notification // sent notifications, by signedDate
	tests       map[string]*notification
}

func newEnvWorld(env appstore.Environment) *envWorld {
	e := &envWorld{
		env:         env,
		txByID:      map[string]*transaction{},
		subByOTID:   map[string]*subscription{},
		acctByAppTx: map[string]*account{},
		tests:       map[string]*notification{},
	}
	if env == appstore.Production {
		e.nextTx, e.nextWeb = productionTxBase, productionWebBase
	} else {
		e.nextTx, e.nextWeb = sandboxTxBase, sandboxWebBase
	}
	return e
}

// account is one Apple account (a customer) of the app.
type account struct {
	index int
	env   *envWorld
	// token is the appAccountToken the app set on the customer's in-app
	// purchases: what Apple knows; "" for ~30% of accounts (customers
	// from before the app set tokens). companyToken is the customer's
	// token in the company's own records (/sim/ids): token when set, else
	// one Apple has not been told yet (see Set App Account Token).
	token        string
	companyToken string
	appTxID      string
	storefront   storefront
	subs         []*subscription
	// bySeq holds every transaction of the account in ascending
	// modification sequence: the order of Get Transaction History.
	bySeq []*transaction
}

// ID names the account in Truth and control output.
func (a *account) ID() string { return fmt.Sprintf("acct-%07d", a.index) }

// subscription is one subscription chain (one originalTransactionId).
type subscription struct {
	acct      *account
	otid      string
	group     *group
	ownership string // PURCHASED, FAMILY_SHARED
	txs       []*transaction

	// token, when tokenSet, replaces the account's token as Apple's
	// appAccountToken of this subscription (Set App Account Token).
	token    string
	tokenSet bool

	product          *product // current product
	autoRenewProduct *product
	autoRenew        bool
	inRetry          bool      // in the billing retry period
	graceExpires     time.Time // zero: no grace period
	retryEnd         time.Time // billing retry gives up here
	recoverAt        time.Time // zero: billing will not recover
	expirationIntent int
	recentStart      time.Time
	// refundRequested: a refund request awaits Apple's decision.
	refundRequested bool
	// priceInc is a price increase for the next renewal; renewalOffer an
	// offer redeemed for it. Each applies only while its product is the
	// auto-renew product (pendingPriceIncrease, renewalOfferOf).
	priceInc     *priceIncrease
	renewalOffer *offer
	// extensions are the instants of the renewal-date extensions applied
	// (Apple allows two in 365 days).
	extensions []time.Time
	// renewedBeforeRevoke is autoRenew as it was when the latest
	// transaction was refunded: a reversed refund restores it.
	renewedBeforeRevoke bool

	gen     uint64 // lifecycle generation; stale events carry an older one
	version uint64 // bumped with any change to renewal info
	notes   []string

	cache atomic.Pointer[signedCache]
}

// transaction is one purchase or renewal.
type transaction struct {
	id        string
	seq       uint64
	sub       *subscription
	product   *product
	purchase  time.Time
	expires   time.Time
	webOrder  string
	reason    string // PURCHASE, RENEWAL
	offerType int
	offerID   string
	offerDisc string
	offerPer  string
	price     int64

	revokedAt  time.Time
	revReason  int
	revType    string
	revPercent int64
	upgraded   bool

	modAt time.Time // population only: when it last changed

	cache atomic.Pointer[signedCache]
}

// signedCache is a JWS signed for one version of an item at one simulated
// instant; the signed bytes only change when either does.
type signedCache struct {
	version uint64
	at      int64
	jws     string
}

func newWorld(seed int64, start time.Time, bundleID string, appAppleID int64, ca *CA) *world {
	w := &world{
		bundleID:   bundleID,
		appAppleID: appAppleID,
		ca:         ca,
		cat:        newCatalog(),
		seed:       seed,
		rng:        rand.New(rand.NewPCG(uint64(seed), 0x5157_6f72_6c64)),
		xrng:       rand.New(rand.NewPCG(uint64(seed), 0x5157_6c61_7465)),
		envs:       [2]*envWorld{newEnvWorld(appstore.Production), newEnvWorld(appstore.Sandbox)},

		extendRequests: map[string]appstore.ExtendRenewalDateResponse{},
		massExtensions: map[string]*massExtension{},
	}
	w.clock.set(start)
	return w
}

// env returns the environment's indexes.
func (w *world) env(e appstore.Environment) *envWorld {
	if e == appstore.Sandbox {
		return w.envs[1]
	}
	return w.envs[0]
}

func (w *world) now() time.Time { return w.clock.now() }

func (w *world) nextSeq() uint64 {
	w.seq++
	return w.seq
}

// uuid draws a version-4 UUID from the world's generator, so UUIDs are
// reproducible from the seed.
func uuidFrom(r *rand.Rand) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], r.Uint64())
	binary.BigEndian.PutUint64(b[8:], r.Uint64())
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// newAccount registers a customer, drawing from r.
func (w *world) newAccount(r *rand.Rand, env appstore.Environment, withToken bool) *account {
	a := &account{index: len(w.accounts), env: w.env(env)}
	a.storefront = storefronts[r.IntN(len(storefronts))]
	if withToken {
		a.token = uuidFrom(r)
	}
	a.companyToken = a.token
	if a.companyToken == "" {
		a.companyToken = companyTokenOf(w.seed, a.index)
	}
	a.appTxID = strconv.FormatUint(appTxBase+uint64(a.index)+1, 10)
	if env == appstore.Sandbox {
		a.appTxID = strconv.FormatUint(appTxBase+500_000_000_000_000+uint64(a.index)+1, 10)
	}
	a.env.acctByAppTx[a.appTxID] = a
	w.accounts = append(w.accounts, a)
	return a
}

// newSubscription opens a subscription chain; its first transaction must
// follow through newTx.
func (w *world) newSubscription(a *account, p *product, ownership string) *subscription {
	s := &subscription{acct: a, group: p.Group, ownership: ownership, product: p, autoRenewProduct: p, autoRenew: true}
	a.subs = append(a.subs, s)
	w.subs = append(w.subs, s)
	return s
}

// newTx appends a transaction to s. The first one becomes the
// originalTransactionId.
func (w *world) newTx(s *subscription, p *product, purchase, expires time.Time, reason string) *transaction {
	e := s.acct.env
	e.nextTx++
	e.nextWeb++
	t := &transaction{
		id:       strconv.FormatUint(e.nextTx, 10),
		sub:      s,
		product:  p,
		purchase: purchase,
		expires:  expires,
		webOrder: strconv.FormatUint(e.nextWeb, 10),
		reason:   reason,
		price:    s.acct.storefront.localPrice(p.Price),
		modAt:    purchase,
	}
	if len(s.txs) == 0 {
		s.otid = t.id
		e.subByOTID[s.otid] = s
		s.recentStart = purchase
	}
	s.txs = append(s.txs, t)
	s.product = p
	e.txByID[t.id] = t
	if !w.populating {
		t.seq = w.nextSeq()
		s.acct.bySeq = append(s.acct.bySeq, t)
		w.touchSub(s)
	}
	return t
}

// touchTx records a change to t: a new modification sequence number, which
// moves it to the end of its account's history order.
func (w *world) touchTx(t *transaction) {
	if w.populating {
		return
	}
	t.seq = w.nextSeq()
	a := t.sub.acct
	for i, x := range a.bySeq {
		if x == t {
			copy(a.bySeq[i:], a.bySeq[i+1:])
			a.bySeq[len(a.bySeq)-1] = t
			break
		}
	}
	w.touchSub(t.sub)
}

// touchSub records a change to s's renewal info.
func (w *world) touchSub(s *subscription) {
	if !w.populating {
		s.version = w.nextSeq()
	}
}

// latest is the transaction with the latest purchaseDate; transactions are
// appended in purchase order.
func (s *subscription) latest() *transaction { return s.txs[len(s.txs)-1] }

// status is Apple's subscription status (1–5) at now.
func (s *subscription) status(now time.Time) int {
	l := s.latest()
	switch {
	case !l.revokedAt.IsZero():
		return appstore.StatusRevoked
	case now.Before(l.expires):
		return appstore.StatusActive
	case s.inRetry && now.Before(s.graceExpires):
		return appstore.StatusGracePeriod
	case s.inRetry:
		return appstore.StatusBillingRetry
	}
	return appstore.StatusExpired
}

// statusNames are the ledger's names of Apple's status values.
var statusNames = map[int]string{
	appstore.StatusActive:       "active",
	appstore.StatusExpired:      "expired",
	appstore.StatusBillingRetry: "billing_retry",
	appstore.StatusGracePeriod:  "grace_period",
	appstore.StatusRevoked:      "revoked",
}

// txPayload is t as signedTransactionInfo says it, signed at signedAt.
func (w *world) txPayload(t *transaction, signedAt time.Time) appstore.TransactionPayload {
	s := t.sub
	a := s.acct
	p := appstore.TransactionPayload{
		TransactionID:               t.id,
		OriginalTransactionID:       s.otid,
		WebOrderLineItemID:          t.webOrder,
		BundleID:                    w.bundleID,
		ProductID:                   t.product.ID,
		SubscriptionGroupIdentifier: s.group.ID,
		PurchaseDate:                appstore.MillisOf(t.purchase),
		OriginalPurchaseDate:        appstore.MillisOf(s.txs[0].purchase),
		ExpiresDate:                 appstore.MillisOf(t.expires),
		Quantity:                    1,
		Type:                        "Auto-Renewable Subscription",
		InAppOwnershipType:          s.ownership,
		SignedDate:                  appstore.MillisOf(signedAt),
		IsUpgraded:                  t.upgraded,
		Environment:                 a.env.env,
		Storefront:                  a.storefront.Code,
		StorefrontID:                a.storefront.ID,
		TransactionReason:           t.reason,
		Price:                       appstore.Int(t.price),
		Currency:                    a.storefront.Currency,
		AppTransactionID:            a.appTxID,
	}
	p.AppAccountToken = s.appleToken()
	if t.offerType != 0 {
		p.OfferType = appstore.Int(t.offerType)
		p.OfferIdentifier = t.offerID
		p.OfferDiscountType = t.offerDisc
		p.OfferPeriod = t.offerPer
	}
	if !t.revokedAt.IsZero() {
		p.RevocationDate = appstore.MillisOf(t.revokedAt)
		p.RevocationType = t.revType
		p.RevocationPercentage = appstore.Int(t.revPercent)
		if t.revType != "FAMILY_REVOKE" {
			r := appstore.Int(t.revReason)
			p.RevocationReason = &r
		}
	}
	return p
}

// renewalPayload is s's signedRenewalInfo at signedAt.
func (w *world) renewalPayload(s *subscription, signedAt time.Time) appstore.RenewalInfoPayload {
	a := s.acct
	l := s.latest()
	p := appstore.RenewalInfoPayload{
		OriginalTransactionID:       s.otid,
		AutoRenewProductID:          s.autoRenewProduct.ID,
		ProductID:                   s.product.ID,
		IsInBillingRetryPeriod:      s.inRetry,
		SignedDate:                  appstore.MillisOf(signedAt),
		Environment:                 a.env.env,
		RecentSubscriptionStartDate: appstore.MillisOf(s.recentStart),
		RenewalDate:                 appstore.MillisOf(l.expires),
		RenewalPrice:                appstore.Int(a.storefront.localPrice(s.autoRenewProduct.Price)),
		Currency:                    a.storefront.Currency,
		AppTransactionID:            a.appTxID,
	}
	if s.autoRenew {
		p.AutoRenewStatus = 1
	}
	p.AppAccountToken = s.appleToken()
	if st := s.status(signedAt); st == appstore.StatusExpired || s.inRetry {
		p.ExpirationIntent = appstore.Int(s.expirationIntent)
	}
	if s.inRetry && !s.graceExpires.IsZero() {
		p.GracePeriodExpiresDate = appstore.MillisOf(s.graceExpires)
	}
	if pi := s.pendingPriceIncrease(); pi != nil {
		st := appstore.Int(pi.status)
		p.PriceIncreaseStatus = &st
		p.RenewalPrice = appstore.Int(pi.price)
	}
	if o := s.renewalOfferOf(); o != nil {
		p.OfferType = appstore.Int(o.typ)
		p.OfferIdentifier = o.id
		p.OfferDiscountType = o.disc
		p.OfferPeriod = o.period
		p.RenewalPrice = appstore.Int(o.price)
	}
	return p
}

// signedTx returns t's JWS signed at now, from cache when neither changed.
// Callers hold at least the read lock.
func (w *world) signedTx(t *transaction, now time.Time) (string, error) {
	at := now.UnixMilli()
	if c := t.cache.Load(); c != nil && c.version == t.seq && c.at == at {
		return c.jws, nil
	}
	jws, err := w.ca.Sign(w.txPayload(t, now))
	if err != nil {
		return "", err
	}
	t.cache.Store(&signedCache{version: t.seq, at: at, jws: jws})
	return jws, nil
}

// signedRenewal returns s's renewal-info JWS signed at now, from cache when
// neither changed. Callers hold at least the read lock.
func (w *world) signedRenewal(s *subscription, now time.Time) (string, error) {
	at := now.UnixMilli()
	if c := s.cache.Load(); c != nil && c.version == s.version && c.at == at {
		return c.jws, nil
	}
	jws, err := w.ca.Sign(w.renewalPayload(s, now))
	if err != nil {
		return "", err
	}
	s.cache.Store(&signedCache{version: s.version, at: at, jws: jws})
	return jws, nil
}

// lookup finds the account of any transaction id, original transaction id
// or app transaction id in env.
func (w *world) lookup(env appstore.Environment, id string) (*account, *transaction) {
	e := w.env(env)
	if t, ok := e.txByID[id]; ok {
		return t.sub.acct, t
	}
	if a, ok := e.acctByAppTx[id]; ok {
		return a, nil
	}
	return nil, nil
}
