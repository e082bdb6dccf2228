package main

import (
	"strings"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/appstore/sim/simtest"
	"github.com/storesync/storesync/jobs"
)

func TestBackfillUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"backfill"},
		{"backfill", "--since", "2026-11-01T00:00:00Z"},
		{"backfill", "--since", "yesterday", "--until", "now"},
		{"backfill", "--since", "2026-11-02T00:00:00Z", "--until", "2026-11-01T00:00:00Z"},
		{"backfill", "--since", "2026-11-01T00:00:00Z", "--until", "now", "extra"},
	} {
		code, _, stderr := runCLI(t, nil, args...)
		if code != 2 || !strings.Contains(stderr, "usage: storesync backfill") {
			t.Errorf("%v: code %d, stderr %q", args, code, stderr)
		}
	}
}

func TestBackfillWindowsClampToTheLookback(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	ws, notes, err := jobs.BackfillRequest{
		Environments: []appstore.Environment{appstore.Production, appstore.Sandbox},
		Since:        now.Add(-40 * 24 * time.Hour), Until: now.Add(time.Hour), Now: now,
	}.Windows()
	if err != nil {
		t.Fatal(err)
	}
	var prod, sandbox []jobs.BackfillArgs
	for _, w := range ws {
		if w.Environment == appstore.Production {
			prod = append(prod, w)
		} else {
			sandbox = append(sandbox, w)
		}
	}
	if len(prod) != 40 || !prod[0].Start.Equal(now.Add(-40*24*time.Hour)) || !prod[39].End.Equal(now) {
		t.Fatalf("production windows: %d, first %v, last %v", len(prod), prod[0], prod[len(prod)-1])
	}
	if len(sandbox) != 30 || sandbox[0].Start.Before(now.Add(-30*24*time.Hour)) || !sandbox[29].End.Equal(now) {
		t.Fatalf("sandbox windows: %d, first %v", len(sandbox), sandbox[0])
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "Sandbox") || !strings.Contains(notes[0], "30-day") {
		t.Fatalf("notes %v", notes)
	}
	for i := 1; i < len(prod); i++ {
		if !prod[i].Start.Equal(prod[i-1].End) {
			t.Fatalf("gap between windows %d and %d", i-1, i)
		}
	}
}

// serve works the windows; `backfill --wait` reports them; every
// notification the simulator sent (none was delivered) ends in the ledger,
// and `status` shows the windows and the watermark.
func TestBackfillWaitStoresEveryNotificationAndStatusShowsIt(t *testing.T) {
	t.Parallel()
	// The simulated clock runs two days behind the wall clock, which
	// `backfill` and Apple's look-back use (and serve's first sweep reads
	// the last day of).
	start := time.Now().UTC().Add(-8 * 24 * time.Hour).Truncate(time.Hour)
	simulator := simtest.StartTest(t, sim.Options{Seed: 8, Subscribers: 40, Start: start})
	simulator.Advance(6 * 24 * time.Hour)
	sent := len(simulator.Notifications(appstore.Production)) + len(simulator.Notifications(appstore.Sandbox))
	if sent == 0 {
		t.Fatal("the simulator sent nothing")
	}
	env := simCLIEnv(t, simulator)
	startServe(t, env, "--bulk-workers", "4")
	since := simulator.Now().Add(-7 * 24 * time.Hour).Format(time.RFC3339)
	code, stdout, stderr := runCLI(t, env, "backfill", "--since", since, "--until", simulator.Now().Format(time.RFC3339), "--wait")
	if code != 0 {
		t.Fatalf("backfill --wait: code %d\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{"enqueued 14 backfill window(s) in Production and Sandbox",
		"backfill done: 14 window(s), " + itoa(sent) + " notifications seen, " + itoa(sent) + " new"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	pool := openTestPool(t, env["DATABASE_URL"])
	var stored int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM notifications WHERE source = 'backfill'`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != sent {
		t.Fatalf("%d stored, the simulator sent %d", stored, sent)
	}
	// Again: every window is read again and finds nothing new.
	code, stdout, _ = runCLI(t, env, "backfill", "--since", since, "--until", simulator.Now().Format(time.RFC3339), "--wait")
	if code != 0 || !strings.Contains(stdout, "backfill done: 14 window(s), "+itoa(sent)+" notifications seen, 0 new") {
		t.Fatalf("second backfill: code %d\n%s", code, stdout)
	}
	code, stdout, stderr = runCLI(t, env, "status")
	if code != 0 {
		t.Fatalf("status: code %d\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{"== Notification backfill ==", "Production: complete up to ", "Sandbox: complete up to ",
		"manual", "sweep", "finished"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, stdout)
		}
	}
}

func itoa(n int) string { return withCommas(int64(n)) }
