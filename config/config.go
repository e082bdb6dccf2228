// Package config loads storesync's configuration from the environment and
// validates all of it at once, so a user fixes every problem in one pass.
package config

import (
	"crypto/ecdsa"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/storesync/storesync/appstore"
)

// Defaults of the optional settings.
const (
	DefaultDatabaseURL        = "postgres://127.0.0.1:5432/storesync?sslmode=disable"
	DefaultListen             = ":8080"
	DefaultReconcileCron      = "0 3 * * *"
	DefaultBackfillCron       = "0 * * * *"
	DefaultReconcileFullCycle = 7 * 24 * time.Hour
	DefaultReconcileBudget    = "25%"
	DefaultEventDeadAfter     = 72 * time.Hour
)

// Config is storesync's whole configuration. Load fills it from the
// environment; the zero value is not valid.
type Config struct {
	DatabaseURL string
	// DBMaxConns bounds the connections of one process
	// (STORESYNC_DB_MAX_CONNS, or DATABASE_URL's pool_max_conns when only
	// it is set; default DefaultDBMaxConns, at least MinDBMaxConns).
	DBMaxConns int
	// Pooler is STORESYNC_DB_POOLER (PoolerNone when unset).
	Pooler Pooler
	// MigrateDatabaseURL is STORESYNC_MIGRATE_DATABASE_URL: a direct URL
	// for `storesync migrate` when DATABASE_URL goes through a pooler.
	// Secret like DatabaseURL: print it only through RedactURL.
	MigrateDatabaseURL string

	Environment     appstore.Environment
	SandboxFallback bool
	BaseURL         string
	SandboxBaseURL  string // where sandbox fallback goes; default Apple's sandbox host
	KeyID           string
	IssuerID        string
	PrivateKeyFile  string
	PrivateKeyPEM   []byte // secret: never printed
	PrivateKey      *ecdsa.PrivateKey
	BundleID        string
	AppAppleID      int64
	RootCertFiles   []string
	RateLimits      map[appstore.Endpoint]float64 // overrides, requests/s
	RateShare       float64

	Listen     string
	AdminToken string // secret: never printed
	// APITokens are the read-only bearer tokens of the backend API (/v1/*),
	// from STORESYNC_API_TOKENS. Secrets: never printed.
	APITokens []string
	// EntitlementsFile and Entitlements are STORESYNC_ENTITLEMENTS_FILE and
	// its validated mapping (nil when unset: nothing grants anything).
	EntitlementsFile string
	Entitlements     *Entitlements
	// EventDeadAfter is STORESYNC_EVENT_DEAD_AFTER: how long a change-feed
	// webhook is retried before it is dead-lettered.
	EventDeadAfter time.Duration

	ReconcileCron string
	BackfillCron  string
	// ReconcileBudget is STORESYNC_RECONCILE_BUDGET: the call cap of a
	// reconciliation run, which checks every subscription it can within it
	// (targeted first, then the least recently checked).
	ReconcileBudget Budget
	// ReconcileFullCycle is STORESYNC_RECONCILE_FULL_CYCLE: the longest a
	// subscription may go unchecked when the cap binds (not how often runs
	// check it: a run that can afford everything checks everything).
	ReconcileFullCycle time.Duration

	// IngestBusyRate is STORESYNC_INGEST_BUSY_RATE: the webhook rate
	// (requests/s) from which notification processing yields to ingest
	// (0: the jobs package's default).
	IngestBusyRate float64
	// IngestYieldWorkers is STORESYNC_INGEST_YIELD_WORKERS: how many
	// processing jobs of one process run while ingest is busy (0: default).
	IngestYieldWorkers int
	// IngestYieldRate is STORESYNC_INGEST_YIELD_RATE: how many processing
	// jobs of one process start per second while ingest is busy (0:
	// default).
	IngestYieldRate float64
}

// Budget is a reconciliation budget: either a share of a day's statuses
// budget (Fraction) or an absolute number of calls (Calls).
type Budget struct {
	Fraction float64
	Calls    int64
}

// Calls returns the number of calls b allows when a day's budget is daily.
func (b Budget) CallsOf(daily int64) int64 {
	if b.Calls > 0 {
		return b.Calls
	}
	return int64(b.Fraction * float64(daily))
}

func (b Budget) String() string {
	if b.Calls > 0 {
		return strconv.FormatInt(b.Calls, 10)
	}
	return strconv.FormatFloat(b.Fraction*100, 'f', -1, 64) + "%"
}

// Problems is every configuration problem found, each naming the variable
// and the fix.
type Problems []string

func (p Problems) Error() string {
	if len(p) == 1 {
		return "configuration: " + p[0]
	}
	return fmt.Sprintf("configuration has %d problems:\n  - %s", len(p), strings.Join(p, "\n  - "))
}

