package ledger_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/applevectors"
	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/jobs/jobstest"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

// TestNotificationColumnsWhicheverPathBuiltThem: a notification stored by
// the webhook's path (RecordNotifications given the verifier's decoded
// form), by RecordNotifications decoding it itself, and the columns a bulk
// loader computes (CompactNotificationPayload) are the same bytes, for
// simulator data and Apple's vector, and read back as Apple's JWS.
func TestNotificationColumnsWhicheverPathBuiltThem(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	l := ledger.New(pool)
	ctx := context.Background()
	ca, err := sim.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	v := simVerifier(t, ca)
	type input struct {
		name, jws string
		decoded   *appstore.DecodedJWS
	}
	var inputs []input
	for i, n := range signNotes(t, ca, 2) {
		_, d, err := v.VerifyNotificationDecoded(n.jws)
		if err != nil || d == nil {
			t.Fatalf("sim %d: %v", i, err)
		}
		inputs = append(inputs, input{"sim", n.jws, d})
	}
	// Apple's vector is not signed by a root this test trusts: decode it
	// as the verifier does (lenient base64url).
	apple := strings.TrimSpace(applevectors.Text(t, "tests/resources/mock_signed_data/testNotification"))
	parts := strings.Split(apple, ".")
	header, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	payload, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	inputs = append(inputs, input{"apple", apple, &appstore.DecodedJWS{Header: header, Payload: payload}})

	type columns struct {
		signed, decoded string
		chainSHA        []byte
	}
	read := func(uuid string) (c columns, back string) {
		t.Helper()
		var s, d *string
		if err := pool.QueryRow(ctx, `SELECT signed_payload, signed_payload_decoded, payload_chain
			FROM notifications WHERE notification_uuid = $1`, uuid).Scan(&s, &d, &c.chainSHA); err != nil {
			t.Fatal(err)
		}
		if s != nil {
			c.signed = *s
		}
		if d != nil {
			c.decoded = *d
		}
		n, err := l.NotificationByUUID(ctx, uuid)
		if err != nil {
			t.Fatal(err)
		}
		return c, n.SignedPayload
	}
	for _, in := range inputs {
		webhook, self := jobstest.NextUUID(), jobstest.NextUUID()
		ns := []ledger.Notification{
			{UUID: webhook, Type: "DID_RENEW", Environment: appstore.Sandbox, SignedPayload: in.jws, Source: ledger.SourceWebhook, Decoded: in.decoded},
			{UUID: self, Type: "DID_RENEW", Environment: appstore.Sandbox, SignedPayload: in.jws, Source: ledger.SourceWebhook},
		}
		if _, err := l.RecordNotifications(ctx, ns); err != nil {
			t.Fatal(err)
		}
		var want columns
		want.signed, want.decoded, want.chainSHA, _ = ledger.CompactNotificationPayload(in.jws)
		if want.decoded == "" || want.chainSHA == nil {
			t.Errorf("%s: not in the best form (decoded, chain once)", in.name)
		}
		for _, uuid := range []string{webhook, self} {
			got, back := read(uuid)
			if got.signed != want.signed || got.decoded != want.decoded || !bytes.Equal(got.chainSHA, want.chainSHA) {
				t.Errorf("%s (%s): stored columns differ from CompactNotificationPayload's", in.name, uuid)
			}
			if back != in.jws {
				t.Errorf("%s (%s): read back differs from what Apple signed", in.name, uuid)
			}
		}
	}
}
