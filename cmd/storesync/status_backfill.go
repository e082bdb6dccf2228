package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// writeBackfillStatus prints each environment's watermark (every
// notification Apple sent before it is in the ledger), then the latest
// windows.
func writeBackfillStatus(_ context.Context, s *statusContext, w io.Writer) error {
	if s.Status.BackfillErr != nil {
		return s.Status.BackfillErr
	}
	for _, wm := range s.Status.Watermarks {
		fmt.Fprintf(w, "%s: complete up to %s (%s ago)\n", wm.Environment, wm.At.Format(time.RFC3339), wm.Ago)
	}
	windows, marks := s.Status.BackfillWindows, s.Status.Watermarks
	if len(windows) == 0 {
		fmt.Fprintln(w, "no backfill windows yet")
		return nil
	}
	if len(marks) == 0 {
		fmt.Fprintln(w, "no watermark yet: no full window has finished")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "window\tenvironment\tkind\tstart\tend\tpages\tseen\tnew\trestarts\tstate")
	for _, win := range windows {
		kind := win.Kind
		if win.OnlyFailures {
			kind += " (failures)"
		}
		state := "running"
		switch {
		case win.FinishedAt != nil:
			state = "finished " + win.FinishedAt.Format(time.RFC3339)
		case win.Error != "":
			state = "failed: " + win.Error
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", win.ID, win.Environment, kind,
			win.Start.Format(time.RFC3339), win.End.Format(time.RFC3339), withCommas(int64(win.Pages)),
			withCommas(int64(win.Seen)), withCommas(int64(win.New)), win.Restarts, state)
	}
	return tw.Flush()
}
