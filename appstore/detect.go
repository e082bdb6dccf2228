package appstore

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
)

// PayloadKind is what an App Store compact JWS holds. Apple gives no field
// saying so, and each kind has its own checks (only a notification's
// appAppleId is checked), so a tool handed "some JWS" must tell first.
type PayloadKind int

const (
	// PayloadDetect, the zero value, asks VerifySignedData to detect the
	// kind with DetectPayload.
	PayloadDetect PayloadKind = iota
	// PayloadNotification is a notification's signedPayload (V2).
	PayloadNotification
	// PayloadTransaction is a signedTransactionInfo.
	PayloadTransaction
	// PayloadRenewalInfo is a signedRenewalInfo.
	PayloadRenewalInfo
)

// String returns "notification", "transaction", "renewal info", or
// "detect" for PayloadDetect.
func (k PayloadKind) String() string {
	switch k {
	case PayloadDetect:
		return "detect"
	case PayloadNotification:
		return "notification"
	case PayloadTransaction:
		return "transaction"
	case PayloadRenewalInfo:
		return "renewal info"
	}
	return fmt.Sprintf("PayloadKind(%d)", int(k))
}

// ParsePayloadKind reads a kind name in any case: "notification",
// "transaction", "renewal" or "renewalinfo". The empty string is
// PayloadDetect. Any other name is an error listing the accepted ones.
func ParsePayloadKind(s string) (PayloadKind, error) {
	switch strings.ToLower(s) {
	case "":
		return PayloadDetect, nil
	case "notification":
		return PayloadNotification, nil
	case "transaction":
		return PayloadTransaction, nil
	case "renewal", "renewalinfo":
		return PayloadRenewalInfo, nil
	}
	return PayloadDetect, fmt.Errorf("appstore: unknown payload kind %q: use notification, transaction or renewal", s)
}

// PayloadClaims are what a payload says about its own app and environment
// before verification. They are untrusted: use them only as defaults that
// verification then checks (VerifySignedData does), never to decide
// anything.
type PayloadClaims struct {
	BundleID    string
	AppAppleID  int64 // 0 when the payload names none (only notifications do)
	Environment Environment
}

// DetectPayload decodes the payload of jws WITHOUT verifying it and tells
// its kind and claims: notificationType means a notification (its identity
// read from data, else summary, else externalPurchaseToken, else appData,
// as verification reads it); transactionId or bundleId means a
// transaction; anything else is renewal info.
//
// Why bundleId decides: every transaction Apple signs carries its app's
// bundleId and renewal info never does (JWSRenewalInfoDecodedPayload has no
// such field), while Apple's own minimal vectors carry neither transactionId
// nor any renewal field (mock_signed_data/renewalInfo is only environment
// and signedDate; mock_signed_data/transactionInfo adds bundleId). Reading
// such renewal info as a transaction would then fail on its missing bundleId
// (INVALID_APP_IDENTIFIER) instead of the check Apple's verifier makes for
// renewal info, its environment (INVALID_ENVIRONMENT).
//
// It never fails: a JWS whose payload does not decode (not three parts, not
// base64url, not a JSON object) is reported as a notification with no
// claims, so that verifying it then says which check fails. Trailing '='
// padding is tolerated here only; verification rejects it.
func DetectPayload(jws string) (PayloadKind, PayloadClaims) {
	var claims PayloadClaims
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		return PayloadNotification, claims
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return PayloadNotification, claims
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return PayloadNotification, claims
	}
	type identity struct {
		BundleID    string      `json:"bundleId"`
		AppAppleID  Int         `json:"appAppleId"`
		Environment Environment `json:"environment"`
	}
	var id identity
	kind := PayloadRenewalInfo
	switch _, n := m["notificationType"]; {
	case n:
		kind = PayloadNotification
		for _, k := range []string{"data", "summary", "externalPurchaseToken", "appData"} {
			if raw, ok := m[k]; ok && !bytes.Equal(raw, []byte("null")) {
				_ = json.Unmarshal(raw, &id)
				break
			}
		}
		id.Environment, _ = PeekNotificationEnvironment(jws)
	case hasKey(m, "transactionId") || hasKey(m, "bundleId"):
		kind = PayloadTransaction
		_ = json.Unmarshal(b, &id)
	default:
		_ = json.Unmarshal(b, &id)
	}
	return kind, PayloadClaims{BundleID: id.BundleID, AppAppleID: int64(id.AppAppleID), Environment: id.Environment}
}

func hasKey(m map[string]json.RawMessage, k string) bool { _, ok := m[k]; return ok }
