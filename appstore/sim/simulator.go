package sim

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/storesync/storesync/appstore"
)

// Simulator is a running simulated App Store for one app. All methods are
// safe for concurrent use.
type Simulator struct {
	opts    Options
	ca      *CA
	auth    *authenticator
	world   *world
	limiter *rateLimiter
	faults  *faultInjector
	stats   *statsCollector
	hooks   *deliverer
	handler http.Handler

	tokenKey  []byte        // MAC key of paging tokens, derived from the seed
	closing   chan struct{} // closed by Close: releases hanging requests
	advanceMu sync.Mutex    // one Advance at a time

	mu      sync.Mutex
	server  *http.Server
	baseURL string
	files   Files
	closed  bool
}

// New generates the world described by opts. It fails only on invalid
// options (the message names the field) or a key that cannot be parsed.
func New(opts Options) (*Simulator, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	ca := o.CA
	if ca == nil {
		if ca, err = NewCA(); err != nil {
			return nil, fmt.Errorf("sim: generating CA: %w", err)
		}
	}
	auth, err := newAuthenticator(o.PrivateKeyPEM, o.KeyID, o.IssuerID, o.BundleID)
	if err != nil {
		return nil, err
	}
	o.PrivateKeyPEM = nil // kept in auth only
	o.CA = ca
	var seedBytes [8]byte
	binary.BigEndian.PutUint64(seedBytes[:], uint64(o.Seed))
	key := sha256.Sum256(append([]byte("sim paging tokens "), seedBytes[:]...))
	s := &Simulator{
		opts:     o,
		ca:       ca,
		auth:     auth,
		world:    newWorld(o.Seed, o.Start, o.BundleID, o.AppAppleID, ca),
		limiter:  newRateLimiter(o),
		faults:   newFaultInjector(o.Seed, o.Faults),
		stats:    newStatsCollector(),
		tokenKey: key[:],
		closing:  make(chan struct{}),
	}
	s.world.consumptionRequests = o.ConsumptionRequests
	s.world.populate(o.Subscribers)
	s.hooks = newDeliverer(s.world, o.Seed, o.WebhookURL, o.DropShare, o.WebhookWorkers, o.WebhookTimeout, o.Logf)
	s.world.onNotify = s.hooks.enqueue
	s.handler = s.routes()
	return s, nil
}

// Handler serves the production API under "/", the sandbox API under
// "/sandbox" and the control endpoints under "/sim/".
func (s *Simulator) Handler() http.Handler { return s.handler }

// Start serves Handler on addr (e.g. "127.0.0.1:0") and returns the base
// URL ("http://127.0.0.1:PORT"). Stop it with Close.
func (s *Simulator) Start(addr string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", errors.New("sim: Start after Close")
	}
	if s.server != nil {
		return "", errors.New("sim: already started at " + s.baseURL)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("sim: listen on %s: %w", addr, err)
	}
	s.server = &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.server.Serve(ln) }()
	host := ln.Addr().String()
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		host = net.JoinHostPort("127.0.0.1", fmt.Sprint(tcp.Port))
	}
	s.baseURL = "http://" + host
	return s.baseURL, nil
}

// Close stops the server (if started), releases hanging requests and stops
// webhook delivery; queued deliveries are abandoned (call Flush first to
// wait for them). Close is idempotent.
func (s *Simulator) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	srv := s.server
	s.mu.Unlock()
	var err error
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = srv.Shutdown(ctx)
		cancel()
	}
	s.hooks.close()
	return err
}

// BaseURL is the production base URL ("" before Start).
func (s *Simulator) BaseURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.baseURL
}

// SandboxURL is the sandbox base URL: BaseURL()+"/sandbox".
func (s *Simulator) SandboxURL() string {
	if b := s.BaseURL(); b != "" {
		return b + "/sandbox"
	}
	return ""
}

// CA returns the certificate chain that signs every JWS.
func (s *Simulator) CA() *CA { return s.ca }

// RootPEM returns the root certificate to trust, PEM-encoded.
func (s *Simulator) RootPEM() []byte { return s.ca.RootPEM() }

// RootDER returns the root certificate to trust, DER-encoded.
func (s *Simulator) RootDER() []byte { return s.ca.RootDER() }

// KeyID is the API key id request JWTs must name (kid).
func (s *Simulator) KeyID() string { return s.opts.KeyID }

// IssuerID is the issuer id request JWTs must carry (iss).
func (s *Simulator) IssuerID() string { return s.opts.IssuerID }

// BundleID is the app's bundle id (bid, and bundleId in payloads).
func (s *Simulator) BundleID() string { return s.opts.BundleID }

// AppAppleID is the app's Apple id (appAppleId in payloads).
func (s *Simulator) AppAppleID() int64 { return s.opts.AppAppleID }

// PrivateKeyPEM returns the API private key (PKCS#8 PEM, like a .p8). It is
// a secret: never log it.
func (s *Simulator) PrivateKeyPEM() []byte { return append([]byte(nil), s.auth.keyPEM...) }

// Token mints a valid bearer JWT for the simulator's API key, valid for 30
// minutes of wall time.
func (s *Simulator) Token() (string, error) { return s.auth.token(time.Now()) }

// Now is the simulated clock.
func (s *Simulator) Now() time.Time { return s.world.now() }

// AdvanceReport summarises one Advance.
type AdvanceReport struct {
	From, To      time.Time
	Events        int // events applied (stale ones included)
	Notifications int // notifications created
}

