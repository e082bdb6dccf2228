package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/ledger/budget"
)

// statusCommand is `storesync status`; main.go lists it in commands.
func statusCommand() *command {
	return &command{
		name:    "status",
		summary: "show queue depth, import progress, Apple budget use, backfills and reconciliations",
		usage: `storesync status [--runs N]

Prints, from the database, one section per concern: the job queue by kind
and state, the latest import runs (done, failed, pending rows), the Apple
rate budget used per endpoint over the last minute and hour (with 429s),
and whatever other sections are registered (backfill windows,
reconciliation runs, notifications kept aside as another app's).

  --runs N   how many import runs to list (default 5)`,
		run: runStatus,
	}
}

// statusSection is one section of `storesync status`, printed under its
// title in Order (statusSections lists them all).
type statusSection struct {
	Order int
	Title string
	// Write prints the section's body to w. An error is printed in place
	// of the section; the other sections still run.
	Write func(ctx context.Context, s *statusContext, w io.Writer) error
}

// statusSections lists every section of `storesync status`: one list in
// one place, rather than each file registering its own, so the report's
// shape reads at a glance.
func statusSections() []statusSection {
	return []statusSection{
		{Order: 10, Title: "Job queue", Write: writeQueueStatus},
		{Order: 20, Title: "Imports", Write: writeImportStatus},
		{Order: 30, Title: "Apple rate budget", Write: writeBudgetStatus},
		{Order: 40, Title: "Notification backfill", Write: writeBackfillStatus},
		{Order: 50, Title: "Reconciliation", Write: writeReconcileStatus},
		{Order: 60, Title: "Kept-aside notifications", Write: writeKeptAsideStatus},
		{Order: 70, Title: "Event delivery", Write: writeDeliveryStatus},
		{Order: 80, Title: "Certificate compaction", Write: writeCompactionStatus},
	}
}

// statusContext is what a section may use.
type statusContext struct {
	Pool   *pgxpool.Pool
	Ledger *ledger.Ledger
	// Runs is --runs: how many recent runs a section of runs lists.
	Runs int
}

func runStatus(ctx context.Context, c *cli, args []string) error {
	fset := flag.NewFlagSet("status", flag.ContinueOnError)
	runs := fset.Int("runs", 5, "")
	rest, err := parseFlags(fset, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("unexpected argument %q", rest[0])
	}
	if *runs < 1 || *runs > 1000 {
		return usagef("--runs %d: use 1..1000", *runs)
	}
	s, err := openSession(ctx, c)
	if err != nil {
		return err
	}
	defer s.Close()
	sc := &statusContext{Pool: s.pool, Ledger: s.ledger, Runs: *runs}
	sections := statusSections()
	if failed := writeStatus(ctx, sc, c.stdout, sections); failed == len(sections) && failed > 0 {
		return fmt.Errorf("no section of the status could be read")
	}
	return nil
}

// writeStatus prints sections in Order, each under its title; a failing
// section prints its error in place and the others still run. It returns
// how many failed.
func writeStatus(ctx context.Context, sc *statusContext, w io.Writer, sections []statusSection) int {
	sections = append([]statusSection(nil), sections...)
	sort.SliceStable(sections, func(i, j int) bool { return sections[i].Order < sections[j].Order })
	failed := 0
	for i, s := range sections {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "== %s ==\n", s.Title)
		if err := s.Write(ctx, sc, w); err != nil {
			failed++
			fmt.Fprintf(w, "(unavailable: %v)\n", err)
		}
	}
	return failed
}

// riverStates are River's job states in lifecycle order.
var riverStates = []string{"available", "scheduled", "pending", "running", "retryable", "completed", "cancelled", "discarded"}

func writeQueueStatus(ctx context.Context, s *statusContext, w io.Writer) error {
	rows, err := s.Ledger.QueueCounts(ctx)
	if err != nil {
		return err
	}
	type key struct{ kind, queue string }
	counts := map[key]map[string]int64{}
	var keys []key
	for _, r := range rows {
		k := key{r.Kind, r.Queue}
		if counts[k] == nil {
			counts[k] = map[string]int64{}
			keys = append(keys, k)
		}
		counts[k][r.State] = r.Jobs
	}
	if len(keys) == 0 {
		fmt.Fprintln(w, "no jobs")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "kind\tqueue\t%s\t\n", strings.Join(riverStates, "\t"))
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t", k.kind, k.queue)
		for _, st := range riverStates {
			fmt.Fprintf(tw, "%s\t", withCommas(counts[k][st]))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

func writeImportStatus(ctx context.Context, s *statusContext, w io.Writer) error {
	runs, err := s.Ledger.ImportRuns(ctx, s.Runs)
	if err != nil {
		return err
	}
	if len(runs) == 0 {
		fmt.Fprintln(w, "no import runs")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "run\tsource\tstarted\trows\tdone\tfailed\tpending\trejected\tduplicates\tstate")
	for _, r := range runs {
		state := "migrating"
		switch {
		case r.FinishedAt == nil:
			state = "file not read completely"
		case r.Progress.Pending == 0:
			state = "finished"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Source,
			r.StartedAt.UTC().Format(time.RFC3339), withCommas(r.Counts.Rows), withCommas(r.Progress.Done),
			withCommas(r.Progress.Failed), withCommas(r.Progress.Pending), withCommas(r.Counts.Rejected),
			withCommas(r.Counts.Duplicates), state)
	}
	return tw.Flush()
}

func writeBudgetStatus(ctx context.Context, s *statusContext, w io.Writer) error {
	use, err := budget.Usage(ctx, s.Pool)
	if err != nil {
		return err
	}
	if len(use) == 0 {
		fmt.Fprintln(w, "no calls to Apple in the last hour")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "app\tenvironment\tendpoint\tlimit/s\tlast minute\t% of limit\tlast hour\t429s (minute/hour)")
	for _, u := range use {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%g\t%s\t%.1f%%\t%s\t%s/%s\n", u.App, u.Environment, u.Endpoint, u.Limit,
			withCommas(u.LastMinute), u.MinutePercent(), withCommas(u.LastHour),
			withCommas(u.ThrottledMinute), withCommas(u.ThrottledHour))
	}
	return tw.Flush()
}
