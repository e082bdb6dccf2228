package appstore

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// VerifierOptions configures a Verifier. It mirrors the constructor of
// Apple's SignedDataVerifier.
type VerifierOptions struct {
	// RootCertificates are the trusted roots, each DER or PEM (a PEM entry
	// may hold several certificates). Nil or empty means the embedded Apple
	// Root CA - G3, which is what App Store data chains to; tests and the
	// simulator pass their own CA. The root certificate a JWS carries in
	// x5c[2] is never trusted.
	RootCertificates [][]byte
	// Environment is the environment every payload must claim: Production,
	// Sandbox, Xcode or LocalTesting. Xcode and LocalTesting data is not
	// signed by Apple, so in those two environments the signature and the
	// chain are NOT checked (as in Apple's libraries); only bundle and
	// environment are.
	Environment Environment
	// BundleID is the app's bundle identifier; payloads for another app are
	// INVALID_APP_IDENTIFIER.
	BundleID string
	// AppAppleID is the app's Apple ID. Required when Environment is
	// Production, where notifications for another app id are
	// INVALID_APP_IDENTIFIER; not checked in other environments.
	AppAppleID int64
	// OnlineChecks makes the effective time of chain validation "now"
	// instead of the payload's signedDate, and asks OCSP whether the leaf
	// and the intermediate are revoked. A verified chain is then trusted
	// for 15 minutes before OCSP is asked again.
	OnlineChecks bool
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// HTTPClient makes the OCSP requests; nil means a client with a
	// DefaultOCSPTimeout timeout.
	HTTPClient *http.Client
	// ChainCacheSize is how many verified chains (distinct leaf and
	// intermediate pairs) are remembered, so a warm verification costs one
	// ECDSA verification and a JSON decode. Zero means 64; negative
	// disables the cache (every verification re-checks the chain).
	ChainCacheSize int
}

// Verifier verifies and decodes App Store signed data (JWS): notification
// signedPayloads, signedTransactionInfo and signedRenewalInfo, with the
// checks, in the order and with the VerificationStatus values of Apple's
// SignedDataVerifier:
//
//  1. the JWS must be three base64url parts with JSON header and payload;
//  2. in the Xcode and LocalTesting environments, stop here and check only
//     bundle and environment (step 6);
//  3. the header's alg must be exactly ES256 and x5c a non-empty array;
//  4. the chain x5c[0] (leaf) → x5c[1] (intermediate) → a trusted root is
//     checked at the effective time (see verifyChain; x5c[2] is ignored),
//     and with OnlineChecks by OCSP;
//  5. the ES256 signature must verify with the leaf's key;
//  6. the payload's bundleId (and appAppleId in Production) must match,
//     then its environment.
//
// The effective time is the payload's signedDate (so data signed by a leaf
// that has since expired still verifies, as Apple's libraries do offline),
// the current time when the payload has none or OnlineChecks is set, or the
// time given to a ...At method.
//
// A Verifier is safe for concurrent use. It caches verified chains (bounded,
// shared with its WithEnvironment siblings). Errors are *VerificationError.
type Verifier struct {
	env        Environment
	bundleID   string
	appAppleID int64
	online     bool
	now        func() time.Time
	shared     *verifierShared
	// cfgErr is set on a sibling whose environment is unusable (see
	// WithEnvironment); every verification then returns it.
	cfgErr error
}

// verifierShared is what WithEnvironment siblings have in common.
type verifierShared struct {
	roots  []*x509.Certificate
	cache  *chainCache // nil when disabled
	client *http.Client
}

