package main

import (
	"strings"
	"testing"

	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

func TestDemoUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"demo", "extra"}, {"demo", "--subscribers", "5"}, {"demo", "--days", "0"}, {"demo", "--drop-share", "2"}} {
		code, _, stderr := runCLI(t, nil, args...)
		if code != 2 || !strings.Contains(stderr, "usage: storesync demo") {
			t.Errorf("%v: code %d, stderr %q", args, code, stderr)
		}
	}
}

// The smallest demo, end to end on the test server: live progress, then
// the report, with the ledger equal to the simulator's truth.
func TestDemoSmallPrintsTheReport(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": migrationstest.ServerURL()}
	code, stdout, stderr := runCLI(t, env, "demo", "--subscribers", "10", "--days", "1", "--silent-changes", "2")
	if code != 0 {
		t.Fatalf("demo: code %d\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{"] database: storesync_demo_", "] 1/4 migration: ", "] 2/4 live: simulated day 1 ", "] 3/4 backfill: ",
		"] 4/4 reconciliation: 2 subscriptions changed silently", "\n== storesync demo report\n", "subscribers imported: ",
		"Apple calls: ", "notifications: ", "notifications received per type: ", "silent changes at Apple: 2 (", "reconciliation run 1 (manual ",
		"ledger equals the simulator's truth: yes (every subscription)\n", "demo took "} {
		if !strings.Contains(stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "kept the demo database") {
		t.Errorf("kept the database without --keep:\n%s", stdout)
	}
}

// The per-type table: webhook and backfill columns, the other column only
// when a type has one, "none" for no notifications.
func TestDemoReportNotificationTypes(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	writeNotificationTypes(&b, nil)
	if b.String() != "notifications received per type: none\n" {
		t.Fatalf("no notifications printed %q", b.String())
	}
	b.Reset()
	writeNotificationTypes(&b, []ledger.NotificationTypeCount{{Type: "DID_RENEW", Webhook: 120, Backfill: 41}, {Type: "REFUND", Webhook: 3}})
	want := "notifications received per type:\n" +
		"  type       webhook  backfill\n" +
		"  DID_RENEW  120      41\n" +
		"  REFUND     3        0\n"
	if b.String() != want {
		t.Fatalf("got\n%q\nwant\n%q", b.String(), want)
	}
	b.Reset()
	writeNotificationTypes(&b, []ledger.NotificationTypeCount{{Type: "EXPIRED", Other: 2}})
	if !strings.Contains(b.String(), "other") || !strings.Contains(b.String(), "  EXPIRED  0        0         2") {
		t.Fatalf("other column: %q", b.String())
	}
}
