package ledger_test

import (
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/jobs"
	"github.com/storesync/storesync/jobs/jobstest"
	"github.com/storesync/storesync/ledger"
)

// BenchmarkWebhookNotificationCPU is the CPU the webhook spends on one
// notification without HTTP or Postgres: verifying its signedPayload
// (chain cached, as in steady state), building its ledger record and
// computing the stored form RecordNotifications writes. "redecode" has
// the ledger decode the payload again (as bulk loaders do, and as the
// webhook did); "decoded_once" hands on the verifier's decoded form, as
// the webhook does. Run it on one core:
//
//	go test -run '^$' -bench WebhookNotificationCPU -cpu 1 ./ledger/
func BenchmarkWebhookNotificationCPU(b *testing.B) {
	ca, err := sim.NewCA()
	if err != nil {
		b.Fatal(err)
	}
	v, err := appstore.NewVerifier(appstore.VerifierOptions{
		RootCertificates: [][]byte{ca.RootDER()}, Environment: appstore.Production,
		BundleID: sim.DefaultBundleID, AppAppleID: sim.DefaultAppAppleID,
	})
	if err != nil {
		b.Fatal(err)
	}
	signed := jobstest.NewNote(appstore.Production, time.Now()).Sign(b, ca)
	b.Run("redecode", func(b *testing.B) {
		b.SetBytes(int64(len(signed)))
		b.ReportAllocs()
		for b.Loop() {
			p, err := v.VerifyNotification(signed)
			if err != nil {
				b.Fatal(err)
			}
			n := jobs.NotificationRecord(p, appstore.Production, signed, ledger.SourceWebhook, nil)
			if _, decoded, _, _ := ledger.CompactNotificationPayload(n.SignedPayload); decoded == "" {
				b.Fatal("not compacted")
			}
		}
	})
	b.Run("decoded_once", func(b *testing.B) {
		b.SetBytes(int64(len(signed)))
		b.ReportAllocs()
		for b.Loop() {
			p, d, err := v.VerifyNotificationDecoded(signed)
			if err != nil {
				b.Fatal(err)
			}
			n := jobs.NotificationRecord(p, appstore.Production, signed, ledger.SourceWebhook, nil)
			n.Decoded = d
			if _, decoded, _, _ := ledger.EncodeNotificationPayload(n.SignedPayload, n.Decoded); decoded == "" {
				b.Fatal("not compacted")
			}
		}
	})
}
