package ledger

import (
	"context"

	"github.com/storesync/storesync/appstore"
)

// QueueCountsCapped is QueueCounts with a cap of limit jobs per state, so a
// test can pass the cap with a few jobs.
func QueueCountsCapped(l *Ledger, ctx context.Context, limit int) ([]QueueCount, error) {
	return l.queueCounts(ctx, limit)
}

// EncodeNotificationPayload is the stored form RecordNotifications writes
// for a notification given its decoded form (nil: decoded here), for the
// external benchmarks.
func EncodeNotificationPayload(signedPayload string, decoded *appstore.DecodedJWS) (signed, dec string, chainSHA []byte, chain string) {
	p := encodePayloadDecoded(signedPayload, decoded)
	return p.Signed, p.Decoded, p.ChainSHA, p.Chain
}
