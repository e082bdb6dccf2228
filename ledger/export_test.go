package ledger

import "github.com/storesync/storesync/appstore"

// EncodeNotificationPayload is the stored form RecordNotifications writes
// for a notification given its decoded form (nil: decoded here), for the
// external benchmarks.
func EncodeNotificationPayload(signedPayload string, decoded *appstore.DecodedJWS) (signed, dec string, chainSHA []byte, chain string) {
	p := encodePayloadDecoded(signedPayload, decoded)
	return p.Signed, p.Decoded, p.ChainSHA, p.Chain
}
