package budget

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/time/rate"

	"github.com/storesync/storesync/appstore"
)

// PostgresOptions configures a Postgres budget.
type PostgresOptions struct {
	// Pool is the database every storesync process of the app shares
	// (migrated: the budget lives in apple_budget).
	Pool *pgxpool.Pool
	// App names whose limits these are — the bundle id, since Apple limits
	// each app separately. Processes of one app must use the same name.
	App string
	// Limits are the requests per second this app may send to each
	// endpoint in each environment, for all processes together (e.g.
	// config.EffectiveRateLimits). Waiting for an endpoint without a
	// positive limit is an error, never unlimited.
	Limits map[appstore.Environment]map[appstore.Endpoint]float64
	// LeaseSize is the most tokens one process takes from the shared bucket
	// at once, and the most it sends at once to catch up after its
	// dispatcher was held up. Zero means a tenth of a second's worth (at
	// least 1): small enough that leased tokens are spent within ~100 ms,
	// so bursts stay far below what Apple tolerates (about a second's
	// worth; the simulator's default Burst is one second too).
	LeaseSize int
	// Burst is how much unused budget may pile up in the shared bucket, as
	// time's worth of tokens; zero means 250 ms (and never less than
	// LeaseSize tokens). Apple's own buckets allow about a second, so a
	// quarter leaves room for network jitter.
	Burst time.Duration
	// Logger receives database errors of the budget (rate-limited); nil
	// means slog.Default().
	Logger *slog.Logger
	// ObserveWait, when set, is called after each granted Wait with its
	// endpoint and how long the caller waited (e.g. to feed a histogram);
	// a Wait that ends with its context is not observed. It runs on the
	// caller's goroutine, so it must be quick and safe for concurrent use.
	ObserveWait func(endpoint appstore.Endpoint, waited time.Duration)
}

func (o *PostgresOptions) validate() error {
	var errs []error
	if o.Pool == nil {
		errs = append(errs, errors.New("budget: PostgresOptions.Pool is nil: pass the shared database pool"))
	}
	if o.App == "" {
		errs = append(errs, errors.New("budget: PostgresOptions.App is empty: use the app's bundle id (APPSTORE_BUNDLE_ID)"))
	}
	if len(o.Limits) == 0 {
		errs = append(errs, errors.New("budget: PostgresOptions.Limits is empty: give the limits of each environment, e.g. config.EffectiveRateLimits"))
	}
	for env, m := range o.Limits {
		for ep, l := range m {
			if math.IsNaN(l) || l < 0 || math.IsInf(l, 0) {
				errs = append(errs, fmt.Errorf("budget: PostgresOptions.Limits[%s][%s] = %v: use a positive number of requests per second (or leave it out)", env, ep, l))
			}
		}
	}
	if o.LeaseSize < 0 {
		errs = append(errs, fmt.Errorf("budget: PostgresOptions.LeaseSize = %d: use 0 for the default or a positive number", o.LeaseSize))
	}
	if o.Burst < 0 {
		errs = append(errs, fmt.Errorf("budget: PostgresOptions.Burst = %s: use 0 for the default or a positive duration", o.Burst))
	}
	return errors.Join(errs...)
}

// Postgres is the appstore.Budget shared by every storesync process
// of one app: one token bucket per (app, environment, endpoint) in
// Postgres. Each process leases small batches of tokens from it only for
// callers already waiting, and hands them out through its own
// x/time/rate limiter, so N processes on one database together never send
// more than the limit (plus one bucket's Burst), and each process's calls are
// evenly spaced. A process whose dispatcher was held up while it had leased
// tokens in hand (CPU contention, a slow lease round trip) catches up: it
// sends up to one lease of them at once rather than losing that time for
// good, which would leave a lone process below the limit on a busy host.
//
// Interactive callers (appstore.WithPriority(ctx, PriorityInteractive)) of
// a process are served before its bulk callers, whatever order they came in.
// Throttle (Apple's 429) is stored in the bucket, so every process stops
// sending to that endpoint until the Retry-After.
//
// Every grant and 429 is counted per second in apple_budget_usage (an hour
// is kept) for Usage and `storesync status`.
//
// When the database is unreachable, waiting callers keep waiting (the
// budget never lets requests through unaccounted) until it answers or their
// context ends.
type Postgres struct {
	pool      *pgxpool.Pool
	app       string
	limits    map[appstore.Environment]map[appstore.Endpoint]float64
	leaseSize int
	burst     time.Duration
	logger    *slog.Logger
	onWait    func(appstore.Endpoint, time.Duration)

	mu      sync.Mutex
	buckets map[budgetKey]*budgetBucket

	lastPrune  atomic.Int64 // UNIX seconds
	lastLogged atomic.Int64 // UNIX seconds of the last logged database error
}

