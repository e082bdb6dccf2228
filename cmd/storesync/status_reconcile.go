package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// writeReconcileStatus lists the latest runs, then the newest one's full
// summary (drift by class, calls against the cap).
func writeReconcileStatus(_ context.Context, s *statusContext, w io.Writer) error {
	if s.Status.ReconcileErr != nil {
		return s.Status.ReconcileErr
	}
	runs := s.Status.Reconciles
	if len(runs) == 0 {
		fmt.Fprintln(w, "no reconciliation yet")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "run\tkey\tstarted\tstate\tchecked\tdrifted\trepaired\tcalls/cap\tdrift by class")
	for _, r := range runs {
		state := r.State
		if r.Error != "" {
			state = "failed" // the error is in the summary below
		}
		drift := make([]string, 0, len(r.Drift))
		for _, d := range r.Drift {
			drift = append(drift, d.Class+" "+withCommas(d.N))
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s/%s\t%s\n", r.ID, r.Key, r.StartedAt.UTC().Format(time.RFC3339), state,
			withCommas(r.CheckedTotal()), withCommas(r.DriftedSubscriptions), withCommas(r.Repaired),
			withCommas(r.CallsUsed), withCommas(r.CallCap), dash(strings.Join(drift, ", ")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	writeReconcileSummary(w, runs[0].ReconcileRun)
	return nil
}
