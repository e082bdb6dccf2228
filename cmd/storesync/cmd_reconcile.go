package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/config"
	"github.com/storesync/storesync/jobs"
	"github.com/storesync/storesync/ledger"
)

// reconcileCommand is `storesync reconcile`; main.go lists it in commands.
func reconcileCommand() *command {
	return &command{
		name:    "reconcile",
		summary: "run a drift reconciliation now; --wait prints its summary",
		usage: `storesync reconcile [--wait]

Enqueues a drift reconciliation now (at most one per minute: asking twice in
the same minute runs it once), with the call cap of STORESYNC_RECONCILE_BUDGET
A running "storesync serve" works it: a sweep of Apple's notification history
since the previous run, then statuses checks of subscriptions due to change
(expired but active, billing retry, grace period, recent refunds, conflicts),
then every other subscription, least recently checked first, until all are
checked or the cap binds. The summary says when the cap bound and how many
subscriptions the next run checks first; STORESYNC_RECONCILE_FULL_CYCLE is
the longest a subscription may then go unchecked. Every difference from
Apple is recorded as drift before it is repaired.

  --wait   wait for the run and print its summary, whose total line reads
           "drifted subscriptions: N", followed by counts by class`,
		run: runReconcile,
	}
}

func runReconcile(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("reconcile", flag.ContinueOnError)
	wait := fs.Bool("wait", false, "wait for the run and print its summary")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("unexpected argument %q", rest[0])
	}
	s, err := openSession(ctx, c)
	if err != nil {
		return err
	}
	defer s.Close()
	args0 := jobs.ReconcileArgs{RunKey: jobs.ManualRunKey(time.Now()), CallCap: reconcileCallCap(s.cfg), FullCycle: s.cfg.ReconcileFullCycle}
	res, err := s.river.Insert(ctx, args0, nil)
	if err != nil {
		return fmt.Errorf("enqueueing the reconciliation: %w", err)
	}
	if res.UniqueSkippedAsDuplicate {
		fmt.Fprintf(c.stdout, "reconciliation %q was already asked for this minute (job %d)\n", args0.RunKey, res.Job.ID)
	} else {
		fmt.Fprintf(c.stdout, "enqueued reconciliation %q (job %d), call cap %s\n", args0.RunKey, res.Job.ID, withCommas(args0.CallCap))
	}
	if !*wait {
		return nil
	}
	run, err := jobs.WaitReconcile(ctx, s.river, s.ledger, res.Job.ID, args0.RunKey, jobs.WaitReconcileOptions{
		NotStarted: func() {
			fmt.Fprintln(c.stderr, "waiting for a running `storesync serve` to start the reconciliation…")
		},
	})
	if run != nil {
		writeReconcileSummary(c.stdout, run)
	}
	return err
}

// reconcileCallCap is a run's call cap from the configuration:
// STORESYNC_RECONCILE_BUDGET as calls, or as a share of a day's statuses
// budget (86400 × the statuses limit of the configured environment, rate
// share and overrides included).
func reconcileCallCap(cfg *config.Config) int64 {
	perSecond := cfg.EffectiveRateLimits(cfg.Environment)[appstore.EndpointStatuses]
	return jobs.ReconcileCallCap(perSecond, cfg.ReconcileBudget.Fraction, cfg.ReconcileBudget.Calls)
}

// reconcileSettings are the workers' reconciliation settings from the
// configuration; `storesync serve` puts them in jobs.Deps.Settings.Reconcile
// so nightly runs use the configured cap and full cycle.
func reconcileSettings(cfg *config.Config) jobs.ReconcileSettings {
	return jobs.ReconcileSettings{CallCap: reconcileCallCap(cfg), FullCycle: cfg.ReconcileFullCycle}
}

// writeReconcileSummary prints a run's summary; its total line reads
// "drifted subscriptions: N", followed by one line per drifted class.
func writeReconcileSummary(w io.Writer, r *ledger.ReconcileRun) {
	fmt.Fprintf(w, "reconciliation run %d (%s)\n", r.ID, r.Key)
	if r.FinishedAt != nil {
		fmt.Fprintf(w, "  started %s, finished %s (%s)\n", r.StartedAt.UTC().Format(time.RFC3339),
			r.FinishedAt.UTC().Format(time.RFC3339), r.FinishedAt.Sub(r.StartedAt).Round(time.Second))
	} else {
		fmt.Fprintf(w, "  started %s, running (phase %s)\n", r.StartedAt.UTC().Format(time.RFC3339), r.Phase)
	}
	if r.SweepSince != nil && r.SweepUntil != nil {
		fmt.Fprintf(w, "  notification sweep %s .. %s: %s missing notifications\n",
			r.SweepSince.UTC().Format(time.RFC3339), r.SweepUntil.UTC().Format(time.RFC3339), withCommas(r.SweepNew))
	}
	reasons := make([]string, 0, len(ledger.CheckReasons))
	for _, reason := range ledger.CheckReasons {
		reasons = append(reasons, fmt.Sprintf("%s %s", reason, withCommas(r.Checked[string(reason)])))
	}
	fmt.Fprintf(w, "  checked %s subscriptions (%s); failed %s\n", withCommas(r.CheckedTotal()),
		strings.Join(reasons, ", "), withCommas(r.Failed))
	writeReconcileCoverage(w, r)
	pct := 0.0
	if r.CallCap > 0 {
		pct = 100 * float64(r.CallsUsed) / float64(r.CallCap)
	}
	fmt.Fprintf(w, "  Apple calls %s of cap %s (%.1f%%)\n", withCommas(r.CallsUsed), withCommas(r.CallCap), pct)
	if r.StoppedReason != "" {
		fmt.Fprintf(w, "  stopped: %s\n", r.StoppedReason)
	}
	if r.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", r.Error)
	}
	fmt.Fprintf(w, "  repaired %s subscriptions\n", withCommas(r.Repaired))
	fmt.Fprintf(w, "drifted subscriptions: %d\n", r.DriftedSubscriptions)
	for _, class := range ledger.DriftClasses {
		if n := r.Drifted[string(class)]; n > 0 {
			fmt.Fprintf(w, "  %s: %d\n", class, n)
		}
	}
}

// writeReconcileCoverage says whether run r checked every subscription or
// its cap bound first, and what the next run covers. A finished run's
// "cap bound" line names the subscriptions left, which the next run checks
// first; a running one shows only its progress.
func writeReconcileCoverage(w io.Writer, r *ledger.ReconcileRun) {
	checked, total := r.CheckedTotal(), r.TotalSubscriptions
	switch {
	case r.FinishedAt == nil || r.Error != "":
		fmt.Fprintf(w, "  coverage: %s of %s subscriptions checked so far\n", withCommas(checked), withCommas(total))
	case r.CapBound():
		fmt.Fprintf(w, "  cap bound: %s of %s checked; next run covers the %s least recently checked first\n",
			withCommas(checked), withCommas(total), withCommas(r.LeftForNextRun()))
	default:
		fmt.Fprintf(w, "  cap not reached: every subscription checked (%s of %s at the start)\n",
			withCommas(checked), withCommas(total))
	}
	if r.CapBelowCycle() {
		fmt.Fprintf(w, "  warning: the cap of %s calls does not cover a full-cycle slice of %s subscriptions a night: "+
			"some go unchecked longer than STORESYNC_RECONCILE_FULL_CYCLE; raise STORESYNC_RECONCILE_BUDGET or lengthen the cycle\n",
			withCommas(r.CallCap), withCommas(r.RollingQuota))
	}
}
