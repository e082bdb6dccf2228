package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/jobs"
	"github.com/storesync/storesync/ledger"
)

func init() {
	register(&command{
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
	})
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
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	envs := []appstore.Environment{cfg.Environment}
	if cfg.SandboxFallback && cfg.Environment == appstore.Production {
		envs = append(envs, appstore.Sandbox)
	}
	pool, deps, client, err := openQueue(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	rows, notes, err := jobs.EnqueueBackfill(ctx, client, jobs.BackfillRequest{
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
	return waitBackfill(ctx, c, client, deps.Ledger, rows, time.Second)
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

// waitBackfill polls the window jobs until every one is finished, printing
// each window's outcome once. It fails when a window did not complete.
func waitBackfill(ctx context.Context, c *cli, client *river.Client[pgx.Tx], l *ledger.Ledger, rows []*rivertype.JobRow, poll time.Duration) error {
	pending := map[int64]*rivertype.JobRow{}
	for _, r := range rows {
		pending[r.ID] = r
	}
	var seen, fresh, failed int
	started := time.Now()
	hinted := false
	for len(pending) > 0 {
		for id := range pending {
			job, err := client.JobGet(ctx, id)
			if err != nil {
				if errors.Is(err, rivertype.ErrNotFound) {
					// Cleaned away after completing long ago.
					delete(pending, id)
					continue
				}
				return err
			}
			switch job.State {
			case rivertype.JobStateCompleted, rivertype.JobStateCancelled, rivertype.JobStateDiscarded:
			default:
				continue
			}
			delete(pending, id)
			line, s, f := describeWindow(ctx, l, job)
			seen, fresh = seen+s, fresh+f
			if job.State != rivertype.JobStateCompleted {
				failed++
			}
			fmt.Fprintln(c.stdout, line)
		}
		if len(pending) == 0 {
			break
		}
		if !hinted && time.Since(started) > 15*time.Second && noneStarted(ctx, client, pending) {
			hinted = true
			fmt.Fprintln(c.stderr, "still waiting: no window has started; is a `storesync serve` process running?")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped waiting with %d window(s) left (they continue in the background): %w", len(pending), ctx.Err())
		case <-time.After(poll):
		}
	}
	fmt.Fprintf(c.stdout, "backfill done: %d window(s), %d notifications seen, %d new\n", len(rows), seen, fresh)
	if failed > 0 {
		return fmt.Errorf("%d window(s) did not complete; see the lines above and `storesync status`", failed)
	}
	return nil
}

func noneStarted(ctx context.Context, client *river.Client[pgx.Tx], pending map[int64]*rivertype.JobRow) bool {
	for id := range pending {
		job, err := client.JobGet(ctx, id)
		if err != nil || job.Attempt > 0 {
			return false
		}
	}
	return true
}

// describeWindow summarises one finished window job from its recorded
// window.
func describeWindow(ctx context.Context, l *ledger.Ledger, job *rivertype.JobRow) (string, int, int) {
	var args jobs.BackfillArgs
	_ = json.Unmarshal(job.EncodedArgs, &args)
	head := fmt.Sprintf("%s %s → %s", args.Environment, args.Start.Format(time.RFC3339), args.End.Format(time.RFC3339))
	if job.State != rivertype.JobStateCompleted {
		msg := ""
		if n := len(job.Errors); n > 0 {
			msg = ": " + job.Errors[n-1].Error
		}
		return fmt.Sprintf("%s: %s%s", head, job.State, msg), 0, 0
	}
	w, err := l.FindBackfillWindow(ctx, args.Environment, args.Start, args.End, args.OnlyFailures)
	if err != nil {
		return head + ": outside Apple's look-back, nothing read", 0, 0
	}
	return fmt.Sprintf("%s: %d page(s), %d seen, %d new", head, w.Pages, w.Seen, w.New), w.Seen, w.New
}
