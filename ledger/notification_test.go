package ledger_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

func testNotification(i int, source string) ledger.Notification {
	return ledger.Notification{
		UUID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), Type: "DID_RENEW", Subtype: "BILLING_RECOVERY",
		Environment: appstore.Sandbox, SignedDate: appstore.Millis(1700000000000 + i),
		OriginalTransactionID: fmt.Sprint(2000000000000000 + i), TransactionID: fmt.Sprint(2000000000000100 + i),
		SignedPayload: fmt.Sprintf("h.p%d.s", i), Source: source,
	}
}

// TestRecordNotificationsInOneRoundTrip stores a batch mixing new
// notifications, one already stored and one repeated within the batch:
// each is reported new exactly once, and what is read back is what was
// given (empty ids as NULL, send attempts as JSON).
func TestRecordNotificationsInOneRoundTrip(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	l := ledger.New(pool)
	ctx := context.Background()

	first := testNotification(1, ledger.SourceWebhook)
	if ok, err := l.RecordNotification(ctx, first); err != nil || !ok {
		t.Fatalf("first: %v %v", ok, err)
	}
	if ok, err := l.RecordNotification(ctx, first); err != nil || ok {
		t.Fatalf("first again: %v %v, want not new", ok, err)
	}

	withAttempts := testNotification(3, ledger.SourceBackfill)
	withAttempts.SendAttempts = []appstore.SendAttemptItem{{AttemptDate: 1700000000123, SendAttemptResult: "TIMED_OUT"}}
	noIDs := testNotification(4, ledger.SourceReconcile)
	noIDs.OriginalTransactionID, noIDs.TransactionID, noIDs.Subtype = "", "", ""
	batch := []ledger.Notification{testNotification(2, ledger.SourceWebhook), first, withAttempts, testNotification(2, ledger.SourceResync), noIDs}
	var inserted []bool
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		inserted, err = l.WithTx(tx).RecordNotifications(ctx, batch)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, false, true, false, true}; !reflect.DeepEqual(inserted, want) {
		t.Fatalf("inserted %v, want %v", inserted, want)
	}
	var rows int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM notifications`).Scan(&rows); err != nil || rows != 4 {
		t.Fatalf("%d rows (%v), want 4", rows, err)
	}
	for _, want := range []ledger.Notification{first, batch[0], withAttempts, noIDs} {
		got, err := l.NotificationByUUID(ctx, want.UUID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Notification, want) {
			t.Errorf("read back\n got %+v\nwant %+v", got.Notification, want)
		}
	}
	var nullIDs bool
	if err := pool.QueryRow(ctx, `SELECT original_transaction_id IS NULL AND transaction_id IS NULL FROM notifications
		WHERE notification_uuid = $1`, noIDs.UUID).Scan(&nullIDs); err != nil || !nullIDs {
		t.Fatalf("empty ids not stored as NULL (%v)", err)
	}

	if got, err := l.RecordNotifications(ctx, nil); err != nil || len(got) != 0 {
		t.Fatalf("empty batch: %v %v", got, err)
	}
}

// TestRecordNotificationsStoresNoneOfAFailedBatch: an invalid notification
// is refused before anything is sent, naming it, and a database error
// stores none of the batch, even outside a transaction.
func TestRecordNotificationsStoresNoneOfAFailedBatch(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	l := ledger.New(pool)
	ctx := context.Background()

	badUUID := testNotification(2, ledger.SourceWebhook)
	badUUID.UUID = "not-a-uuid"
	badSource := testNotification(3, "email")
	badBytes := testNotification(4, ledger.SourceWebhook)
	badBytes.Type = "DID_RENEW\x00" // Postgres refuses NUL in text
	noPayload := testNotification(7, ledger.SourceWebhook)
	noPayload.SignedPayload = ""
	badUTF8 := testNotification(6, ledger.SourceWebhook)
	badUTF8.Subtype = "\xff" // the server refuses it: the whole statement fails
	for _, c := range []struct {
		bad  ledger.Notification
		want string
	}{
		{badUUID, `"not-a-uuid" is not a UUID`},
		{badSource, `unknown source "email"`},
		{badBytes, badBytes.UUID + ": notificationType holds a NUL byte"},
		{noPayload, noPayload.UUID + ": no signedPayload"},
		{badUTF8, "storing 3 notifications"},
	} {
		got, err := l.RecordNotifications(ctx, []ledger.Notification{testNotification(1, ledger.SourceWebhook), c.bad, testNotification(5, ledger.SourceWebhook)})
		if err == nil || !strings.Contains(err.Error(), c.want) || got != nil {
			t.Errorf("%s: %v %v, want an error containing %q", c.bad.UUID, got, err, c.want)
		}
		if _, err := l.RecordNotification(ctx, c.bad); err == nil {
			t.Errorf("%s alone was stored", c.bad.UUID)
		}
	}
	var rows int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM notifications`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("%d rows (%v) stored from failed batches", rows, err)
	}
}

