package sim

import (
	"fmt"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/storesync/storesync/appstore"
)

// Default identities of the simulated app and API key.
const (
	DefaultKeyID       = "SIMKEY0001"
	DefaultIssuerID    = "57246542-96fe-1a63-e053-0824d011072a"
	DefaultBundleID    = "com.example.storesync"
	DefaultAppAppleID  = 1234567890
	DefaultSubscribers = 1000
)

// DefaultStart is where the simulated clock starts unless Options.Start is
// set: a fixed instant, so two runs with one seed see identical worlds.
var DefaultStart = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// MaxSubscribers bounds Options.Subscribers. The world is held in memory:
// about 4.5 KB per customer (100,000 customers: ~470 MB, ~5 s to generate).
const MaxSubscribers = 1_000_000

// Options configures a Simulator. The zero value is valid: 1000 customers,
// seed 0, Apple's rate limits, no webhook.
type Options struct {
	// Seed makes the world, its events and the fault decisions
	// reproducible: the same Seed and Subscribers give the same Truth.
	Seed int64
	// Subscribers is the number of customers (Apple accounts) generated at
	// start, about 2% of them sandbox-only. 0 means DefaultSubscribers.
	Subscribers int
	// Start is the simulated clock's initial instant; zero means
	// DefaultStart. Histories are generated backwards from it.
	Start time.Time

	// RateLimits overrides Apple's production limit (requests per second)
	// of an endpoint; missing endpoints keep Apple's (appstore's
	// DefaultRateLimits for Production). Keys: appstore.Endpoints and the
	// endpoints only the Client calls (extend, mass extend and its status,
	// app account token).
	RateLimits map[appstore.Endpoint]float64
	// SandboxRateLimits overrides the sandbox limit of an endpoint; missing
	// endpoints get 10% of the production limit, as at Apple.
	SandboxRateLimits map[appstore.Endpoint]float64
	// DisableRateLimits turns rate limiting off (benchmarks, bulk tests).
	DisableRateLimits bool
	// Burst is how much of a limit may be spent at once, expressed as time
	// worth of tokens: a bucket holds max(1, limit*Burst) requests. Zero
	// means one second.
	Burst time.Duration

	// WebhookURL receives every notification as Apple sends it (POST
	// {"signedPayload":…}), for both environments. Empty: notifications are
	// only kept for notification history, with no send attempts.
	WebhookURL string
	// DropShare (0–1) of deliveries is dropped: recorded as one failed send
	// attempt (NO_RESPONSE) and never retried, like the sandbox.
	DropShare float64
	// WebhookWorkers is the number of concurrent deliveries; 0 means 4.
	WebhookWorkers int
	// WebhookTimeout bounds one delivery; 0 means 10 s.
	WebhookTimeout time.Duration

	// PaginationTokenTTL is the wall-time lifetime of a notification-history
	// paginationToken; 0 means one hour. An expired token gives 4000017.
	PaginationTokenTTL time.Duration

	// KeyID, IssuerID and BundleID are what request JWTs must carry (kid,
	// iss, bid); AppAppleID appears in every response and notification.
	// Empty/zero means DefaultKeyID, DefaultIssuerID, DefaultBundleID,
	// DefaultAppAppleID.
	KeyID      string
	IssuerID   string
	BundleID   string
	AppAppleID int64
	// PrivateKeyPEM is the API key (PKCS#8 PEM, like Apple's .p8) whose
	// public half verifies request JWTs. Nil: a new key is generated.
	PrivateKeyPEM []byte
	// CA signs every JWS. Nil: a new chain is generated (NewCA).
	CA *CA

	// ConsumptionRequests makes the world send CONSUMPTION_REQUEST when a
	// customer asks for a refund of their own accord (Apple's decision,
	// REFUND or REFUND_DECLINED, comes either way).
	// MutateAndNotify(MutateConsumptionRequest) sends one regardless. Off
	// by default: a consumer that answers it by re-reading the
	// subscription from the API (as storesync does) cannot process it in a
	// test where the API is unreachable.
	ConsumptionRequests bool

	// Faults are the faults injected from the start; see SetFaults.
	Faults Faults
	// Logf, if set, receives one line per notable event (webhook failures).
	// Secrets never appear in it.
	Logf func(format string, args ...any)
}

