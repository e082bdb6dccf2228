package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// writeReconcileStatus lists the latest runs, then the newest one's full
// summary (drift by class, calls against the cap).
func writeReconcileStatus(ctx context.Context, s *statusContext, w io.Writer) error {
	runs, err := s.Ledger.ReconcileRuns(ctx, s.Runs)
	if err != nil {
		return err
	}
	if len(runs) == 0 {
		fmt.Fprintln(w, "no reconciliation yet")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "run\tkey\tstarted\tstate\tchecked\tdrifted\trepaired\tcalls/cap")
	for _, r := range runs {
		state := "running (" + r.Phase + ")"
		switch {
		case r.Error != "":
			state = "failed"
		case r.FinishedAt != nil && r.StoppedReason != "":
			state = "finished: " + r.StoppedReason
		case r.FinishedAt != nil:
			state = "finished"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s/%s\n", r.ID, r.Key, r.StartedAt.UTC().Format(time.RFC3339), state,
			withCommas(r.CheckedTotal()), withCommas(r.DriftedSubscriptions), withCommas(r.Repaired),
			withCommas(r.CallsUsed), withCommas(r.CallCap))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	writeReconcileSummary(w, runs[0])
	return nil
}