// Postgres is the budget every storesync process gives its App Store client.
var _ appstore.Budget = (*Postgres)(nil)

type budgetKey struct {
	env appstore.Environment
	ep  appstore.Endpoint
}

// budgetBucket is this process's side of one shared bucket; fields below
// kick are guarded by Postgres.mu.
type budgetBucket struct {
	key      budgetKey
	rate     float64
	capacity float64
	lease    int
	limiter  *rate.Limiter // smooths this process's calls; burst: one lease (see catchUpFrom)
	kick     chan struct{} // wakes the dispatcher (Throttle); buffered 1

	waiters [2][]*budgetWaiter // [0] interactive, [1] bulk; FIFO each
	running bool               // a dispatcher goroutine serves the waiters
	stash   int                // leased, not yet handed out
	stashAt time.Time
	until   time.Time // throttled until (local copy of the shared one)
}

type budgetWaiter struct {
	ready   chan struct{}
	granted bool
}

// stashTTL bounds how long a leased token may wait for a caller (one whose
// context ended took it and left): older ones are dropped, not spent, so a
// lease never turns into a late burst.
const stashTTL = time.Second

// NewPostgres validates opts and returns the budget; every problem of opts
// is reported at once, naming its field. It does not touch the database
// until the first Wait or Throttle, so an unreachable database is no error
// here.
func NewPostgres(opts PostgresOptions) (*Postgres, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	limits := make(map[appstore.Environment]map[appstore.Endpoint]float64, len(opts.Limits))
	for env, m := range opts.Limits {
		limits[env] = maps.Clone(m)
	}
	b := &Postgres{
		pool:      opts.Pool,
		app:       opts.App,
		limits:    limits,
		leaseSize: opts.LeaseSize,
		burst:     opts.Burst,
		logger:    opts.Logger,
		onWait:    opts.ObserveWait,
		buckets:   map[budgetKey]*budgetBucket{},
	}
	if b.burst == 0 {
		b.burst = 250 * time.Millisecond
	}
	if b.logger == nil {
		b.logger = slog.Default()
	}
	return b, nil
}

// Limit returns the requests per second allowed to endpoint in env (for
// all processes together); 0 when none is configured.
func (b *Postgres) Limit(env appstore.Environment, endpoint appstore.Endpoint) float64 {
	return b.limits[env][endpoint]
}

// bucketLocked returns the local state of env/ep, creating it.
func (b *Postgres) bucketLocked(env appstore.Environment, ep appstore.Endpoint) (*budgetBucket, error) {
	k := budgetKey{env, ep}
	if bk, ok := b.buckets[k]; ok {
		return bk, nil
	}
	l := b.limits[env][ep]
	if !(l > 0) {
		return nil, fmt.Errorf("budget: the rate budget has no limit for endpoint %q in %s: add it to PostgresOptions.Limits", ep, env)
	}
	lease := b.leaseSize
	if lease == 0 {
		lease = max(1, int(math.Ceil(l/10)))
	}
	capacity := max(float64(lease), l*b.burst.Seconds(), 1)
	bk := &budgetBucket{
		key:      k,
		rate:     l,
		capacity: capacity,
		lease:    lease,
		// The burst lets the dispatcher catch up a stall of up to one lease
		// (the tokens are leased already, so the shared limit still holds);
		// with burst 1, every delay of the dispatcher goroutine past one
		// spacing was lost for good. dispatch keeps it from catching up
		// time it spent without tokens.
		limiter: rate.NewLimiter(rate.Limit(l), lease),
		kick:    make(chan struct{}, 1),
	}
	b.buckets[k] = bk
	return bk, nil
}

