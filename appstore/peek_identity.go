package appstore

// NotificationIdentity is what a notification says about itself: its
// UUID and type, and the app and environment it claims.
type NotificationIdentity struct {
	UUID, Type, Subtype string
	BundleID            string
	AppAppleID          int64
	Environment         Environment // "" when the payload names none
}

// PeekNotificationIdentity decodes a notification's signedPayload WITHOUT
// verifying it and returns its identity, read as verification reads it
// (data, else summary, else externalPurchaseToken, else appData).
//
// The result is untrusted by itself. Its one use is to label a
// notification that VerifyNotification refused with INVALID_APP_IDENTIFIER
// or INVALID_ENVIRONMENT: those checks run only after the signature and the
// certificate chain verified, so the identity is what Apple signed, just
// for another app or environment than the verifier's (the webhook keeps
// such notifications aside, see ledger.KeepAside). An error is a
// *VerificationError with status VERIFICATION_FAILURE (not a JWS, not a
// notification).
func PeekNotificationIdentity(signedPayload string) (NotificationIdentity, error) {
	b, err := peekPayload(signedPayload)
	if err != nil {
		return NotificationIdentity{}, err
	}
	var n NotificationPayload
	if err := decodeNotification(b, &n); err != nil {
		return NotificationIdentity{}, verificationErr(VerificationFailure, "payload is not a notification", err)
	}
	id := NotificationIdentity{UUID: n.NotificationUUID, Type: n.NotificationType, Subtype: n.Subtype}
	id.BundleID, id.AppAppleID, id.Environment = notificationIdentity(&n)
	return id, nil
}
