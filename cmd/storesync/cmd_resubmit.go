package main

import (
	"context"
	"flag"
	"fmt"
	"sort"

	"github.com/storesync/storesync/jobs"
)

// resubmitCommand is `storesync resubmit`; main.go lists it in commands.
func resubmitCommand() *command {
	return &command{
		name:    "resubmit",
		summary: "store the kept-aside notifications that now verify (after fixing the bundle id)",
		usage: `storesync resubmit

The webhook keeps aside notifications Apple signed for another bundle id,
app Apple id or environment (storesync status lists them). After fixing
APPSTORE_BUNDLE_ID / APPSTORE_APP_APPLE_ID, this verifies each of them again
with the current configuration: those that verify are stored as webhook
notifications and processed by a running "storesync serve"; the others stay
kept aside and are counted by reason. Safe to run again (nothing is stored
twice); it makes no call to Apple.`,
		run: runResubmit,
	}
}

func runResubmit(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("resubmit", flag.ContinueOnError)
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
	deps, err := buildDeps(ctx, s.cfg, s.pool)
	if err != nil {
		return err
	}
	res, err := jobs.ResubmitKeptAside(ctx, deps, s.river)
	fmt.Fprintf(c.stdout, "resubmitted %d kept-aside notification(s) (%d already in the ledger)\n", res.Resubmitted, res.AlreadyStored)
	reasons := make([]string, 0, len(res.StillRefused))
	for r := range res.StillRefused {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		fmt.Fprintf(c.stdout, "still kept aside: %d with %s\n", res.StillRefused[r], r)
	}
	return err
}
