package jobstest

import (
	"crypto/rand"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/sim"
)

// noteSeq makes transaction ids and UUIDs of built notifications distinct.
var noteSeq atomic.Int64

// Note is a notification for a test to sign, with its inner payloads. Tx
// or RI nil leaves that inner field out of the signed notification.
type Note struct {
	N  appstore.NotificationPayload
	Tx *appstore.TransactionPayload
	RI *appstore.RenewalInfoPayload
}

// NewNote returns a DID_RENEW notification of a fresh subscription in env,
// signed at signed, for the simulator's default bundle and app: its
// originalTransactionId and notificationUUID are new in this test binary.
func NewNote(env appstore.Environment, signed time.Time) *Note {
	seq := noteSeq.Add(1)
	otid := fmt.Sprintf("%d", 3000000000000000+seq)
	ms := appstore.MillisOf(signed)
	return &Note{
		N: appstore.NotificationPayload{
			NotificationType: "DID_RENEW", NotificationUUID: UUID(seq), Version: "2.0", SignedDate: ms,
			Data: &appstore.NotificationData{
				AppAppleID: sim.DefaultAppAppleID, BundleID: sim.DefaultBundleID,
				BundleVersion: "1.0", Environment: env, Status: appstore.StatusActive,
			},
		},
		Tx: &appstore.TransactionPayload{
			TransactionID: otid, OriginalTransactionID: otid, WebOrderLineItemID: otid,
			BundleID: sim.DefaultBundleID, ProductID: "com.example.monthly", SubscriptionGroupIdentifier: "21000001",
			PurchaseDate: ms, OriginalPurchaseDate: ms, ExpiresDate: appstore.MillisOf(signed.Add(30 * 24 * time.Hour)),
			Quantity: 1, Type: "Auto-Renewable Subscription", InAppOwnershipType: "PURCHASED", SignedDate: ms, Environment: env,
			TransactionReason: "PURCHASE", Storefront: "USA", Currency: "USD", Price: 9990,
		},
		RI: &appstore.RenewalInfoPayload{
			OriginalTransactionID: otid, AutoRenewProductID: "com.example.monthly", ProductID: "com.example.monthly",
			AutoRenewStatus: 1, SignedDate: ms, Environment: env, RenewalDate: appstore.MillisOf(signed.Add(30 * 24 * time.Hour)),
		},
	}
}

// NextUUID returns a notificationUUID no other Note of this test binary
// has.
func NextUUID() string { return UUID(noteSeq.Add(1)) }

// UUID returns a version 4 UUID whose last 8 bytes are seq, so UUIDs of
// distinct seq never collide; the first 8 are random, so those of separate
// runs differ too.
func UUID(seq int64) string {
	var b [16]byte
	_, _ = rand.Read(b[:8])
	for i := 0; i < 8; i++ {
		b[8+i] = byte(seq >> (8 * (7 - i)))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Sign signs the inner payloads and then the notification with ca, as
// Apple signs a notification around its signed inner fields; n is not
// changed.
func (n *Note) Sign(t testing.TB, ca *sim.CA) string {
	t.Helper()
	p := n.N
	if p.Data != nil {
		d := *p.Data
		p.Data = &d
		var err error
		if n.Tx != nil {
			if d.SignedTransactionInfo, err = ca.Sign(n.Tx); err != nil {
				t.Fatal(err)
			}
		}
		if n.RI != nil {
			if d.SignedRenewalInfo, err = ca.Sign(n.RI); err != nil {
				t.Fatal(err)
			}
		}
	}
	s, err := ca.Sign(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