// Load reads every variable of the design's configuration table through
// getenv (os.Getenv in production) and validates the format of each one that
// is set. Values needed only to call Apple are checked by RequireAppStore, so
// that commands which only touch the database run without credentials.
func Load(getenv func(string) string) (*Config, error) {
	var problems Problems
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	get := func(name string) string { return strings.TrimSpace(getenv(name)) }

	c := &Config{
		DatabaseURL:        get("DATABASE_URL"),
		BaseURL:            get("APPSTORE_BASE_URL"),
		SandboxBaseURL:     get("APPSTORE_SANDBOX_BASE_URL"),
		KeyID:              get("APPSTORE_KEY_ID"),
		IssuerID:           get("APPSTORE_ISSUER_ID"),
		PrivateKeyFile:     get("APPSTORE_PRIVATE_KEY_FILE"),
		BundleID:           get("APPSTORE_BUNDLE_ID"),
		Listen:             get("STORESYNC_LISTEN"),
		AdminToken:         get("STORESYNC_ADMIN_TOKEN"),
		ReconcileCron:      get("STORESYNC_RECONCILE_CRON"),
		BackfillCron:       get("STORESYNC_BACKFILL_CRON"),
		RateShare:          1,
		ReconcileFullCycle: DefaultReconcileFullCycle,
		EventDeadAfter:     DefaultEventDeadAfter,
	}
	if c.DatabaseURL == "" {
		c.DatabaseURL = DefaultDatabaseURL
	}
	if u, err := url.Parse(c.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		add("DATABASE_URL is not a postgres:// URL: set it like postgres://user:pass@host:5432/storesync")
	}
	loadDatabase(c, get, add)

	c.Environment = appstore.Production
	if v := get("APPSTORE_ENVIRONMENT"); v != "" {
		env, err := appstore.ParseEnvironment(v)
		if err != nil || !env.HasServer() {
			add("APPSTORE_ENVIRONMENT=%q is not an App Store server environment: use production or sandbox", v)
		} else {
			c.Environment = env
		}
	}
	if v := get("APPSTORE_SANDBOX_FALLBACK"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			add("APPSTORE_SANDBOX_FALLBACK=%q is not a boolean: use true or false", v)
		}
		c.SandboxFallback = b
	}
	if c.BaseURL != "" {
		if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("APPSTORE_BASE_URL=%q is not an http(s) URL: use e.g. https://api.storekit.apple.com or the simulator's URL", c.BaseURL)
		}
	}

	if c.SandboxBaseURL != "" {
		if u, err := url.Parse(c.SandboxBaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("APPSTORE_SANDBOX_BASE_URL=%q is not an http(s) URL: use e.g. https://api.storekit-sandbox.apple.com or the simulator's URL + /sandbox", c.SandboxBaseURL)
		}
	}
	if c.BaseURL != "" && c.SandboxFallback && c.SandboxBaseURL == "" {
		add("APPSTORE_BASE_URL is overridden and APPSTORE_SANDBOX_FALLBACK=true, but APPSTORE_SANDBOX_BASE_URL is unset: fallback would reach Apple's real sandbox; set it (the simulator's is its base URL + /sandbox)")
	}

	keyText := getenv("APPSTORE_PRIVATE_KEY")
	switch {
	case c.PrivateKeyFile != "" && strings.TrimSpace(keyText) != "":
		add("APPSTORE_PRIVATE_KEY_FILE and APPSTORE_PRIVATE_KEY are both set: set only one")
	case c.PrivateKeyFile != "":
		b, err := os.ReadFile(c.PrivateKeyFile)
		if err != nil {
			add("APPSTORE_PRIVATE_KEY_FILE=%q cannot be read (%v): point it at the .p8 file downloaded from App Store Connect", c.PrivateKeyFile, unwrapPathError(err))
		} else {
			c.PrivateKeyPEM = b
		}
	case strings.TrimSpace(keyText) != "":
		c.PrivateKeyPEM = []byte(strings.ReplaceAll(keyText, `\n`, "\n"))
	}
	if c.PrivateKeyPEM != nil {
		key, err := appstore.ParsePrivateKey(c.PrivateKeyPEM)
		if err != nil {
			add("%s is not a usable In-App Purchase key (%v): use the PKCS#8 .p8 file (EC P-256) from App Store Connect", keyVarName(c), err)
		}
		c.PrivateKey = key
	}

	if v := get("APPSTORE_APP_APPLE_ID"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			add("APPSTORE_APP_APPLE_ID=%q is not a positive number: use the app's Apple ID from App Store Connect (App Information)", v)
		}
		c.AppAppleID = n
	}
	if v := get("APPSTORE_ROOT_CERTS"); v != "" {
		for _, p := range strings.Split(v, ",") {
			p = strings.TrimSpace(p)
			if p == "" {
				continue
			}
			if _, err := os.Stat(p); err != nil {
				add("APPSTORE_ROOT_CERTS names %q, which cannot be read (%v): give comma-separated paths of PEM or DER root certificates", p, unwrapPathError(err))
			}
			c.RootCertFiles = append(c.RootCertFiles, p)
		}
	}
	if v := get("APPSTORE_RATE_LIMITS"); v != "" {
		limits, errs := parseRateLimits(v)
		problems = append(problems, errs...)
		c.RateLimits = limits
	}
	if v := get("APPSTORE_RATE_SHARE"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f > 0 && f <= 1) {
			add("APPSTORE_RATE_SHARE=%q is not a fraction in (0, 1]: use e.g. 0.8 to leave 20%% of Apple's limit to other services", v)
		} else {
			c.RateShare = f
		}
	}

	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if _, _, err := splitHostPort(c.Listen); err != nil {
		add("STORESYNC_LISTEN=%q is not a listen address: use host:port or :port, e.g. :8080", c.Listen)
	}
	if c.AdminToken != "" && len(c.AdminToken) < 16 {
		add("STORESYNC_ADMIN_TOKEN is shorter than 16 characters: use a long random token, e.g. openssl rand -hex 32")
	}
	if v := get("STORESYNC_API_TOKENS"); v != "" {
		for i, t := range strings.Split(v, ",") {
			t = strings.TrimSpace(t)
			switch {
			case t == "":
				add("STORESYNC_API_TOKENS has an empty token at position %d: remove the extra comma", i+1)
			case len(t) < 16:
				// The token itself is a secret: name its position only.
				add("STORESYNC_API_TOKENS token %d is shorter than 16 characters: use long random tokens, e.g. openssl rand -hex 32", i+1)
			case t == c.AdminToken:
				add("STORESYNC_API_TOKENS token %d equals STORESYNC_ADMIN_TOKEN: give the backend its own read-only token", i+1)
			default:
				c.APITokens = append(c.APITokens, t)
			}
		}
	}
	if v := get("STORESYNC_EVENT_DEAD_AFTER"); v != "" {
		d, err := ParseDuration(v)
		if err != nil || d < time.Minute {
			add("STORESYNC_EVENT_DEAD_AFTER=%q is not a duration of at least 1m: use e.g. 72h or 3d", v)
		} else {
			c.EventDeadAfter = d
		}
	}
	if v := get("STORESYNC_ENTITLEMENTS_FILE"); v != "" {
		c.EntitlementsFile = v
		e, err := LoadEntitlementsFile(v)
		var ps Problems
		switch {
		case errors.As(err, &ps):
			problems = append(problems, ps...)
		case err != nil:
			add("STORESYNC_ENTITLEMENTS_FILE: %v", err)
		}
		c.Entitlements = e
	}
	if c.ReconcileCron == "" {
		c.ReconcileCron = DefaultReconcileCron
	}
	if _, err := cron.ParseStandard(c.ReconcileCron); err != nil {
		add("STORESYNC_RECONCILE_CRON=%q does not parse (%v): use a 5-field cron spec such as \"0 3 * * *\"", c.ReconcileCron, err)
	}
	if c.BackfillCron == "" {
		c.BackfillCron = DefaultBackfillCron
	}
	if _, err := cron.ParseStandard(c.BackfillCron); err != nil {
		add("STORESYNC_BACKFILL_CRON=%q does not parse (%v): use a 5-field cron spec such as \"0 * * * *\"", c.BackfillCron, err)
	}
	budgetText := get("STORESYNC_RECONCILE_BUDGET")
	if budgetText == "" {
		budgetText = DefaultReconcileBudget
	}
	if b, err := ParseBudget(budgetText); err != nil {
		add("STORESYNC_RECONCILE_BUDGET=%q %v: use a share of a day's statuses budget such as 25%% or a number of calls", budgetText, err)
	} else {
		c.ReconcileBudget = b
	}
	if v := get("STORESYNC_RECONCILE_FULL_CYCLE"); v != "" {
		d, err := ParseDuration(v)
		if err != nil || d < time.Hour {
			add("STORESYNC_RECONCILE_FULL_CYCLE=%q is not a duration of at least 1h: use e.g. 7d or 72h", v)
		} else {
			c.ReconcileFullCycle = d
		}
	}
	if v := get("STORESYNC_INGEST_BUSY_RATE"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f >= 1) {
			add("STORESYNC_INGEST_BUSY_RATE=%q is not a rate of at least 1: use webhook requests per second, e.g. 100", v)
		} else {
			c.IngestBusyRate = f
		}
	}
	if v := get("STORESYNC_INGEST_YIELD_WORKERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			add("STORESYNC_INGEST_YIELD_WORKERS=%q is not a number in 1..1000: use how many notifications may be processed at once while webhooks pour in, e.g. 2", v)
		} else {
			c.IngestYieldWorkers = n
		}
	}
	if v := get("STORESYNC_INGEST_YIELD_RATE"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f >= 0.1) || f > 1e6 {
			add("STORESYNC_INGEST_YIELD_RATE=%q is not a rate in 0.1..1000000: use how many notifications may start processing per second while webhooks pour in, e.g. 10", v)
		} else {
			c.IngestYieldRate = f
		}
	}

	if len(problems) > 0 {
		return nil, problems
	}
	return c, nil
}