// Advance moves the simulated clock forward by d (negative counts as 0),
// applying every event due on the way in time order, each at its own
// instant. Requests served meanwhile see consistent intermediate states.
// The same seed and the same sequence of Advance/Mutate calls give the same
// world, however Advance calls are split.
func (s *Simulator) Advance(d time.Duration) AdvanceReport {
	s.advanceMu.Lock()
	defer s.advanceMu.Unlock()
	w := s.world
	from := w.now()
	target := from.Add(max(d, 0))
	w.mu.RLock()
	before := w.noteCount()
	w.mu.RUnlock()
	rep := AdvanceReport{From: from, To: target}
	for w.step(target) {
		rep.Events++
	}
	w.mu.RLock()
	rep.Notifications = w.noteCount() - before
	w.mu.RUnlock()
	return rep
}

func (w *world) noteCount() int { return len(w.envs[0].log) + len(w.envs[1].log) }

// Mutate applies a silent change (no notification) to a subscription; see
// MutationKind. It fails when the subscription is unknown, the change does
// not apply (e.g. refunding a revoked subscription), or the kind exists only
// with its notification (MutateConsumptionRequest, MutateRefundDeclined).
func (s *Simulator) Mutate(originalTransactionID string, kind MutationKind) error {
	return s.world.mutate(originalTransactionID, kind, false)
}

// MutateAndNotify applies the change Mutate would and sends the
// notification Apple sends about it (named in each MutationKind's
// documentation), signed now, to the webhook and notification history,
// so a test can produce any notification type on demand. It fails where
// Mutate fails, except that every kind is allowed.
func (s *Simulator) MutateAndNotify(originalTransactionID string, kind MutationKind) error {
	return s.world.mutate(originalTransactionID, kind, true)
}

// SetFaults replaces the injected faults. A RateLimitStorm starts now.
func (s *Simulator) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return fmt.Errorf("sim: SetFaults: %w", err)
	}
	s.faults.set(f, time.Now())
	return nil
}

// Faults returns the faults in force.
func (s *Simulator) Faults() Faults { return s.faults.get() }

// SetRateLimit changes the limit of one endpoint in one environment, in
// requests per second; 0 removes the limit. The bucket's burst follows
// Options.Burst.
func (s *Simulator) SetRateLimit(env appstore.Environment, ep appstore.Endpoint, perSecond float64) error {
	b := s.limiter.buckets[limitKey{env, ep}]
	if b == nil {
		return fmt.Errorf("sim: SetRateLimit: unknown environment %q or endpoint %q", env, ep)
	}
	if !(perSecond >= 0) {
		return fmt.Errorf("sim: SetRateLimit: %v requests/second: must be >= 0 (0 = unlimited)", perSecond)
	}
	b.set(perSecond, s.limiter.burst)
	return nil
}

// SetWebhookURL changes where notifications go from now on; "" stops
// delivery (notifications are still kept for notification history).
func (s *Simulator) SetWebhookURL(url string) error {
	if url != "" {
		if err := validateWebhookURL(url); err != nil {
			return fmt.Errorf("sim: SetWebhookURL: %w", err)
		}
	}
	s.hooks.setURL(url)
	return nil
}

// SetDropShare changes the share of deliveries dropped from now on.
func (s *Simulator) SetDropShare(f float64) error {
	if !(f >= 0 && f <= 1) {
		return fmt.Errorf("sim: SetDropShare(%v): must be between 0 and 1", f)
	}
	s.hooks.setDropShare(f)
	return nil
}

// Flush waits until every notification queued for the webhook has had its
// delivery attempt, or ctx ends.
func (s *Simulator) Flush(ctx context.Context) error { return s.hooks.flush(ctx) }

// Stats returns a snapshot of request and webhook counters.
func (s *Simulator) Stats() Stats {
	return Stats{
		Endpoints: s.stats.snapshot(),
		Webhook: WebhookStats{
			Notifications: s.hooks.created.Load(),
			Delivered:     s.hooks.delivered.Load(),
			Failed:        s.hooks.failed.Load(),
			Dropped:       s.hooks.dropped.Load(),
		},
	}
}

// NotificationRecord is one notification as the simulator keeps it for
// notification history.
type NotificationRecord struct {
	NotificationUUID      string                     `json:"notificationUUID"`
	Environment           appstore.Environment       `json:"environment"`
	NotificationType      string                     `json:"notificationType"`
	Subtype               string                     `json:"subtype,omitempty"`
	SignedDate            time.Time                  `json:"signedDate"`
	OriginalTransactionID string                     `json:"originalTransactionId"`
	Status                int                        `json:"status"`
	SendAttempts          []appstore.SendAttemptItem `json:"sendAttempts"`
}

// Notifications lists every notification sent in env, oldest first (TEST
// notifications excluded).
func (s *Simulator) Notifications(env appstore.Environment) []NotificationRecord {
	w := s.world
	w.mu.RLock()
	log := w.env(env).log
	w.mu.RUnlock()
	out := make([]NotificationRecord, 0, len(log))
	for _, n := range log {
		attempts, _ := n.sendAttempts()
		out = append(out, NotificationRecord{
			NotificationUUID: n.uuid, Environment: n.env, NotificationType: n.typ, Subtype: n.subtype,
			SignedDate: n.signedDate, OriginalTransactionID: n.otid, Status: n.status, SendAttempts: attempts,
		})
	}
	return out
}
