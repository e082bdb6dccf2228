package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/jobs"
)

// backfillCommand is `storesync backfill`; main.go lists it in commands.
func backfillCommand() *command {
	return &command{
		name:    "backfill",
		summary: "read missed notifications from Apple's notification history for a time window",
		usage: `storesync backfill --since T --until T [--only-failures] [--wait]

Enqueues backfill jobs that page Get Notification History over [since, until]
(RFC 3339 times; until may be "now"), in one-day windows, in the configured
environment and, with APPSTORE_SANDBOX_FALLBACK, the sandbox too. Windows are
clamped to Apple's look-back (180 days in production, 30 in the sandbox).
Notifications the ledger misses are stored and processed; a window already
pending or done recently is not enqueued again. A running "storesync serve"
works the jobs.

  --only-failures  only notifications Apple failed to deliver
  --wait           wait for every window and print what each found`,
		run: runBackfill,
	}
}

func runBackfill(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("backfill", flag.ContinueOnError)
	sinceText := fs.String("since", "", "start of the window (RFC 3339)")
	untilText := fs.String("until", "", `end of the window (RFC 3339, or "now")`)
	onlyFailures := fs.Bool("only-failures", false, "only notifications Apple failed to deliver")
	wait := fs.Bool("wait", false, "wait for the windows and print what they found")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("unexpected argument %q", rest[0])
	}
	now := time.Now().UTC()
	since, err := parseTimeFlag("--since", *sinceText, now)
	if err != nil {
		return err
	}
	until, err := parseTimeFlag("--until", *untilText, now)
	if err != nil {
		return err
	}
	if !since.Before(until) {
		return usagef("--since (%s) must be before --until (%s)", since.Format(time.RFC3339), until.Format(time.RFC3339))
	}
	s, err := openSession(ctx, c)
	if err != nil {
		return err
	}
	defer s.Close()
	envs := []appstore.Environment{s.cfg.Environment}
	if s.cfg.SandboxFallback && s.cfg.Environment == appstore.Production {
		envs = append(envs, appstore.Sandbox)
	}
	rows, notes, err := jobs.EnqueueBackfill(ctx, s.river, jobs.BackfillRequest{
		Environments: envs, Since: since, Until: until, OnlyFailures: *onlyFailures, Now: now,
	})
	for _, n := range notes {
		fmt.Fprintln(c.stdout, "note:", n)
	}
	if err != nil {
		return fmt.Errorf("enqueueing backfill windows: %w", err)
	}
	if len(rows) == 0 {
		fmt.Fprintln(c.stdout, "nothing to backfill: every window is outside Apple's look-back")
		return nil
	}
	fmt.Fprintf(c.stdout, "enqueued %d backfill window(s) in %s\n", len(rows), joinEnvs(envs))
	if !*wait {
		return nil
	}
	totals, err := jobs.WaitBackfill(ctx, s.river, s.ledger, rows, jobs.WaitBackfillOptions{
		Window: func(o jobs.BackfillWindowOutcome) { fmt.Fprintln(c.stdout, describeWindow(o)) },
		NotStarted: func() {
			fmt.Fprintln(c.stderr, "still waiting: no window has started; is a `storesync serve` process running?")
		},
	})
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return fmt.Errorf("stopped waiting with %d window(s) left (they continue in the background): %w", totals.Left, err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "backfill done: %d window(s), %d notifications seen, %d new\n", len(rows), totals.Seen, totals.New)
	if totals.Failed > 0 {
		return fmt.Errorf("%d window(s) did not complete; see the lines above and `storesync status`", totals.Failed)
	}
	return nil
}

// parseTimeFlag reads an RFC 3339 time (or "now").
func parseTimeFlag(name, v string, now time.Time) (time.Time, error) {
	switch v {
	case "":
		return time.Time{}, usagef("%s is required (RFC 3339, e.g. 2026-11-01T00:00:00Z)", name)
	case "now":
		return now, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, usagef("%s %q is not an RFC 3339 time such as 2026-11-01T00:00:00Z", name, v)
	}
	return t.UTC(), nil
}

func joinEnvs(envs []appstore.Environment) string {
	s := make([]string, len(envs))
	for i, e := range envs {
		s[i] = string(e)
	}
	return strings.Join(s, " and ")
}

// describeWindow is the line of one finished window: what it read, or why
// it read nothing.
func describeWindow(o jobs.BackfillWindowOutcome) string {
	head := fmt.Sprintf("%s %s → %s", o.Window.Environment, o.Window.Start.Format(time.RFC3339), o.Window.End.Format(time.RFC3339))
	switch {
	case o.State != rivertype.JobStateCompleted:
		msg := ""
		if o.Error != "" {
			msg = ": " + o.Error
		}
		return fmt.Sprintf("%s: %s%s", head, o.State, msg)
	case o.Record == nil:
		return head + ": outside Apple's look-back, nothing read"
	}
	return fmt.Sprintf("%s: %d page(s), %d seen, %d new", head, o.Record.Pages, o.Record.Seen, o.Record.New)
}