// NewVerifier checks opts and returns a Verifier. An unparsable root
// certificate is a *VerificationError with status INVALID_CERTIFICATE;
// other mistakes are plain errors naming the field.
func NewVerifier(opts VerifierOptions) (*Verifier, error) {
	if err := checkVerifierEnvironment(opts.Environment, opts.AppAppleID, "VerifierOptions.Environment"); err != nil {
		return nil, err
	}
	if strings.TrimSpace(opts.BundleID) == "" {
		return nil, errors.New("appstore: VerifierOptions.BundleID is empty: set it to the app's bundle identifier (e.g. com.example.app)")
	}
	if opts.AppAppleID < 0 {
		return nil, fmt.Errorf("appstore: VerifierOptions.AppAppleID is negative (%d): use the app's Apple ID from App Store Connect", opts.AppAppleID)
	}
	roots := opts.RootCertificates
	if len(roots) == 0 {
		roots = [][]byte{appleRootCAG3}
	}
	parsed, err := parseRoots(roots)
	if err != nil {
		var ve *VerificationError
		if errors.As(err, &ve) {
			ve.Reason = "VerifierOptions.RootCertificates: " + ve.Reason
		}
		return nil, err
	}
	sh := &verifierShared{roots: parsed, client: opts.HTTPClient}
	if sh.client == nil {
		sh.client = &http.Client{Timeout: DefaultOCSPTimeout}
	}
	switch size := opts.ChainCacheSize; {
	case size == 0:
		sh.cache = newChainCache(defaultChainCacheSize)
	case size > 0:
		sh.cache = newChainCache(size)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Verifier{
		env: opts.Environment, bundleID: opts.BundleID, appAppleID: opts.AppAppleID,
		online: opts.OnlineChecks, now: now, shared: sh,
	}, nil
}

func checkVerifierEnvironment(env Environment, appAppleID int64, field string) error {
	switch env {
	case Production:
		if appAppleID <= 0 {
			return errors.New("appstore: VerifierOptions.AppAppleID is required when the environment is Production: set it to the app's Apple ID (App Store Connect, App Information)")
		}
	case Sandbox, Xcode, LocalTesting:
	case "":
		return fmt.Errorf("appstore: %s is empty: set Production, Sandbox, Xcode or LocalTesting", field)
	default:
		return fmt.Errorf("appstore: %s %q is not Production, Sandbox, Xcode or LocalTesting (ParseEnvironment accepts any case)", field, env)
	}
	return nil
}

// WithEnvironment returns a Verifier identical to v except that payloads
// must claim env. It shares v's trusted roots and chain cache, so a webhook
// accepting both Production and Sandbox notifications (App Review buys in
// the sandbox) keeps one cache; see PeekNotificationEnvironment.
//
// If env is not a known environment, or is Production while v has no
// AppAppleID, every verification by the returned Verifier fails with an
// error saying so.
func (v *Verifier) WithEnvironment(env Environment) *Verifier {
	w := *v
	w.env = env
	w.cfgErr = checkVerifierEnvironment(env, v.appAppleID, "WithEnvironment")
	return &w
}

// Environment returns the environment v requires payloads to claim.
func (v *Verifier) Environment() Environment { return v.env }

// VerifyNotification verifies a notification's signedPayload and decodes it.
// It checks the notification's own identity (bundleId, appAppleId in
// Production, environment, read from data, else summary, else
// externalPurchaseToken, else appData) but NOT its inner signed fields
// (data.signedTransactionInfo, data.signedRenewalInfo): verify those with
// VerifyTransaction and VerifyRenewalInfo, or use VerifyNotificationDeep.
func (v *Verifier) VerifyNotification(signedPayload string) (*NotificationPayload, error) {
	return v.VerifyNotificationAt(signedPayload, time.Time{})
}

// VerifyNotificationAt is VerifyNotification with an explicit effective time
// for the chain's validity (as for `storesync verify --at`); a zero at means
// the default (signedDate, or now). OCSP still runs if OnlineChecks is set.
func (v *Verifier) VerifyNotificationAt(signedPayload string, at time.Time) (*NotificationPayload, error) {
	n, _, err := v.verifyNotification(signedPayload, at)
	return n, err
}

// DecodedJWS is a verified JWS's header and payload segments as the
// verifier base64url-decoded them, handed on so that a later step (the
// ledger's stored form, see ledger.Notification.Decoded) need not decode
// the same bytes again. The decoder accepts non-canonical base64url (the
// same bytes may have several encodings), so a user that must give back
// the exact text checks its re-encoding. The slices are the caller's; the
// verifier keeps no reference.
type DecodedJWS struct {
	// Header is the header's JSON bytes (with its x5c chain).
	Header []byte
	// Payload is the payload's JSON bytes.
	Payload []byte
}

// VerifyNotificationDecoded is VerifyNotification that also returns the
// decoded header and payload of signedPayload (nil on error), for the
// webhook to hand on to the ledger.
func (v *Verifier) VerifyNotificationDecoded(signedPayload string) (*NotificationPayload, *DecodedJWS, error) {
	return v.verifyNotification(signedPayload, time.Time{})
}

func (v *Verifier) verifyNotification(signedPayload string, at time.Time) (*NotificationPayload, *DecodedJWS, error) {
	n := new(NotificationPayload)
	var d DecodedJWS
	err := v.verifySigned(signedPayload, at, func(j *compactJWS) (Millis, error) {
		d.Header, d.Payload = j.header, j.payload
		err := decodeNotification(j.payload, n)
		return n.SignedDate, err
	})
	if err != nil {
		return nil, nil, err
	}
	bundleID, appAppleID, env := notificationIdentity(n)
	if err := v.checkIdentity("notification", bundleID, appAppleID, true, env); err != nil {
		return nil, nil, err
	}
	return n, &d, nil
}

// VerifyTransaction verifies a signedTransactionInfo (from the API, a
// notification or a device) and decodes it; its bundleId, then its
// environment, must match.
func (v *Verifier) VerifyTransaction(signedTransaction string) (*TransactionPayload, error) {
	return v.VerifyTransactionAt(signedTransaction, time.Time{})
}

// VerifyTransactionAt is VerifyTransaction with an explicit effective time; a
// zero at means the default.
func (v *Verifier) VerifyTransactionAt(signedTransaction string, at time.Time) (*TransactionPayload, error) {
	t := new(TransactionPayload)
	err := v.verifySigned(signedTransaction, at, func(j *compactJWS) (Millis, error) {
		err := json.Unmarshal(j.payload, t)
		return t.SignedDate, err
	})
	if err != nil {
		return nil, err
	}
	if err := v.checkIdentity("transaction", t.BundleID, 0, false, t.Environment); err != nil {
		return nil, err
	}
	return t, nil
}

// VerifyRenewalInfo verifies a signedRenewalInfo and decodes it. Renewal info
// carries no bundleId, so only its environment is checked, as in Apple's
// libraries.
func (v *Verifier) VerifyRenewalInfo(signedRenewalInfo string) (*RenewalInfoPayload, error) {
	return v.VerifyRenewalInfoAt(signedRenewalInfo, time.Time{})
}

// VerifyRenewalInfoAt is VerifyRenewalInfo with an explicit effective time; a
// zero at means the default.
func (v *Verifier) VerifyRenewalInfoAt(signedRenewalInfo string, at time.Time) (*RenewalInfoPayload, error) {
	r := new(RenewalInfoPayload)
	err := v.verifySigned(signedRenewalInfo, at, func(j *compactJWS) (Millis, error) {
		err := json.Unmarshal(j.payload, r)
		return r.SignedDate, err
	})
	if err != nil {
		return nil, err
	}
	if r.Environment != v.env {
		return nil, verificationErr(InvalidEnvironment,
			fmt.Sprintf("renewal info environment %q, verifier wants %q", r.Environment, v.env), nil)
	}
	return r, nil
}

// VerifiedNotification is a verified notification with its inner signed
// fields verified and decoded too.
type VerifiedNotification struct {
	Payload *NotificationPayload
	// Transaction is data.signedTransactionInfo verified and decoded; nil
	// when the notification has none.
	Transaction *TransactionPayload
	// RenewalInfo is data.signedRenewalInfo verified and decoded; nil when
	// the notification has none.
	RenewalInfo *RenewalInfoPayload
}

// VerifyNotificationDeep verifies a signedPayload like VerifyNotification,
// then verifies and decodes data.signedTransactionInfo and
// data.signedRenewalInfo with the same Verifier (same roots, bundle and
// environment; each at its own signedDate). A failure of an inner field is
// returned with its own status and a reason naming the field.
// appData.signedAppTransactionInfo is left undecoded.
func (v *Verifier) VerifyNotificationDeep(signedPayload string) (*VerifiedNotification, error) {
	return v.VerifyNotificationDeepAt(signedPayload, time.Time{})
}

// VerifyNotificationDeepAt is VerifyNotificationDeep with an explicit
// effective time, used for the inner fields too; a zero at means the
// default.
func (v *Verifier) VerifyNotificationDeepAt(signedPayload string, at time.Time) (*VerifiedNotification, error) {
	n, err := v.VerifyNotificationAt(signedPayload, at)
	if err != nil {
		return nil, err
	}
	return v.verifyNested(n, at)
}

// VerifyNotificationNested finishes verifying a notification whose
// signedPayload's signature and certificate chain were verified before
// (VerifyNotification or VerifyNotificationDecoded, then stored) and which
// was decoded since without verifying (PeekNotification). It returns what
// VerifyNotificationDeep returns for that signedPayload, checking all it
// checks except the outer ES256 signature and chain: n's identity claims
// against v (bundleId, appAppleId in Production, environment: v's
// configuration may have changed since), then data.signedTransactionInfo
// and data.signedRenewalInfo in full, each at its own signedDate.
//
// It exists for the ledger's notifications: every writer verifies a
// notification before storing it, so verifying its outer signature again
// when it is applied costs one ECDSA verification and proves nothing new.
// Never pass it a payload whose signature was not verified: whatever the
// outer payload says beyond its nested JWS (notificationType, data.status,
// signedDate, summary) would be trusted unchecked.
func (v *Verifier) VerifyNotificationNested(n *NotificationPayload) (*VerifiedNotification, error) {
	if v.cfgErr != nil {
		return nil, v.cfgErr // a notification without nested JWS never reaches verifySigned
	}
	if n == nil {
		return nil, verificationErr(VerificationFailure, "no notification payload", nil)
	}
	bundleID, appAppleID, env := notificationIdentity(n)
	if err := v.checkIdentity("notification", bundleID, appAppleID, true, env); err != nil {
		return nil, err
	}
	return v.verifyNested(n, time.Time{})
}

// verifyNested verifies and decodes the nested signed fields of n, whose
// own signature and identity are verified, at effective time at (zero:
// each one's default).
func (v *Verifier) verifyNested(n *NotificationPayload, at time.Time) (*VerifiedNotification, error) {
	var err error
	out := &VerifiedNotification{Payload: n}
	if n.Data == nil {
		return out, nil
	}
	if s := n.Data.SignedTransactionInfo; s != "" {
		if out.Transaction, err = v.VerifyTransactionAt(s, at); err != nil {
			return nil, innerErr("data.signedTransactionInfo", err)
		}
	}
	if s := n.Data.SignedRenewalInfo; s != "" {
		if out.RenewalInfo, err = v.VerifyRenewalInfoAt(s, at); err != nil {
			return nil, innerErr("data.signedRenewalInfo", err)
		}
	}
	return out, nil
}

func innerErr(field string, err error) error {
	var ve *VerificationError
	if errors.As(err, &ve) {
		return &VerificationError{Status: ve.Status, Reason: field + ": " + ve.Reason, Err: ve.Err}
	}
	return err
}

// PeekNotificationEnvironment decodes a notification's signedPayload WITHOUT
// verifying it and returns the environment it claims (from data, summary,
// externalPurchaseToken or appData, as verification reads it). The result is
// untrusted: use it only to pick the Verifier (Production or Sandbox, see
// WithEnvironment) that then verifies the payload, which rejects a false
// claim as INVALID_ENVIRONMENT.
func PeekNotificationEnvironment(signedPayload string) (Environment, error) {
	j, err := parseJWS(signedPayload)
	if err != nil {
		return "", err
	}
	var n NotificationPayload
	if err := decodeNotification(j.payload, &n); err != nil {
		return "", verificationErr(VerificationFailure, "payload is not a notification", err)
	}
	if _, _, env := notificationIdentity(&n); env != "" {
		return env, nil
	}
	return "", verificationErr(InvalidEnvironment, "notification claims no environment", nil)
}

// PeekNotification decodes a notification's signedPayload WITHOUT
// verifying anything (its header and signature are not even decoded).
//
// The result is untrusted by itself. Its one use is a signedPayload whose
// signature and chain were verified before it was stored (the ledger's
// notifications), decoded again to finish its verification with
// VerifyNotificationNested. An error is a *VerificationError with status
// VERIFICATION_FAILURE (not a JWS, not a notification).
func PeekNotification(signedPayload string) (*NotificationPayload, error) {
	b, err := peekPayload(signedPayload)
	if err != nil {
		return nil, err
	}
	return peekNotificationPayload(string(b))
}

// PeekNotificationPayload is PeekNotification given the JSON of the
// signedPayload's payload segment, already decoded (as the ledger stores
// it), with the same one use and errors. It must be a JSON object.
func PeekNotificationPayload(payloadJSON string) (*NotificationPayload, error) {
	if t := strings.TrimLeft(payloadJSON, " \t\r\n"); t == "" || t[0] != '{' { // as isJSONObject
		return nil, verificationErr(VerificationFailure, "JWS payload is not a JSON object", nil)
	}
	return peekNotificationPayload(payloadJSON)
}

func peekNotificationPayload(s string) (*NotificationPayload, error) {
	n := new(NotificationPayload)
	if !decodeNotificationFast(s, n) {
		*n = NotificationPayload{}
		if err := json.Unmarshal([]byte(s), n); err != nil {
			return nil, verificationErr(VerificationFailure, "payload does not decode", err)
		}
	}
	return n, nil
}

// verifySigned runs the checks every payload kind shares (steps 1 to 5 of
// Verifier). decode fills the caller's payload from the parsed JWS's
// payload JSON (and may keep its decoded segments) and returns its
// signedDate.
func (v *Verifier) verifySigned(s string, at time.Time, decode func(*compactJWS) (Millis, error)) error {
	if v.cfgErr != nil {
		return v.cfgErr
	}
	j, err := parseJWS(s)
	if err != nil {
		return err
	}
	signedDate, err := decode(&j)
	if err != nil {
		return verificationErr(VerificationFailure, "payload does not decode", err)
	}
	if v.env == Xcode || v.env == LocalTesting {
		return nil // not signed by the App Store; bundle and environment are checked by the caller
	}
	if !j.hasX5C || len(j.x5c) == 0 {
		return verificationErr(VerificationFailure, "JWS header has no x5c certificate chain", nil)
	}
	if j.alg != "ES256" {
		alg := j.alg
		if len(alg) > 16 {
			alg = alg[:16] + "..."
		}
		return verificationErr(VerificationFailure, fmt.Sprintf("JWS alg %q is not ES256", alg), nil)
	}
	now := v.now()
	eff := at
	if eff.IsZero() {
		eff = now
		if !v.online && signedDate != 0 {
			// Whole seconds, as Apple's verifier divides by 1000.
			eff = time.Unix(floorDiv(int64(signedDate), 1000), 0)
		}
	}
	chain, err := v.chain(j.x5c, eff, now)
	if err != nil {
		return err
	}
	if !verifyES256(chain.key, j.signingInput, j.signature) {
		return verificationErr(VerificationFailure, "ES256 signature does not verify with the leaf key", nil)
	}
	return nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// chain returns the verified chain for x5c at effective time eff, from the
// cache when possible.
func (v *Verifier) chain(x5c []string, eff, now time.Time) (*verifiedChain, error) {
	sh := v.shared
	var ttl time.Duration
	if v.online {
		ttl = chainCacheTTL
	}
	if len(x5c) == 3 {
		if c := sh.cache.get(x5c[0], x5c[1], eff, now, ttl); c != nil {
			return c, nil
		}
	}
	c, err := verifyChain(x5c, sh.roots, eff)
	if err != nil {
		return nil, err
	}
	if v.online {
		// Intermediate first, as Apple's verifier does.
		if err := checkOCSP(context.Background(), sh.client, c.intermediate, c.root, now); err != nil {
			return nil, err
		}
		if err := checkOCSP(context.Background(), sh.client, c.leaf, c.intermediate, now); err != nil {
			return nil, err
		}
	}
	sh.cache.put(x5c[0], x5c[1], c, now)
	return c, nil
}

// checkIdentity applies the payload checks of Apple's verifier: bundle id
// (and, for notifications in Production, app Apple id) first, giving
// INVALID_APP_IDENTIFIER, then environment, giving INVALID_ENVIRONMENT.
func (v *Verifier) checkIdentity(kind, bundleID string, appAppleID int64, checkAppAppleID bool, env Environment) error {
	if bundleID != v.bundleID {
		return verificationErr(InvalidAppIdentifier,
			fmt.Sprintf("%s bundleId %q, verifier wants %q", kind, bundleID, v.bundleID), nil)
	}
	if checkAppAppleID && v.env == Production && appAppleID != v.appAppleID {
		return verificationErr(InvalidAppIdentifier,
			fmt.Sprintf("%s appAppleId %d, verifier wants %d", kind, appAppleID, v.appAppleID), nil)
	}
	if env != v.env {
		return verificationErr(InvalidEnvironment,
			fmt.Sprintf("%s environment %q, verifier wants %q", kind, env, v.env), nil)
	}
	return nil
}

// notificationIdentity reads bundleId, appAppleId and environment from the
// first present of data, summary, externalPurchaseToken and appData. An
// external purchase token names no environment: an id starting with
// "SANDBOX" is Sandbox, anything else Production.
func notificationIdentity(n *NotificationPayload) (bundleID string, appAppleID int64, env Environment) {
	switch {
	case n.Data != nil:
		return n.Data.BundleID, int64(n.Data.AppAppleID), n.Data.Environment
	case n.Summary != nil:
		return n.Summary.BundleID, int64(n.Summary.AppAppleID), n.Summary.Environment
	case n.ExternalPurchaseToken != nil:
		t := n.ExternalPurchaseToken
		env = Production
		if strings.HasPrefix(t.ExternalPurchaseID, "SANDBOX") {
			env = Sandbox
		}
		return t.BundleID, int64(t.AppAppleID), env
	case n.AppData != nil:
		return n.AppData.BundleID, int64(n.AppData.AppAppleID), n.AppData.Environment
	}
	return "", 0, ""
}

// hashBufPool holds the chunk buffer used to hash the signing input, which
// is a string, without copying it whole onto the heap.
var hashBufPool = sync.Pool{New: func() any { return new([4096]byte) }}

// verifyES256 checks a JWS ES256 signature: raw r||s (32 bytes each) over
// SHA-256 of the signing input.
func verifyES256(key *ecdsa.PublicKey, signingInput string, sig []byte) bool {
	if len(sig) != 64 {
		return false
	}
	h := sha256.New()
	buf := hashBufPool.Get().(*[4096]byte)
	for s := signingInput; len(s) > 0; {
		n := copy(buf[:], s)
		h.Write(buf[:n])
		s = s[n:]
	}
	hashBufPool.Put(buf)
	var sum [sha256.Size]byte
	var der [72]byte
	return ecdsa.VerifyASN1(key, h.Sum(sum[:0]), appendSignatureDER(der[:0], sig[:32], sig[32:]))
}

// appendSignatureDER encodes r and s (big-endian, unsigned) as the ASN.1
// ECDSA-Sig-Value that crypto/ecdsa verifies.
func appendSignatureDER(b, r, s []byte) []byte {
	r, s = minimalUnsigned(r), minimalUnsigned(s)
	lr, ls := len(r)+int(r[0]>>7), len(s)+int(s[0]>>7)
	b = append(b, 0x30, byte(2+lr+2+ls))
	for _, x := range [][]byte{r, s} {
		b = append(b, 0x02, byte(len(x)+int(x[0]>>7)))
		if x[0]&0x80 != 0 {
			b = append(b, 0) // keep the INTEGER positive
		}
		b = append(b, x...)
	}
	return b
}

func minimalUnsigned(x []byte) []byte {
	for len(x) > 1 && x[0] == 0 {
		x = x[1:]
	}
	return x
}

// Field names of the notification JSON, in the order of the struct fields
// in payload.go (a test keeps them in step).
var (
	notificationKeys = []string{"notificationType", "subtype", "notificationUUID", "version", "signedDate",
		"data", "summary", "externalPurchaseToken", "appData"}
	notificationDataKeys = []string{"appAppleId", "bundleId", "bundleVersion", "environment",
		"signedTransactionInfo", "signedRenewalInfo", "status", "consumptionRequestReason"}
	notificationSummaryKeys = []string{"requestIdentifier", "environment", "appAppleId", "bundleId",
		"productId", "storefrontCountryCodes", "succeededCount", "failedCount"}
	externalPurchaseTokenKeys = []string{"externalPurchaseId", "tokenCreationDate", "appAppleId", "bundleId"}
	appDataKeys               = []string{"appAppleId", "bundleId", "environment", "signedAppTransactionInfo"}
)

// decodeNotification decodes a notification payload, with the fast reader
// when it can (a notification is mostly two long inner JWS strings) and
// encoding/json otherwise.
func decodeNotification(b []byte, n *NotificationPayload) error {
	if decodeNotificationFast(string(b), n) {
		return nil
	}
	*n = NotificationPayload{}
	return json.Unmarshal(b, n)
}

func decodeNotificationFast(s string, n *NotificationPayload) bool {
	r := &jsonReader{s: s}
	ok := r.object(notificationKeys, false, func(k int) bool {
		switch k {
		case 0:
			return r.str(&n.NotificationType)
		case 1:
			return r.str(&n.Subtype)
		case 2:
			return r.str(&n.NotificationUUID)
		case 3:
			return r.str(&n.Version)
		case 4:
			return r.millis(&n.SignedDate)
		case 5:
			n.Data = new(NotificationData)
			return r.notificationData(n.Data)
		case 6:
			n.Summary = new(NotificationSummary)
			return r.notificationSummary(n.Summary)
		case 7:
			n.ExternalPurchaseToken = new(ExternalPurchaseToken)
			return r.externalPurchaseToken(n.ExternalPurchaseToken)
		case 8:
			n.AppData = new(AppData)
			return r.appData(n.AppData)
		}
		return false
	})
	return ok && r.end()
}

func (r *jsonReader) notificationData(d *NotificationData) bool {
	return r.object(notificationDataKeys, false, func(k int) bool {
		switch k {
		case 0:
			return r.integer(&d.AppAppleID)
		case 1:
			return r.str(&d.BundleID)
		case 2:
			return r.str(&d.BundleVersion)
		case 3:
			return r.env(&d.Environment)
		case 4:
			return r.str(&d.SignedTransactionInfo)
		case 5:
			return r.str(&d.SignedRenewalInfo)
		case 6:
			return r.integer(&d.Status)
		case 7:
			return r.str(&d.ConsumptionRequestReason)
		}
		return false
	})
}

func (r *jsonReader) notificationSummary(m *NotificationSummary) bool {
	return r.object(notificationSummaryKeys, false, func(k int) bool {
		switch k {
		case 0:
			return r.str(&m.RequestIdentifier)
		case 1:
			return r.env(&m.Environment)
		case 2:
			return r.integer(&m.AppAppleID)
		case 3:
			return r.str(&m.BundleID)
		case 4:
			return r.str(&m.ProductID)
		case 5:
			return r.strings(&m.StorefrontCountryCodes)
		case 6:
			return r.integer(&m.SucceededCount)
		case 7:
			return r.integer(&m.FailedCount)
		}
		return false
	})
}

func (r *jsonReader) externalPurchaseToken(t *ExternalPurchaseToken) bool {
	return r.object(externalPurchaseTokenKeys, false, func(k int) bool {
		switch k {
		case 0:
			return r.str(&t.ExternalPurchaseID)
		case 1:
			return r.millis(&t.TokenCreationDate)
		case 2:
			return r.integer(&t.AppAppleID)
		case 3:
			return r.str(&t.BundleID)
		}
		return false
	})
}

func (r *jsonReader) appData(a *AppData) bool {
	return r.object(appDataKeys, false, func(k int) bool {
		switch k {
		case 0:
			return r.integer(&a.AppAppleID)
		case 1:
			return r.str(&a.BundleID)
		case 2:
			return r.env(&a.Environment)
		case 3:
			return r.str(&a.SignedAppTransactionInfo)
		}
		return false
	})
}
