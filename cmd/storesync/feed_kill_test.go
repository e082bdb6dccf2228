package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/appstore/sim/simtest"
	"github.com/storesync/storesync/jobs/jobstest"
	"github.com/storesync/storesync/ledger"
)

// TestServeKilledBetweenCommitAndDeliveryLosesNoEvent: a serve process
// (this test binary, a process of its own) migrates subscriptions whose
// changes write feed events; the receiver takes a few, then holds the next
// delivery open while more events commit, and serve is SIGKILLed. A new
// serve finishes: the receiver gets every event of the ledger, in feed
// order per subscription, each signature verified by the Standard
// Webhooks library.
func TestServeKilledBetweenCommitAndDeliveryLosesNoEvent(t *testing.T) {
	t.Parallel()
	simulator := simtest.StartTest(t, sim.Options{Seed: 21, Subscribers: 40})
	env := simCLIEnv(t, simulator)
	pool := openTestPool(t, env["DATABASE_URL"])
	ctx := context.Background()

	rc, err := jobstest.NewFeedReceiver("")
	if err != nil {
		t.Fatal(err)
	}
	const gateAt = 5
	openGate := rc.GateAfter(gateAt)
	srv := httptest.NewServer(rc)
	defer srv.Close()
	code, stdout, stderr := runCLI(t, env, "endpoints", "add", srv.URL+"/storesync")
	if code != 0 || !strings.Contains(stdout, "whsec_") {
		t.Fatalf("endpoints add: %d\n%s%s", code, stdout, stderr)
	}
	if err := rc.SetSecret(strings.TrimSpace(stdout[strings.Index(stdout, "whsec_"):])); err != nil {
		t.Fatal(err)
	}

	serveArgs := []string{"serve", "--bulk-workers", "4", "--job-timeout", "5s", "--rescue-after", "6s"}
	first := startServeProcess(t, env, serveArgs...)
	if code, out, errOut := runCLI(t, env, "import", truthFile(t, simulator.Truth(), "")); code != 0 {
		t.Fatalf("import: %d\n%s%s", code, out, errOut)
	}
	// Kill while a delivery is in flight and committed events wait behind it.
	var events int
	waitUntil(t, time.Minute, "a delivery in flight with events committed behind it", func() bool {
		total, hung, _ := rc.Counts()
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM subscription_events`).Scan(&events); err != nil {
			t.Fatal(err)
		}
		return total == gateAt && hung > 0 && events > total+5
	})
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	waitUntil(t, 10*time.Second, "the receiver to see the sender gone", func() bool { _, hung, _ := rc.Counts(); return hung == 0 })
	delivered, _, _ := rc.Counts()
	t.Logf("killed serve with %d events committed, %d delivered", events, delivered)
	openGate()

	startServeProcess(t, env, serveArgs...)
	waitImported(t, pool, func(p ledger.ImportProgress) bool { return p.Finished() }, 3*time.Minute)
	waitUntil(t, 3*time.Minute, "every event delivered", func() bool {
		total, _, _ := rc.Counts()
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM subscription_events`).Scan(&events); err != nil {
			t.Fatal(err)
		}
		return total == events
	})
	total, _, badSig := rc.Counts()
	if badSig > 0 {
		t.Fatalf("%d deliveries failed Standard Webhooks verification", badSig)
	}
	l := ledger.New(pool)
	bySub := rc.Events()
	checked := 0
	for otid, got := range bySub {
		evs, err := l.SubscriptionEvents(ctx, otid)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(evs) {
			t.Fatalf("%s: received %d events, the ledger has %d", otid, len(got), len(evs))
		}
		for i, e := range evs {
			if got[i] != e.ID {
				t.Fatalf("%s: received %v, not the feed order of its %d events", otid, got, len(evs))
			}
		}
		checked += len(evs)
	}
	if checked != total || total == 0 {
		t.Fatalf("checked %d events of %d received", checked, total)
	}
	t.Logf("all %d events of %d subscriptions delivered after the kill, in order", total, len(bySub))
}

func waitUntil(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); !ok(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %s", what, within)
		}
	}
}
