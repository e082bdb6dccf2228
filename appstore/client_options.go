package appstore

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"time"
)

// Apple's hosts (docs/appstore-api.md §1.1).
const (
	DefaultProductionBaseURL = "https://api.storekit.apple.com"
	DefaultSandboxBaseURL    = "https://api.storekit-sandbox.apple.com"
)

// DefaultHTTPTimeout bounds one request when ClientOptions.HTTPClient is nil,
// as Apple's own libraries do.
const DefaultHTTPTimeout = 30 * time.Second

// ClientOptions configures a Client. KeyID, IssuerID, BundleID, PrivateKey
// and Environment are required; everything else has a default.
type ClientOptions struct {
	// KeyID is the In-App Purchase key's ID (App Store Connect → Users and
	// Access → Integrations → In-App Purchase), the kid of every token.
	KeyID string
	// IssuerID is the issuer UUID shown on the same page.
	IssuerID string
	// BundleID is the app's bundle ID, the bid claim: Apple answers 4040010
	// for transactions of other apps.
	BundleID string
	// PrivateKey is the key downloaded as a .p8; see ParsePrivateKey.
	PrivateKey *ecdsa.PrivateKey
	// Environment is Production or Sandbox. Xcode and LocalTesting have no
	// server and are refused.
	Environment Environment
	// BaseURL replaces Apple's host for Environment (simulator, tests),
	// e.g. "http://127.0.0.1:8081". Default: DefaultProductionBaseURL or
	// DefaultSandboxBaseURL.
	BaseURL string
	// SandboxBaseURL is the sandbox host used by SandboxFallback. Default:
	// DefaultSandboxBaseURL, also when BaseURL is overridden, so point both at a
	// simulator to keep fallback away from Apple.
	SandboxBaseURL string
	// SandboxFallback (Production only): a transaction id unknown in
	// production (4040010, 4040005) is asked again in the sandbox, as Apple
	// recommends for App Review and mixed migrations. Applies to statuses,
	// transaction history, transaction info, app transaction info, refund
	// history and order lookup.
	SandboxFallback bool
	// Budget is waited on before every request. Nil: an in-process
	// RateBudget with Apple's default limits for Environment (and for the
	// sandbox when SandboxFallback is set), share 1, burst 1. Share one
	// Budget among every Client of the same app.
	Budget Budget
	// HTTPClient sends the requests. Nil: a client with DefaultHTTPTimeout.
	HTTPClient *http.Client
	// Now is the clock for token timestamps and Retry-After deltas.
	// Nil: time.Now.
	Now func() time.Time
	// UserAgent is sent with every request. Default: DefaultUserAgent().
	UserAgent string
}

// DefaultUserAgent returns "storesync/<version>", the version being the main
// module's version from the build info, or "dev" for a local build.
func DefaultUserAgent() string {
	v := "dev"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	return "storesync/" + v
}

// validate checks o and reports every problem, each naming the field and
// the fix.
func (o *ClientOptions) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("appstore: ClientOptions."+format, args...))
	}
	if strings.TrimSpace(o.KeyID) == "" {
		bad("KeyID is empty: set the In-App Purchase key ID from App Store Connect (APPSTORE_KEY_ID)")
	}
	if strings.TrimSpace(o.IssuerID) == "" {
		bad("IssuerID is empty: set the issuer ID from App Store Connect (APPSTORE_ISSUER_ID)")
	}
	if strings.TrimSpace(o.BundleID) == "" {
		bad("BundleID is empty: set the app's bundle ID (APPSTORE_BUNDLE_ID)")
	}
	switch {
	case o.PrivateKey == nil:
		bad("PrivateKey is nil: load the .p8 key with ParsePrivateKey (APPSTORE_PRIVATE_KEY_FILE)")
	case o.PrivateKey.Curve != elliptic.P256():
		bad("PrivateKey is not on curve P-256: use the .p8 In-App Purchase key from App Store Connect")
	}
	switch {
	case o.Environment == "":
		bad("Environment is empty: use Production or Sandbox")
	case !o.Environment.HasServer():
		bad("Environment %q has no App Store Server API: use Production or Sandbox", o.Environment)
	}
	if o.SandboxFallback && o.Environment == Sandbox {
		bad("SandboxFallback is set with Environment Sandbox: fallback only applies to Production; unset it")
	}
	if err := checkBaseURL(o.BaseURL); err != nil {
		bad("BaseURL %v", err)
	}
	if err := checkBaseURL(o.SandboxBaseURL); err != nil {
		bad("SandboxBaseURL %v", err)
	}
	return errors.Join(errs...)
}

// checkBaseURL accepts "" (default) or an absolute http(s) URL without
// query or fragment.
func checkBaseURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q does not parse: use a URL like https://api.storekit.apple.com", s)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL: use a URL like https://api.storekit.apple.com", s)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q has a query or fragment: give the scheme, host and optional path prefix only", s)
	}
	return nil
}