// TestRecordNotificationsStoresThePayloadDecoded: a notification as Apple
// signs it (three copies of one x5c chain) is stored decoded, in well under
// half its size, and read back byte for byte; a payload that cannot be
// decoded exactly, and a row written before migration 005, read back as
// they are.
func TestRecordNotificationsStoresThePayloadDecoded(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	l := ledger.New(pool)
	ctx := context.Background()
	ca, err := sim.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	tx, err := ca.Sign(appstore.TransactionPayload{TransactionID: "2000000000000001", OriginalTransactionID: "2000000000000001",
		BundleID: sim.DefaultBundleID, ProductID: "com.example.monthly", Environment: appstore.Sandbox})
	if err != nil {
		t.Fatal(err)
	}
	ri, err := ca.Sign(appstore.RenewalInfoPayload{OriginalTransactionID: "2000000000000001", AutoRenewStatus: 1, Environment: appstore.Sandbox})
	if err != nil {
		t.Fatal(err)
	}
	signed, err := ca.Sign(appstore.NotificationPayload{NotificationType: "DID_RENEW", NotificationUUID: testNotification(1, "").UUID,
		Data: &appstore.NotificationData{BundleID: sim.DefaultBundleID, Environment: appstore.Sandbox,
			SignedTransactionInfo: tx, SignedRenewalInfo: ri}})
	if err != nil {
		t.Fatal(err)
	}
	apple := testNotification(1, ledger.SourceWebhook)
	apple.SignedPayload = signed
	padded := testNotification(2, ledger.SourceWebhook)
	padded.SignedPayload = "eyJhbGciOiJFUzI1NiJ9.eyJhIjoxfQ==.c2ln" // not canonical base64url
	if _, err := l.RecordNotifications(ctx, []ledger.Notification{apple, padded}); err != nil {
		t.Fatal(err)
	}
	old := testNotification(3, ledger.SourceWebhook)
	old.SignedPayload = signed
	if _, err := pool.Exec(ctx, `INSERT INTO notifications (notification_uuid, notification_type, subtype, environment,
			signed_date, original_transaction_id, transaction_id, signed_payload, source)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, old.UUID, old.Type, old.Subtype, string(old.Environment),
		int64(old.SignedDate), old.OriginalTransactionID, old.TransactionID, old.SignedPayload, old.Source); err != nil {
		t.Fatal(err)
	}

	var rawNull bool
	var stored int
	if err := pool.QueryRow(ctx, `SELECT signed_payload IS NULL, pg_column_size(signed_payload_decoded)
		FROM notifications WHERE notification_uuid = $1`, apple.UUID).Scan(&rawNull, &stored); err != nil {
		t.Fatal(err)
	}
	if !rawNull || stored*2 > len(signed) {
		t.Errorf("Apple-shaped payload of %d bytes: raw column null %v, decoded form stored in %d bytes, want under half",
			len(signed), rawNull, stored)
	}
	var decodedNull bool
	if err := pool.QueryRow(ctx, `SELECT signed_payload_decoded IS NULL FROM notifications WHERE notification_uuid = $1`,
		padded.UUID).Scan(&decodedNull); err != nil || !decodedNull {
		t.Errorf("non-canonical payload stored decoded (%v)", err)
	}
	// Migration 005's form: decoded, the chain inside.
	parts := strings.Split(signed, ".")
	payloadJSON, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	decoded005 := testNotification(4, ledger.SourceWebhook)
	decoded005.SignedPayload = signed
	if _, err := pool.Exec(ctx, `INSERT INTO notifications (notification_uuid, notification_type, signed_payload_decoded, source)
		VALUES ($1, $2, $3, $4)`, decoded005.UUID, decoded005.Type, parts[0]+"."+string(payloadJSON)+"."+parts[2], decoded005.Source); err != nil {
		t.Fatal(err)
	}
	for _, want := range []ledger.Notification{apple, padded, old, decoded005} {
		got, err := l.NotificationByUUID(ctx, want.UUID)
		if err != nil {
			t.Fatal(err)
		}
		if got.SignedPayload != want.SignedPayload || got.PayloadJSON != "" {
			t.Errorf("%s: signedPayload read back differs from the one stored", want.UUID)
		}
		// For a reader of the payload: its JSON when stored decoded (what
		// the signedPayload's payload segment decodes to), else the JWS.
		p, err := l.NotificationPayloadByUUID(ctx, want.UUID)
		if err != nil {
			t.Fatal(err)
		}
		storedDecoded := want.UUID == apple.UUID || want.UUID == decoded005.UUID
		seg, _ := base64.RawURLEncoding.DecodeString(strings.Split(want.SignedPayload, ".")[1])
		switch {
		case storedDecoded && (p.PayloadJSON != string(seg) || p.SignedPayload != ""):
			t.Errorf("%s: payload %.40q…, signedPayload %.40q…; want the payload segment decoded only", want.UUID, p.PayloadJSON, p.SignedPayload)
		case !storedDecoded && (p.PayloadJSON != "" || p.SignedPayload != want.SignedPayload):
			t.Errorf("%s: payload %.40q…, signedPayload %.40q…; want the signedPayload only", want.UUID, p.PayloadJSON, p.SignedPayload)
		}
		if p.Type != want.Type || p.UUID != want.UUID {
			t.Errorf("%s: read as %+v", want.UUID, p.Notification)
		}
	}
	if _, err := pool.Exec(ctx, `UPDATE notifications SET signed_payload = 'x' WHERE notification_uuid = $1`, apple.UUID); err == nil {
		t.Error("a row holding both forms was accepted")
	}
}

func TestCountNotificationsBySource(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	l := ledger.New(pool)
	ctx := context.Background()
	batch := []ledger.Notification{testNotification(1, ledger.SourceWebhook), testNotification(2, ledger.SourceWebhook),
		testNotification(3, ledger.SourceBackfill), testNotification(1, ledger.SourceBackfill)} // 1 again: stays a webhook one
	if _, err := l.RecordNotifications(ctx, batch); err != nil {
		t.Fatal(err)
	}
	for source, want := range map[string]int64{ledger.SourceWebhook: 2, ledger.SourceBackfill: 1, ledger.SourceResync: 0, "nonsense": 0} {
		if n, err := l.CountNotifications(ctx, source); err != nil || n != want {
			t.Errorf("%s: %d, %v; want %d", source, n, err, want)
		}
	}
}