// Wait blocks until one request to endpoint in env may be sent. It returns
// ctx's error if ctx ends first (no token is spent then), or an error when
// endpoint has no limit in env.
func (b *Postgres) Wait(ctx context.Context, env appstore.Environment, endpoint appstore.Endpoint) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	start := time.Now()
	lane := 1
	if appstore.PriorityFrom(ctx) >= appstore.PriorityInteractive {
		lane = 0
	}
	w := &budgetWaiter{ready: make(chan struct{})}
	b.mu.Lock()
	bk, err := b.bucketLocked(env, endpoint)
	if err != nil {
		b.mu.Unlock()
		return err
	}
	bk.waiters[lane] = append(bk.waiters[lane], w)
	if !bk.running {
		bk.running = true
		go b.dispatch(bk)
	}
	b.mu.Unlock()

	select {
	case <-w.ready:
		b.observeWait(endpoint, start)
		return nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if w.granted {
		// Handed a token as ctx ended: give it to the next caller.
		bk.stash++
		return ctx.Err()
	}
	q := bk.waiters[lane]
	for i, x := range q {
		if x == w {
			bk.waiters[lane] = append(q[:i:i], q[i+1:]...)
			break
		}
	}
	return ctx.Err()
}

func (b *Postgres) observeWait(ep appstore.Endpoint, start time.Time) {
	if b.onWait != nil {
		b.onWait(ep, time.Since(start))
	}
}

// dispatch serves the waiters of bk until none is left: it leases tokens
// from the shared bucket (never more than there are waiters) and hands them
// out, interactive waiters first, spaced by the local limiter.
func (b *Postgres) dispatch(bk *budgetBucket) {
	errDelay := 100 * time.Millisecond
	for {
		b.mu.Lock()
		n := len(bk.waiters[0]) + len(bk.waiters[1])
		if n == 0 {
			bk.running = false
			b.mu.Unlock()
			return
		}
		now := time.Now()
		if now.Before(bk.until) {
			d := bk.until.Sub(now)
			b.mu.Unlock()
			b.sleep(d, bk.kick)
			continue
		}
		if bk.stash > 0 && now.Sub(bk.stashAt) > stashTTL {
			bk.stash = 0
		}
		stash := bk.stash
		want := min(n, bk.lease) - stash
		b.mu.Unlock()
		if stash == 0 {
			bk.catchUpFrom(now)
		}

		// Lease the next batch while the last leased token is being handed
		// out, so the database round trip overlaps the local spacing
		// instead of adding to it.
		if want > 0 && stash <= 1 {
			granted, wait, err := b.lease(bk, want)
			switch {
			case err != nil:
				b.logError("leasing rate budget", bk.key, err)
				if stash == 0 {
					b.sleep(errDelay, bk.kick)
					errDelay = min(2*errDelay, 2*time.Second)
					continue
				}
			case granted > 0:
				errDelay = 100 * time.Millisecond
				b.mu.Lock()
				bk.stash += granted
				bk.stashAt = time.Now()
				b.mu.Unlock()
			case stash == 0:
				// Jitter desynchronises processes polling the same bucket.
				d := min(wait, 250*time.Millisecond)
				d += time.Duration(rand.Int64N(int64(d)/5 + 1))
				b.sleep(d, bk.kick)
				continue
			}
		}

		_ = bk.limiter.Wait(context.Background()) // rate > 0, burst ≥ 1: never fails
		b.mu.Lock()
		if time.Now().Before(bk.until) || bk.stash == 0 {
			b.mu.Unlock() // a 429 arrived meanwhile and cleared the stash
			continue
		}
		if w := bk.popLocked(); w != nil {
			w.granted = true
			close(w.ready)
			bk.stash--
		}
		b.mu.Unlock()
	}
}

// catchUpFrom starts the limiter's catch-up at now: the dispatcher holds
// no leased token, so whatever time the limiter saved up (idle, waiting for
// the shared bucket, a 429's back-off) was no stall of its own. The shared
// bucket refilled meanwhile and will lease those tokens; letting the limiter
// also burst them out would only bunch calls, right after a 429 too. One
// token is kept, so the first call after a pause goes at once, as with
// burst 1. Only the dispatcher calls it.
func (bk *budgetBucket) catchUpFrom(now time.Time) {
	if saved := int(bk.limiter.TokensAt(now)); saved > 1 {
		bk.limiter.AllowN(now, saved-1)
	}
}

// popLocked removes the next waiter, interactive ones first.
func (bk *budgetBucket) popLocked() *budgetWaiter {
	for lane := range bk.waiters {
		if q := bk.waiters[lane]; len(q) > 0 {
			w := q[0]
			q[0] = nil
			bk.waiters[lane] = q[1:]
			return w
		}
	}
	return nil
}