// RequireAppStore checks that everything needed to call Apple's API is set,
// listing every missing value at once.
func (c *Config) RequireAppStore() error {
	var problems Problems
	if c.KeyID == "" {
		problems = append(problems, "APPSTORE_KEY_ID is not set: use the key ID of the In-App Purchase key (App Store Connect → Users and Access → Integrations → In-App Purchase)")
	}
	if c.IssuerID == "" {
		problems = append(problems, "APPSTORE_ISSUER_ID is not set: use the issuer ID shown above the keys list in App Store Connect")
	}
	if c.PrivateKey == nil {
		problems = append(problems, "APPSTORE_PRIVATE_KEY_FILE (or APPSTORE_PRIVATE_KEY) is not set: point it at the .p8 file of the In-App Purchase key")
	}
	if c.BundleID == "" {
		problems = append(problems, "APPSTORE_BUNDLE_ID is not set: use the app's bundle ID, e.g. com.example.app")
	}
	if c.Environment == appstore.Production && c.AppAppleID == 0 {
		problems = append(problems, "APPSTORE_APP_APPLE_ID is not set: it is required in production; use the app's Apple ID from App Store Connect")
	}
	if len(problems) > 0 {
		return problems
	}
	return nil
}

// RootCertificates reads the configured trusted roots; nil means the
// embedded Apple Root CA G3.
func (c *Config) RootCertificates() ([][]byte, error) {
	var roots [][]byte
	for _, p := range c.RootCertFiles {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("APPSTORE_ROOT_CERTS: reading %s: %w", p, unwrapPathError(err))
		}
		roots = append(roots, b)
	}
	return roots, nil
}