var (
	keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9]{1,64}$`)
	uuidPattern  = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
)

// withDefaults returns a copy of o with every zero field defaulted, or an
// error naming the first invalid field and how to fix it.
func (o Options) withDefaults() (Options, error) {
	if o.Subscribers < 0 || o.Subscribers > MaxSubscribers {
		return o, fmt.Errorf("sim: Options.Subscribers = %d: must be between 0 (meaning %d) and %d",
			o.Subscribers, DefaultSubscribers, MaxSubscribers)
	}
	if o.Subscribers == 0 {
		o.Subscribers = DefaultSubscribers
	}
	if o.Start.IsZero() {
		o.Start = DefaultStart
	}
	o.Start = o.Start.UTC().Truncate(time.Millisecond)
	if y := o.Start.Year(); y < 2022 || y > 2040 {
		return o, fmt.Errorf("sim: Options.Start = %s: must lie in 2022..2040 so histories and the CA's validity (2020..2045) fit",
			o.Start.Format(time.RFC3339))
	}
	for _, m := range []struct {
		name   string
		limits map[appstore.Endpoint]float64
	}{{"RateLimits", o.RateLimits}, {"SandboxRateLimits", o.SandboxRateLimits}} {
		for ep, v := range m.limits {
			if !slices.Contains(limitedEndpoints(), ep) {
				return o, fmt.Errorf("sim: Options.%s has unknown endpoint %q: use one of %v", m.name, ep, limitedEndpoints())
			}
			if !(v > 0) || math.IsInf(v, 0) {
				return o, fmt.Errorf("sim: Options.%s[%s] = %v: must be a positive number of requests per second (omit it for Apple's default, or set DisableRateLimits)", m.name, ep, v)
			}
		}
	}
	if o.Burst < 0 {
		return o, fmt.Errorf("sim: Options.Burst = %s: must be >= 0 (0 means 1s)", o.Burst)
	}
	if o.Burst == 0 {
		o.Burst = time.Second
	}
	if o.WebhookURL != "" {
		if err := validateWebhookURL(o.WebhookURL); err != nil {
			return o, fmt.Errorf("sim: Options.WebhookURL: %w", err)
		}
	}
	if !(o.DropShare >= 0 && o.DropShare <= 1) {
		return o, fmt.Errorf("sim: Options.DropShare = %v: must be between 0 and 1", o.DropShare)
	}
	if o.WebhookWorkers < 0 || o.WebhookWorkers > 256 {
		return o, fmt.Errorf("sim: Options.WebhookWorkers = %d: must be between 0 (meaning 4) and 256", o.WebhookWorkers)
	}
	if o.WebhookWorkers == 0 {
		o.WebhookWorkers = 4
	}
	if o.WebhookTimeout < 0 {
		return o, fmt.Errorf("sim: Options.WebhookTimeout = %s: must be >= 0 (0 means 10s)", o.WebhookTimeout)
	}
	if o.WebhookTimeout == 0 {
		o.WebhookTimeout = 10 * time.Second
	}
	if o.PaginationTokenTTL < 0 {
		return o, fmt.Errorf("sim: Options.PaginationTokenTTL = %s: must be >= 0 (0 means 1h)", o.PaginationTokenTTL)
	}
	if o.PaginationTokenTTL == 0 {
		o.PaginationTokenTTL = time.Hour
	}
	if o.KeyID == "" {
		o.KeyID = DefaultKeyID
	}
	if !keyIDPattern.MatchString(o.KeyID) {
		return o, fmt.Errorf("sim: Options.KeyID %q: must be 1-64 letters or digits, like Apple's key ids (e.g. 2X9R4HXF34)", o.KeyID)
	}
	if o.IssuerID == "" {
		o.IssuerID = DefaultIssuerID
	}
	if !uuidPattern.MatchString(o.IssuerID) {
		return o, fmt.Errorf("sim: Options.IssuerID %q: must be a UUID like App Store Connect's issuer ids", o.IssuerID)
	}
	if o.BundleID == "" {
		o.BundleID = DefaultBundleID
	}
	if strings.ContainsAny(o.BundleID, " \t\r\n\"") {
		return o, fmt.Errorf("sim: Options.BundleID %q: must not contain spaces or quotes (e.g. com.example.app)", o.BundleID)
	}
	if o.AppAppleID < 0 {
		return o, fmt.Errorf("sim: Options.AppAppleID = %d: must be positive (0 means %d)", o.AppAppleID, DefaultAppAppleID)
	}
	if o.AppAppleID == 0 {
		o.AppAppleID = DefaultAppAppleID
	}
	if err := o.Faults.validate(); err != nil {
		return o, fmt.Errorf("sim: Options.Faults: %w", err)
	}
	return o, nil
}

func validateWebhookURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL (e.g. http://127.0.0.1:8080/webhooks/appstore)", s)
	}
	return nil
}
