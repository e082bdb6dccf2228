package appstore

import (
	"errors"
	"strconv"
)

// VerificationStatus is the outcome of verifying App Store signed data. The
// values and names are those of Apple's SignedDataVerifier
// (VerificationStatus in the Python, Java and Node libraries), so logs and
// metrics read the same as Apple's documentation.
type VerificationStatus int

const (
	// VerificationOK means the data verified. It never appears in a
	// VerificationError.
	VerificationOK VerificationStatus = 0
	// VerificationFailure: malformed JWS, wrong algorithm, missing x5c, a
	// chain that does not reach a trusted root (or is expired, lacks Apple's
	// marker extensions, or is revoked), or a bad signature.
	VerificationFailure VerificationStatus = 1
	// InvalidAppIdentifier: the payload's bundleId (or, in Production, its
	// appAppleId) differs from the verifier's.
	InvalidAppIdentifier VerificationStatus = 2
	// InvalidCertificate: an x5c entry or a trusted root is not base64 DER
	// of an X.509 certificate.
	InvalidCertificate VerificationStatus = 3
	// InvalidChainLength: x5c does not hold exactly three certificates.
	InvalidChainLength VerificationStatus = 4
	// InvalidChain is defined by Apple but not produced by its current
	// verifier, nor by this one; kept so the numbering matches.
	InvalidChain VerificationStatus = 5
	// InvalidEnvironment: the payload's environment differs from the
	// verifier's.
	InvalidEnvironment VerificationStatus = 6
	// RetryableVerificationFailure: an online (OCSP) check could not be
	// completed (network error, non-200 answer). Trying again later may
	// succeed; the data was not found to be bad.
	RetryableVerificationFailure VerificationStatus = 7
)

var statusNames = [...]string{
	VerificationOK:               "OK",
	VerificationFailure:          "VERIFICATION_FAILURE",
	InvalidAppIdentifier:         "INVALID_APP_IDENTIFIER",
	InvalidCertificate:           "INVALID_CERTIFICATE",
	InvalidChainLength:           "INVALID_CHAIN_LENGTH",
	InvalidChain:                 "INVALID_CHAIN",
	InvalidEnvironment:           "INVALID_ENVIRONMENT",
	RetryableVerificationFailure: "RETRYABLE_VERIFICATION_FAILURE",
}

// String returns Apple's name for s ("VERIFICATION_FAILURE"), or
// "VerificationStatus(N)" for a value Apple does not define.
func (s VerificationStatus) String() string {
	if s >= 0 && int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "VerificationStatus(" + strconv.Itoa(int(s)) + ")"
}

// VerificationError is why signed data was rejected. Status is Apple's
// classification; Reason names the check that failed in plain words; Err is
// the underlying cause when there is one (a parse error, an HTTP error).
//
// Use errors.As to get it from an error returned by a Verifier, and
// Retryable to decide between "reject" and "try again later".
type VerificationError struct {
	Status VerificationStatus
	Reason string
	Err    error
}

// Error returns "appstore: STATUS: reason: cause".
func (e *VerificationError) Error() string {
	msg := "appstore: " + e.Status.String()
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the underlying cause, if any.
func (e *VerificationError) Unwrap() error { return e.Err }

// Retryable reports whether the failure is RETRYABLE_VERIFICATION_FAILURE:
// an online check could not be completed, so the same data may verify later.
// Every other status is final for that data.
func (e *VerificationError) Retryable() bool { return e.Status == RetryableVerificationFailure }

// StatusOf returns the VerificationStatus carried by err: VerificationOK for nil,
// the status of a *VerificationError anywhere in err's chain, and
// VerificationFailure for any other error.
func StatusOf(err error) VerificationStatus {
	if err == nil {
		return VerificationOK
	}
	var ve *VerificationError
	if errors.As(err, &ve) {
		return ve.Status
	}
	return VerificationFailure
}

func verificationErr(s VerificationStatus, reason string, cause error) *VerificationError {
	return &VerificationError{Status: s, Reason: reason, Err: cause}
}
