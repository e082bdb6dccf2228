package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/appstore/sim/simtest"
	"github.com/storesync/storesync/jobs/jobstest"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

// TestStatusShowsKeptAsideNotifications: the section counts kept-aside
// notifications by reason and names what the latest one claimed, so a
// wrong bundle id or notification URL is visible.
func TestStatusShowsKeptAsideNotifications(t *testing.T) {
	t.Parallel()
	url, pool := migrationstest.NewDatabase(t)
	env := map[string]string{"DATABASE_URL": url}
	if code, stdout, _ := runCLI(t, env, "status"); code != 0 || !strings.Contains(stdout, "== Kept-aside notifications ==\nno notifications kept aside") {
		t.Fatalf("empty: code %d\n%s", code, stdout)
	}
	l := ledger.New(pool)
	for _, k := range []ledger.KeptAside{
		{UUID: "0b5f9d4e-1f7a-4c39-9d1e-3b0c2c8e0a01", Reason: "INVALID_APP_IDENTIFIER", ClaimedBundleID: "com.other.app",
			ClaimedEnvironment: appstore.Production, Type: "DID_RENEW", SignedPayload: "a.b.c"},
		{UUID: "0b5f9d4e-1f7a-4c39-9d1e-3b0c2c8e0a02", Reason: "INVALID_APP_IDENTIFIER", ClaimedBundleID: "com.other.app",
			ClaimedEnvironment: appstore.Sandbox, Type: "REFUND", SignedPayload: "a.b.c"},
		{UUID: "0b5f9d4e-1f7a-4c39-9d1e-3b0c2c8e0a02", Reason: "INVALID_APP_IDENTIFIER", SignedPayload: "a.b.c"}, // a redelivery
		{UUID: "0b5f9d4e-1f7a-4c39-9d1e-3b0c2c8e0a03", Reason: "INVALID_ENVIRONMENT", ClaimedBundleID: "com.example.storesync",
			ClaimedEnvironment: appstore.Xcode, SignedPayload: "a.b.c"},
	} {
		if err := l.KeepAside(context.Background(), k); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.KeepAside(context.Background(), ledger.KeptAside{UUID: "not-a-uuid", Reason: "INVALID_APP_IDENTIFIER"}); err == nil ||
		!strings.Contains(err.Error(), "not-a-uuid") {
		t.Fatalf("a non-UUID kept aside: %v", err)
	}
	code, stdout, stderr := runCLI(t, env, "status")
	if code != 0 {
		t.Fatalf("code %d\n%s%s", code, stdout, stderr)
	}
	section := stdout[strings.Index(stdout, "== Kept-aside notifications =="):]
	for _, want := range []string{
		"INVALID_APP_IDENTIFIER  2              3           ", "com.other.app          Sandbox",
		"INVALID_ENVIRONMENT     1              1           ", "com.example.storesync  Xcode",
		"APPSTORE_BUNDLE_ID",
	} {
		if !strings.Contains(section, want) {
			t.Errorf("status lacks %q:\n%s", want, section)
		}
	}
}

// TestResubmitKeptAsideStoresWhatVerifiesNow: a notification kept aside
// under an earlier, wrong configuration verifies with the current one:
// `resubmit` stores it with its processing job and status no
// longer lists it; one for another app stays.
func TestResubmitKeptAsideStoresWhatVerifiesNow(t *testing.T) {
	t.Parallel()
	simulator := simtest.StartTest(t, sim.Options{Seed: 3, Subscribers: 10})
	env := simCLIEnv(t, simulator)
	pool := openTestPool(t, env["DATABASE_URL"])
	l := ledger.New(pool)
	ours := jobstest.NewNote(appstore.Production, simulator.Now())
	other := jobstest.NewNote(appstore.Production, simulator.Now())
	other.N.Data.BundleID = "com.other.app"
	for _, n := range []*jobstest.Note{ours, other} {
		if err := l.KeepAside(t.Context(), ledger.KeptAside{UUID: n.N.NotificationUUID, Reason: "INVALID_APP_IDENTIFIER",
			ClaimedBundleID: n.N.Data.BundleID, ClaimedEnvironment: appstore.Production, SignedPayload: n.Sign(t, simulator.CA())}); err != nil {
			t.Fatal(err)
		}
	}
	code, stdout, stderr := runCLI(t, env, "resubmit")
	if code != 0 || !strings.Contains(stdout, "resubmitted 1 kept-aside notification(s) (0 already in the ledger)\n") ||
		!strings.Contains(stdout, "still kept aside: 1 with INVALID_APP_IDENTIFIER\n") {
		t.Fatalf("code %d\n%s%s", code, stdout, stderr)
	}
	var stored, jobs int
	if err := pool.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM notifications WHERE notification_uuid = $1),
		(SELECT count(*) FROM river_job WHERE kind = 'process_notification')`, ours.N.NotificationUUID).Scan(&stored, &jobs); err != nil {
		t.Fatal(err)
	}
	if stored != 1 || jobs != 1 {
		t.Fatalf("stored %d, jobs %d", stored, jobs)
	}
	if code, stdout, _ := runCLI(t, env, "status"); code != 0 || !strings.Contains(stdout, "INVALID_APP_IDENTIFIER  1 ") ||
		!strings.Contains(stdout, "com.other.app") {
		t.Fatalf("status after the resubmission: code %d\n%s", code, stdout)
	}
}

// TestServeKeepsAsideAndStatusShowsIt, through the binary's own wiring: a
// notification signed by the simulator's CA for another bundle is answered
// 400 by serve's webhook and appears in status; a forged copy does not.
func TestServeKeepsAsideAndStatusShowsIt(t *testing.T) {
	t.Parallel()
	simulator := simtest.StartTest(t, sim.Options{Seed: 4, Subscribers: 10})
	env := simCLIEnv(t, simulator)
	out := startServe(t, env)
	line := out.String()[strings.Index(out.String(), "serving on http://")+len("serving on http://"):]
	webhook := "http://" + line[:strings.IndexByte(line, ' ')] + "/webhooks/appstore"
	post := func(signed string) int {
		t.Helper()
		resp, err := http.Post(webhook, "application/json", strings.NewReader(`{"signedPayload":"`+signed+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	n := jobstest.NewNote(appstore.Sandbox, simulator.Now())
	n.N.Data.BundleID = "com.other.app"
	signed := n.Sign(t, simulator.CA())
	if code := post(signed); code != 400 {
		t.Fatalf("another bundle's notification: %d, want 400", code)
	}
	forged := jobstest.NewNote(appstore.Production, simulator.Now())
	forged.N.Data.BundleID = "com.forged.app"
	if code := post(jobstest.NewChain(t, true, "").SignNote(t, forged)); code != 400 {
		t.Fatalf("forged notification: %d, want 400", code)
	}
	code, stdout, stderr := runCLI(t, env, "status")
	if code != 0 {
		t.Fatalf("status: code %d\n%s%s", code, stdout, stderr)
	}
	section := stdout[strings.Index(stdout, "== Kept-aside notifications =="):]
	if !strings.Contains(section, "INVALID_APP_IDENTIFIER  1 ") || !strings.Contains(section, "com.other.app          Sandbox") ||
		strings.Contains(section, "com.forged.app") {
		t.Fatalf("status:\n%s", section)
	}
	pool := openTestPool(t, env["DATABASE_URL"])
	var stored int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM notifications`).Scan(&stored); err != nil || stored != 0 {
		t.Fatalf("%d notifications stored in the ledger (%v)", stored, err)
	}
}
