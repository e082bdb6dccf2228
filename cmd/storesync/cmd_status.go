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

	"github.com/storesync/storesync/jobs"
	"github.com/storesync/storesync/ledger"
)

// statusCommand is `storesync status`; main.go lists it in commands.
func statusCommand() *command {
	return &command{
		name:    "status",
		summary: "show queue depth, import progress, Apple budget use, backfills and reconciliations",
		usage: `storesync status [--runs N]

Prints, from the database, one section per concern: the job queue by kind
and state, the latest import runs (done, failed, pending rows, rate, ETA),
the Apple rate budget used per endpoint over the last minute and hour
(with 429s), the webhook's answers (rate, refusals, answer time, from
every serve), backfill watermarks and windows, reconciliation runs with
drift by class, notifications kept aside as another app's, and event
delivery (dead-lettered events). The ops console's overview shows the
same numbers: both read jobs.ReadStatus.

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
		{Order: 35, Title: "Webhook", Write: writeWebhookStatus},
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
	// Status is the status read once by jobs.ReadStatus, the one source
	// of this command's numbers and of the ops console's overview.
	Status *jobs.Status
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
	st, _ := jobs.ReadStatus(ctx, s.ledger, jobs.StatusOptions{Runs: *runs}) // errors are per section
	sc := &statusContext{Pool: s.pool, Ledger: s.ledger, Runs: *runs, Status: st}
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

func writeQueueStatus(_ context.Context, s *statusContext, w io.Writer) error {
	if s.Status.QueueErr != nil {
		return s.Status.QueueErr
	}
	rows := s.Status.QueueRows()
	if len(rows) == 0 {
		fmt.Fprintln(w, "no jobs")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "kind\tqueue\t%s\t\n", strings.Join(jobs.RiverStates, "\t"))
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t", r.Kind, r.Queue)
		for _, cell := range r.Cells() {
			fmt.Fprintf(tw, "%s\t", cell)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

func writeImportStatus(_ context.Context, s *statusContext, w io.Writer) error {
	if s.Status.ImportsErr != nil {
		return s.Status.ImportsErr
	}
	if len(s.Status.Imports) == 0 {
		fmt.Fprintln(w, "no import runs")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	// done/progress/rate/ETA are full history (the row is done); the
	// current-state columns are the statuses phase running ahead of it.
	fmt.Fprintln(tw, "run\tsource\tstarted\trows\tdone\tfailed\tpending\trejected\tduplicates\tprogress\trate\tETA\tcurrent\tcurrent-rate\tcurrent-ETA\tstate")
	for _, r := range s.Status.Imports {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.1f%%\t%s\t%s\t%.1f%%\t%s\t%s\t%s\n", r.ID, r.Source,
			r.StartedAt.UTC().Format(time.RFC3339), withCommas(r.Counts.Rows), withCommas(r.Progress.Done),
			withCommas(r.Progress.Failed), withCommas(r.Progress.Pending), withCommas(r.Counts.Rejected),
			withCommas(r.Counts.Duplicates), r.Percent, dash(r.RateText()), dash(r.ETAText()),
			r.CurrentPercent, dash(r.CurrentRateText()), dash(r.CurrentETAText()), r.State)
	}
	return tw.Flush()
}

// dash shows an empty cell as "-", so columns stay aligned and readable.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func writeBudgetStatus(_ context.Context, s *statusContext, w io.Writer) error {
	if s.Status.BudgetErr != nil {
		return s.Status.BudgetErr
	}
	use := s.Status.Budget
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
