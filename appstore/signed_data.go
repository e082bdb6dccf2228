package appstore

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
)

// SignedDataOptions says how VerifySignedData verifies one JWS.
type SignedDataOptions struct {
	// Verifier gives the trusted roots, online checks and the identity the
	// payload must claim, as for NewVerifier, except that what is left
	// unset is taken from the payload's own (unverified) claim and listed
	// in SignedData.Claimed:
	//   - an empty Environment;
	//   - an empty BundleID (renewal info carries none and Apple's verifier
	//     checks none for it, so it is then not checked at all);
	//   - a zero AppAppleID when the environment is Production and the
	//     payload is a notification (the only kind whose app id is checked;
	//     for other kinds a placeholder satisfies NewVerifier).
	// The signature and chain are still verified, but a claimed setting
	// pins nothing: set all three to check the payload is your app's.
	Verifier VerifierOptions
	// Kind is what the JWS holds; PayloadDetect detects it (DetectPayload).
	Kind PayloadKind
	// At is the effective time of certificate validity; zero means the
	// Verifier's default (the payload's signedDate, or now with
	// OnlineChecks).
	At time.Time
}

// Claim is one verifier setting VerifySignedData took from the payload's
// own claim because the options left it unset.
type Claim struct {
	// Field is the payload's field: "environment", "bundleId" or
	// "appAppleId".
	Field string
	// Value is the claimed value as text.
	Value string
}

// SignedData is a JWS verified by VerifySignedData, with what was decided
// on the way.
type SignedData struct {
	// Kind is the kind the JWS was verified as (detected or given).
	Kind PayloadKind
	// Environment is the environment the payload had to claim (given or
	// taken from its claim); "" when neither said one.
	Environment Environment
	// Claimed lists, in the order Environment, BundleID, AppAppleID, the
	// settings taken from the payload's unverified claims.
	Claimed []Claim
	// SignatureUnchecked reports an Xcode or LocalTesting environment, in
	// which (as in Apple's libraries) neither signature nor chain is
	// checked: the payload is not proven to come from Apple.
	SignatureUnchecked bool
	// Payload is the payload exactly as signed, numbers kept as written
	// (json.Number), so fields this package does not model show too. For
	// a notification, data.signedTransactionInfo and data.signedRenewalInfo
	// are verified as well and their payloads added beside the raw strings
	// as data.transactionInfo and data.renewalInfo.
	Payload map[string]any
	// The typed payload of Kind; the other two are nil.
	Notification *VerifiedNotification
	Transaction  *TransactionPayload
	RenewalInfo  *RenewalInfoPayload
}

// MissingClaimError is returned by VerifySignedData when the options leave
// a setting to the payload's claim and the payload names none: the caller
// must give it.
type MissingClaimError struct {
	// Field is the payload field that is missing: "environment",
	// "bundleId" or "appAppleId".
	Field string
}

// Error returns "appstore: the payload names no FIELD: set it in
// VerifierOptions".
func (e *MissingClaimError) Error() string {
	return "appstore: the payload names no " + e.Field + ": set it in VerifierOptions"
}

// renewalInfoBundlePlaceholder satisfies NewVerifier for renewal info,
// whose bundle id Apple's verifier does not check (it carries none).
const renewalInfoBundlePlaceholder = "(not checked for renewal info)"

// VerifySignedData verifies any App Store JWS — a notification's
// signedPayload, a signedTransactionInfo or a signedRenewalInfo — exactly
// as Apple's SignedDataVerifier does for its kind (opts.Kind, else
// detected), filling unset verifier settings from the payload's claims (see
// SignedDataOptions), and returns it decoded.
//
// It always returns a non-nil *SignedData whose Kind, Claimed and
// SignatureUnchecked say what was decided before any failure; Payload and
// the typed fields are set only on success. Errors: a *MissingClaimError
// when a setting is neither given nor claimed; NewVerifier's errors for bad
// options (an unreadable root is INVALID_CERTIFICATE); otherwise a
// *VerificationError with Apple's status, naming the inner field of a
// notification when that is what failed.
func VerifySignedData(jws string, opts SignedDataOptions) (*SignedData, error) {
	kind, claims := DetectPayload(jws)
	if opts.Kind != PayloadDetect {
		kind = opts.Kind
	}
	out := &SignedData{Kind: kind}
	vo := opts.Verifier

	if vo.Environment == "" {
		if claims.Environment == "" {
			return out, &MissingClaimError{Field: "environment"}
		}
		vo.Environment = claims.Environment
		out.Claimed = append(out.Claimed, Claim{Field: "environment", Value: string(claims.Environment)})
	}
	out.Environment = vo.Environment
	switch {
	case vo.BundleID != "":
	case kind == PayloadRenewalInfo:
		vo.BundleID = renewalInfoBundlePlaceholder
	case claims.BundleID != "":
		vo.BundleID = claims.BundleID
		out.Claimed = append(out.Claimed, Claim{Field: "bundleId", Value: claims.BundleID})
	default:
		return out, &MissingClaimError{Field: "bundleId"}
	}
	switch {
	case vo.AppAppleID != 0:
	case vo.Environment == Production && kind == PayloadNotification:
		if claims.AppAppleID <= 0 {
			return out, &MissingClaimError{Field: "appAppleId"}
		}
		vo.AppAppleID = claims.AppAppleID
		out.Claimed = append(out.Claimed, Claim{Field: "appAppleId", Value: strconv.FormatInt(claims.AppAppleID, 10)})
	case vo.Environment == Production:
		// Only notifications are checked against it; NewVerifier still
		// requires one in Production.
		vo.AppAppleID = 1
	}
	out.SignatureUnchecked = vo.Environment == Xcode || vo.Environment == LocalTesting

	v, err := NewVerifier(vo)
	if err != nil {
		return out, err
	}
	switch kind {
	case PayloadTransaction:
		out.Transaction, err = v.VerifyTransactionAt(jws, opts.At)
	case PayloadRenewalInfo:
		out.RenewalInfo, err = v.VerifyRenewalInfoAt(jws, opts.At)
	default:
		out.Notification, err = v.VerifyNotificationDeepAt(jws, opts.At)
	}
	if err != nil {
		out.Notification, out.Transaction, out.RenewalInfo = nil, nil, nil
		return out, err
	}
	payload, err := verifiedPayload(jws, kind)
	if err != nil {
		out.Notification, out.Transaction, out.RenewalInfo = nil, nil, nil
		return out, err
	}
	out.Payload = payload
	return out, nil
}

// verifiedPayload returns what Apple signed in an already verified jws,
// not a struct's view of it, with a notification's inner signed fields
// decoded beside their raw strings.
func verifiedPayload(jws string, kind PayloadKind) (map[string]any, error) {
	out, err := rawPayload(jws)
	if err != nil || kind == PayloadTransaction || kind == PayloadRenewalInfo {
		return out, err
	}
	if data, ok := out["data"].(map[string]any); ok {
		for field, name := range map[string]string{"signedTransactionInfo": "transactionInfo", "signedRenewalInfo": "renewalInfo"} {
			if s, ok := data[field].(string); ok && s != "" {
				if data[name], err = rawPayload(s); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, nil
}

// rawPayload decodes the payload of an already verified JWS, keeping
// numbers as written.
func rawPayload(jws string) (map[string]any, error) {
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		return nil, errors.New("appstore: not a compact JWS")
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil, err
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}
