package main

import (
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/appstore/sim/simtest"
	"github.com/storesync/storesync/config"
	"github.com/storesync/storesync/jobs/jobstest"
	"github.com/storesync/storesync/ledger"
)

func TestReconcileUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"reconcile", "extra"}, {"reconcile", "--bogus"}} {
		code, _, stderr := runCLI(t, nil, args...)
		if code != 2 || !strings.Contains(stderr, "usage: storesync reconcile") {
			t.Errorf("%v: code %d, stderr %q", args, code, stderr)
		}
	}
}

func TestReconcileCallCapFromConfiguration(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		env  map[string]string
		want int64
	}{
		{map[string]string{}, 1_080_000}, // 25% × 86400 × 50/s
		{map[string]string{"APPSTORE_RATE_SHARE": "0.5"}, 540_000},
		{map[string]string{"APPSTORE_ENVIRONMENT": "sandbox"}, 108_000},
		{map[string]string{"STORESYNC_RECONCILE_BUDGET": "10%", "APPSTORE_RATE_LIMITS": "statuses=20"}, 172_800},
		{map[string]string{"STORESYNC_RECONCILE_BUDGET": "5000"}, 5000},
	} {
		cfg, err := config.Load(func(k string) string { return c.env[k] })
		if err != nil {
			t.Fatal(err)
		}
		if got := reconcileCallCap(cfg); got != c.want {
			t.Errorf("%v: cap %d, want %d", c.env, got, c.want)
		}
		if s := reconcileSettings(cfg); s.CallCap != c.want || s.FullCycle != 7*24*time.Hour {
			t.Errorf("%v: settings %+v", c.env, s)
		}
	}
}

// serve works the run; `reconcile --wait` prints a summary naming the
// drift a silent refund caused; `status` shows the run.
func TestReconcileWaitPrintsSummaryAndStatusShowsIt(t *testing.T) {
	t.Parallel()
	simulator := simtest.StartTest(t, sim.Options{Seed: 5, Subscribers: 30, Start: time.Now().UTC().Add(-time.Hour)})
	env := simCLIEnv(t, simulator)
	startServe(t, env, "--bulk-workers", "4")
	// A cycle shorter than a day: this command's run checks everyone.
	env = maps.Clone(env)
	env["STORESYNC_RECONCILE_FULL_CYCLE"] = "1h"
	truths := simulator.Truth()
	if code, stdout, stderr := runCLI(t, env, "import", truthFile(t, truths, ""), "--wait"); code != 0 {
		t.Fatalf("import --wait: code %d\n%s%s", code, stdout, stderr)
	}
	// serve runs the nightly reconciliation on start (RunOnStart); let it
	// finish so that it does not find the change below first.
	pool := openTestPool(t, env["DATABASE_URL"])
	l := ledger.New(pool)
	deadline := time.Now().Add(time.Minute)
	for {
		run, err := l.LatestReconcileRun(t.Context())
		if err == nil && strings.HasPrefix(run.Key, "nightly ") && run.FinishedAt != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve ran no nightly reconciliation on start: %+v %v", run, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var refunded string
	for _, tr := range truths {
		if tr.Status == "active" {
			refunded = tr.OriginalTransactionID
			break
		}
	}
	simulator.Advance(time.Millisecond) // Apple signs later than the import did
	if err := simulator.Mutate(refunded, sim.MutateRefund); err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := runCLI(t, env, "reconcile", "--wait")
	if code != 0 {
		t.Fatalf("reconcile --wait: code %d\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{`enqueued reconciliation "manual `, "call cap 1,080,000", "reconciliation run",
		"\ndrifted subscriptions: 1\n  revoked_at_apple: 1\n", "repaired 1 subscriptions", "Apple calls ",
		"cap not reached: every subscription checked"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("reconcile output lacks %q:\n%s", want, stdout)
		}
	}
	jobstest.RequireLedgerEqualsTruth(t, l, simulator.Truth())

	code, stdout, stderr = runCLI(t, env, "status")
	if code != 0 {
		t.Fatalf("status: code %d\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{"== Reconciliation ==", "manual ", "nightly ", "finished", "\ndrifted subscriptions: 1\n",
		"cap not reached: every subscription checked"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, stdout)
		}
	}
}

func TestReconcileSummarySaysWhenTheCapBinds(t *testing.T) {
	finished := time.Date(2026, 12, 4, 4, 0, 0, 0, time.UTC)
	run := func(callCap, quota int64, stopped string, checked map[string]int64) *ledger.ReconcileRun {
		return &ledger.ReconcileRun{ID: 1, Key: "nightly", StartedAt: finished.Add(-time.Hour), FinishedAt: &finished,
			Phase: ledger.PhaseDone, CallCap: callCap, CallsUsed: callCap, RollingQuota: quota,
			TotalSubscriptions: 1_000_000, StoppedReason: stopped, Checked: checked}
	}
	cases := []struct {
		name      string
		run       *ledger.ReconcileRun
		want, not []string
	}{
		{"bound", run(1_000_000, 142_858, ledger.StoppedCallCap, map[string]int64{"due": 12_000, "rolling": 800_000}),
			[]string{"cap bound: 812,000 of 1,000,000 checked; next run covers the 188,000 least recently checked first"},
			[]string{"warning", "cap not reached"}},
		{"everything", run(2_000_000, 142_858, "", map[string]int64{"due": 12_000, "rolling": 988_000}),
			[]string{"cap not reached: every subscription checked (1,000,000 of 1,000,000 at the start)"},
			[]string{"warning", "cap bound"}},
		{"below the cycle", run(100_000, 142_858, ledger.StoppedCallCap, map[string]int64{"rolling": 100_000}),
			[]string{"cap bound: 100,000 of 1,000,000 checked; next run covers the 900,000 least recently checked first",
				"warning: the cap of 100,000 calls does not cover a full-cycle slice of 142,858 subscriptions a night"}, nil},
		{"targeted took the slice", run(150_000, 142_858, ledger.StoppedCallCap, map[string]int64{"due": 60_000, "rolling": 90_000}),
			[]string{"cap bound: 150,000 of 1,000,000", "warning: the cap of 150,000 calls does not cover"}, nil},
	}
	for _, c := range cases {
		var b strings.Builder
		writeReconcileSummary(&b, c.run)
		for _, w := range c.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("%s: summary lacks %q:\n%s", c.name, w, b.String())
			}
		}
		for _, n := range c.not {
			if strings.Contains(b.String(), n) {
				t.Errorf("%s: summary has %q:\n%s", c.name, n, b.String())
			}
		}
	}
}
