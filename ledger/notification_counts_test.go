package ledger_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

// TestCountNotificationsByType: per type (subtypes together), by the
// source that stored each first; a repeat from another source counts once.
func TestCountNotificationsByType(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	l := ledger.New(pool)
	ctx := context.Background()
	if got, err := l.CountNotificationsByType(ctx); err != nil || len(got) != 0 {
		t.Fatalf("empty ledger: %v, %v", got, err)
	}
	refund := testNotification(4, ledger.SourceBackfill)
	refund.Type, refund.Subtype = "REFUND", ""
	renewed := testNotification(5, ledger.SourceResync)
	renewed.Subtype = ""
	batch := []ledger.Notification{testNotification(1, ledger.SourceWebhook), testNotification(2, ledger.SourceWebhook),
		testNotification(3, ledger.SourceBackfill), testNotification(1, ledger.SourceBackfill), refund, renewed}
	if _, err := l.RecordNotifications(ctx, batch); err != nil {
		t.Fatal(err)
	}
	got, err := l.CountNotificationsByType(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []ledger.NotificationTypeCount{{Type: "DID_RENEW", Webhook: 2, Backfill: 1, Other: 1}, {Type: "REFUND", Backfill: 1}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if got[0].Total() != 4 {
		t.Fatalf("total %d", got[0].Total())
	}
}
