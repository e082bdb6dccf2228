package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/storesync/storesync/appstore"
)

// writeBackfillStatus prints each environment's watermark (every
// notification Apple sent before it is in the ledger), then the latest
// windows.
func writeBackfillStatus(ctx context.Context, s *statusContext, w io.Writer) error {
	marks, err := s.Ledger.BackfillWatermarks(ctx)
	if err != nil {
		return err
	}
	envs := make([]string, 0, len(marks))
	for env := range marks {
		envs = append(envs, string(env))
	}
	sort.Strings(envs)
	for _, env := range envs {
		wm := marks[appstore.Environment(env)]
		fmt.Fprintf(w, "%s: complete up to %s (%s ago)\n", env, wm.Format(time.RFC3339), time.Since(wm).Round(time.Minute))
	}
	windows, err := s.Ledger.RecentBackfillWindows(ctx, s.Runs)
	if err != nil {
		return err
	}
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