// sleep waits for d or a kick.
func (b *Postgres) sleep(d time.Duration, kick <-chan struct{}) {
	t := time.NewTimer(max(d, time.Millisecond))
	defer t.Stop()
	select {
	case <-t.C:
	case <-kick:
	}
}

// lease takes up to want tokens from the shared bucket. wait is how long
// until the bucket holds what was wanted (or a 429's Retry-After passes).
func (b *Postgres) lease(bk *budgetBucket, want int) (granted int, wait time.Duration, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b.maybePrune(ctx)
	var waitSeconds float64
	err = b.pool.QueryRow(ctx, `SELECT granted, wait_seconds FROM storesync_budget_lease($1, $2, $3, $4, $5, $6)`,
		b.app, string(bk.key.env), string(bk.key.ep), bk.rate, bk.capacity, want).Scan(&granted, &waitSeconds)
	if err != nil {
		return 0, 0, err
	}
	if granted == 0 && want > 1 {
		// Waiting for a whole lease rather than the next token keeps N
		// processes from polling the bucket once per token each.
		waitSeconds += float64(min(want, int(bk.capacity))-1) / bk.rate
	}
	return granted, time.Duration(waitSeconds * float64(time.Second)), nil
}

// usageRetention is how long per-second usage is kept.
const usageRetention = 2 * time.Hour

// maybePrune deletes old usage rows, at most once a minute per process.
func (b *Postgres) maybePrune(ctx context.Context) {
	now := time.Now().Unix()
	last := b.lastPrune.Load()
	if now-last < 60 || !b.lastPrune.CompareAndSwap(last, now) {
		return
	}
	if _, err := b.pool.Exec(ctx, `DELETE FROM apple_budget_usage WHERE second < $1`,
		now-int64(usageRetention/time.Second)); err != nil {
		b.logError("pruning rate budget usage", budgetKey{}, err)
	}
}

// Throttle records Apple's 429 for endpoint in env: this process stops
// handing out tokens for it at once, and the shared bucket is closed until
// until, so every other process stops at its next lease. An until earlier
// than one already recorded changes nothing. A database error is logged:
// the local back-off still applies.
func (b *Postgres) Throttle(env appstore.Environment, endpoint appstore.Endpoint, until time.Time) {
	b.mu.Lock()
	bk, err := b.bucketLocked(env, endpoint)
	if err != nil {
		b.mu.Unlock()
		return // no limit: Wait refuses this endpoint anyway
	}
	if until.After(bk.until) {
		bk.until = until
		bk.stash = 0
		select {
		case bk.kick <- struct{}{}:
		default:
		}
	}
	b.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	batch := &pgx.Batch{}
	batch.Queue(`INSERT INTO apple_budget (app, environment, endpoint, rate, capacity, tokens, refilled_at, throttled_until)
		VALUES ($1, $2, $3, $4, $5, 0, $6, $6)
		ON CONFLICT (app, environment, endpoint) DO UPDATE SET
			throttled_until = greatest(apple_budget.throttled_until, excluded.throttled_until),
			tokens = 0, refilled_at = greatest(apple_budget.refilled_at, excluded.refilled_at)`,
		b.app, string(env), string(endpoint), bk.rate, bk.capacity, until)
	batch.Queue(`INSERT INTO apple_budget_usage (app, environment, endpoint, second, throttled)
		VALUES ($1, $2, $3, floor(extract(epoch FROM clock_timestamp()))::bigint, 1)
		ON CONFLICT (app, environment, endpoint, second)
		DO UPDATE SET throttled = apple_budget_usage.throttled + 1`,
		b.app, string(env), string(endpoint))
	if err := b.pool.SendBatch(ctx, batch).Close(); err != nil {
		b.logError("recording a 429 in the rate budget", bk.key, err)
	}
}

// logError logs budget database errors at most once every 10 s.
func (b *Postgres) logError(what string, k budgetKey, err error) {
	now := time.Now().Unix()
	last := b.lastLogged.Load()
	if now-last < 10 || !b.lastLogged.CompareAndSwap(last, now) {
		return
	}
	b.logger.Warn("storesync: "+what, "environment", string(k.env), "endpoint", string(k.ep), "error", err)
}