// EffectiveRateLimits returns the requests per second storesync may send to
// each endpoint in env: Apple's default (10% of production in the sandbox),
// times APPSTORE_RATE_SHARE. An APPSTORE_RATE_LIMITS override is the limit of
// the configured environment (APPSTORE_ENVIRONMENT); the sandbox reached by
// fallback from production gets 10% of it, as Apple's own limits do.
func (c *Config) EffectiveRateLimits(env appstore.Environment) map[appstore.Endpoint]float64 {
	limits := appstore.DefaultRateLimits(env, c.RateShare, nil)
	for e, o := range c.RateLimits {
		if env != c.Environment && env != appstore.Production {
			o /= 10
		}
		limits[e] = o * c.RateShare
	}
	return limits
}

// String describes c with every secret redacted, for logs and `status`.
func (c *Config) String() string {
	key := "unset"
	if c.PrivateKey != nil {
		key = "set (redacted)"
	}
	admin := "off"
	if c.AdminToken != "" {
		admin = "on (token redacted)"
	}
	return fmt.Sprintf("database=%s db_max_conns=%d db_pooler=%s environment=%s sandbox_fallback=%t base_url=%q key_id=%q issuer_id=%q private_key=%s bundle_id=%q app_apple_id=%d rate_share=%g listen=%s admin=%s api_tokens=%d(redacted) entitlements_file=%q reconcile_cron=%q backfill_cron=%q reconcile_budget=%s reconcile_full_cycle=%s event_dead_after=%s ingest_busy_rate=%g ingest_yield_workers=%d ingest_yield_rate=%g",
		RedactURL(c.DatabaseURL), c.DBMaxConns, c.Pooler, c.Environment, c.SandboxFallback, c.BaseURL, c.KeyID, c.IssuerID, key,
		c.BundleID, c.AppAppleID, c.RateShare, c.Listen, admin, len(c.APITokens), c.EntitlementsFile, c.ReconcileCron, c.BackfillCron,
		c.ReconcileBudget, c.ReconcileFullCycle, c.EventDeadAfter, c.IngestBusyRate, c.IngestYieldWorkers, c.IngestYieldRate)
}

// RedactURL hides the password of a database URL.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "redacted")
		}
	}
	return u.String()
}

func keyVarName(c *Config) string {
	if c.PrivateKeyFile != "" {
		return fmt.Sprintf("APPSTORE_PRIVATE_KEY_FILE=%q", c.PrivateKeyFile)
	}
	return "APPSTORE_PRIVATE_KEY"
}
