package appstore

import (
	"encoding/json"
	"strings"
)

// PeekTransactionIDs decodes a signedTransactionInfo or signedRenewalInfo
// WITHOUT verifying it and returns the originalTransactionId and
// transactionId its payload holds; a field the payload lacks is "" (renewal
// info has no transactionId).
//
// The values are untrusted by themselves. They exist for one use: the JWS
// is an inner field (data.signedTransactionInfo or data.signedRenewalInfo)
// of a notification whose signedPayload the caller has just verified with
// VerifyNotification. That signature covers the inner JWS as bytes, so they
// are exactly what Apple signed, but the inner JWS's own signature, chain,
// bundleId and environment are NOT checked here. Use the values only to
// label what is stored (e.g. the notifications table's columns); never
// act on them: verify the inner JWS (VerifyTransaction, VerifyRenewalInfo
// or VerifyNotificationDeep) before applying anything it says.
//
// An error is a *VerificationError with status VERIFICATION_FAILURE: the
// JWS does not have three parts, its payload is not base64url or not a JSON
// object, or an id is not a string. The ids are then "".
func PeekTransactionIDs(jws string) (originalTransactionID, transactionID string, err error) {
	payload, err := peekPayload(jws)
	if err != nil {
		return "", "", err
	}
	var ids transactionIDs
	if !ids.decodeFast(string(payload)) {
		ids = transactionIDs{}
		if err := json.Unmarshal(payload, &ids); err != nil {
			return "", "", verificationErr(VerificationFailure, "payload does not decode", err)
		}
	}
	return ids.OriginalTransactionID, ids.TransactionID, nil
}

// peekPayload returns the decoded payload of a compact JWS, checking only
// its shape (three parts, base64url, a JSON object): unlike parseJWS it
// leaves the header (three certificates) and the signature undecoded,
// since nothing is verified.
func peekPayload(s string) ([]byte, error) {
	_, rest, ok := strings.Cut(s, ".")
	p, sig, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || strings.IndexByte(sig, '.') >= 0 {
		return nil, verificationErr(VerificationFailure, "JWS does not have exactly three dot-separated parts", nil)
	}
	payload, err := decodeSegment(p)
	if err != nil {
		return nil, verificationErr(VerificationFailure, "JWS payload is not base64url", err)
	}
	if !isJSONObject(payload) {
		return nil, verificationErr(VerificationFailure, "JWS payload is not a JSON object", nil)
	}
	return payload, nil
}

// transactionIDs is the part of a transaction or renewal info payload
// PeekTransactionIDs reads. encoding/json matches these keys as it does
// for TransactionPayload and RenewalInfoPayload, so the values are those
// verification would decode from the same bytes.
type transactionIDs struct {
	OriginalTransactionID string `json:"originalTransactionId"`
	TransactionID         string `json:"transactionId"`
}

var transactionIDKeys = []string{"originalTransactionId", "transactionId"}

// decodeFast reads the two ids with the fast reader (skipping the rest); it
// returns false, and the caller uses encoding/json, when the payload is not
// plainly shaped.
func (ids *transactionIDs) decodeFast(s string) bool {
	r := &jsonReader{s: s}
	ok := r.object(transactionIDKeys, false, func(k int) bool {
		if k == 0 {
			return r.str(&ids.OriginalTransactionID)
		}
		return r.str(&ids.TransactionID)
	})
	return ok && r.end()
}
