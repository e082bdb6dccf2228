package appstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// Error codes Apple returns in the errorCode field (docs/appstore-api.md §4.2).
// Apple adds codes without notice: APIError.Code keeps any value, known or
// not.
const (
	ErrorCodeGeneralBadRequest                           = 4000000
	ErrorCodeInvalidAppIdentifier                        = 4000002
	ErrorCodeInvalidRequestRevision                      = 4000005
	ErrorCodeInvalidTransactionID                        = 4000006
	ErrorCodeInvalidOriginalTransactionID                = 4000008
	ErrorCodeInvalidExtendByDays                         = 4000009
	ErrorCodeInvalidExtendReasonCode                     = 4000010
	ErrorCodeInvalidRequestIdentifier                    = 4000011
	ErrorCodeStartDateTooFarInPast                       = 4000012
	ErrorCodeStartDateAfterEndDate                       = 4000013
	ErrorCodeInvalidPaginationToken                      = 4000014
	ErrorCodeInvalidStartDate                            = 4000015
	ErrorCodeInvalidEndDate                              = 4000016
	ErrorCodePaginationTokenExpired                      = 4000017
	ErrorCodeInvalidNotificationType                     = 4000018
	ErrorCodeMultipleFiltersSupplied                     = 4000019
	ErrorCodeInvalidTestNotificationToken                = 4000020
	ErrorCodeInvalidSort                                 = 4000021
	ErrorCodeInvalidProductType                          = 4000022
	ErrorCodeInvalidProductID                            = 4000023
	ErrorCodeInvalidSubscriptionGroupIdentifier          = 4000024
	ErrorCodeInvalidExcludeRevoked                       = 4000025 // deprecated by Apple with excludeRevoked
	ErrorCodeInvalidInAppOwnershipType                   = 4000026
	ErrorCodeInvalidEmptyStorefrontCountryCodeList       = 4000027
	ErrorCodeInvalidStorefrontCountryCode                = 4000028
	ErrorCodeInvalidRevoked                              = 4000030
	ErrorCodeInvalidStatus                               = 4000031
	ErrorCodeAppTransactionIDNotSupported                = 4000048
	ErrorCodeInvalidAppAccountTokenUUID                  = 4000183
	ErrorCodeFamilyTransactionNotSupported               = 4000185
	ErrorCodeTransactionIDIsNotOriginalTransactionID     = 4000187
	ErrorCodeSubscriptionExtensionIneligible             = 4030004
	ErrorCodeSubscriptionMaxExtension                    = 4030005
	ErrorCodeFamilySharedSubscriptionExtensionIneligible = 4030007
	ErrorCodeAccountNotFound                             = 4040001
	ErrorCodeAccountNotFoundRetryable                    = 4040002
	ErrorCodeAppNotFound                                 = 4040003
	ErrorCodeAppNotFoundRetryable                        = 4040004
	ErrorCodeOriginalTransactionIDNotFound               = 4040005
	ErrorCodeOriginalTransactionIDNotFoundRetryable      = 4040006
	ErrorCodeServerNotificationURLNotFound               = 4040007
	ErrorCodeTestNotificationNotFound                    = 4040008
	ErrorCodeStatusRequestNotFound                       = 4040009
	ErrorCodeTransactionIDNotFound                       = 4040010
	ErrorCodeAppTransactionDoesNotExist                  = 4040019
	ErrorCodeRateLimitExceeded                           = 4290000
	ErrorCodeGeneralInternal                             = 5000000
	ErrorCodeGeneralInternalRetryable                    = 5000001
)

// unauthorizedMessage is the Message of a 401, which Apple sends without a
// body: the bearer token was refused, almost always a configuration error.
// (An app with no production release also gets 401 from production.)
const unauthorizedMessage = "unauthorized: check APPSTORE_KEY_ID, APPSTORE_ISSUER_ID, the private key and APPSTORE_BUNDLE_ID (an app never released can only call the sandbox)"

// APIError is a non-2xx answer of the App Store Server API.
type APIError struct {
	// HTTPStatus is the response status code.
	HTTPStatus int
	// Code is Apple's errorCode, kept even when unknown; 0 when the
	// response had no JSON error body (always so for 401).
	Code int64
	// Message is Apple's errorMessage, or a description of the status when
	// there was no JSON body.
	Message string
	// Endpoint and Environment say which call failed; with sandbox fallback
	// Environment is the one that gave this answer.
	Endpoint    Endpoint
	Environment Environment
	// RetryAfter is when Apple allows the next request to Endpoint; set on
	// 429 only. It may already be past when the clocks of Apple and this
	// host differ.
	RetryAfter time.Time
}

// Error describes the failure; it never contains the bearer token.
func (e *APIError) Error() string {
	s := fmt.Sprintf("appstore: %s %s: HTTP %d", e.Environment, e.Endpoint, e.HTTPStatus)
	if e.Code != 0 {
		s += fmt.Sprintf(", error %d", e.Code)
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if !e.RetryAfter.IsZero() {
		s += ", retry after " + e.RetryAfter.UTC().Format(time.RFC3339Nano)
	}
	return s
}

// Retryable reports whether the same request may succeed later: Apple's
// "…RetryableError" codes (4040002, 4040004, 4040006, 5000001) and any 5xx.
// A 429 is not Retryable but RateLimited: it must wait for RetryAfter.
func (e *APIError) Retryable() bool {
	switch e.Code {
	case ErrorCodeAccountNotFoundRetryable, ErrorCodeAppNotFoundRetryable,
		ErrorCodeOriginalTransactionIDNotFoundRetryable, ErrorCodeGeneralInternalRetryable:
		return true
	}
	return e.HTTPStatus >= 500
}

// RateLimited reports whether Apple answered 429; wait until RetryAfter.
func (e *APIError) RateLimited() bool { return e.HTTPStatus == 429 }

// NotFound reports whether the transaction id is unknown in Environment
// (4040010 TransactionIdNotFound, or 4040005 OriginalTransactionIdNotFound
// used by older answers). It triggers the sandbox fallback and, when that
// fails too, means the id exists nowhere.
func (e *APIError) NotFound() bool {
	return e.Code == ErrorCodeTransactionIDNotFound || e.Code == ErrorCodeOriginalTransactionIDNotFound
}

// Unauthorized reports whether Apple refused the bearer token (401).
func (e *APIError) Unauthorized() bool { return e.HTTPStatus == 401 }

// networkError is a request that got no complete answer: connection
// refused or reset, DNS failure, the HTTP client's timeout.
type networkError struct {
	op  string
	err error
}

func (e *networkError) Error() string { return "appstore: " + e.op + ": " + e.err.Error() }
func (e *networkError) Unwrap() error { return e.err }

// IsRetryable reports whether err may go away if the same request is sent
// again later: an APIError that is Retryable, or a network failure or
// timeout of the request itself. It is false for a 429 (see
// APIError.RateLimited), for errors caused by the caller's context ending,
// and for everything else (bad input, undecodable answers).
func IsRetryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.Retryable()
	}
	var netErr *networkError
	if errors.As(err, &netErr) {
		return true
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
