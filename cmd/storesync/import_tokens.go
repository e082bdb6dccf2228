package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/user"

	"github.com/storesync/storesync/jobs"
)

// importTokenOptions are import's --set-app-account-token flags.
type importTokenOptions struct {
	set, overwrite, dryRun *bool
	actor                  *string
}

func tokenFlags(fset *flag.FlagSet) importTokenOptions {
	return importTokenOptions{
		set:       fset.Bool("set-app-account-token", false, ""),
		overwrite: fset.Bool("overwrite-app-account-token", false, ""),
		dryRun:    fset.Bool("dry-run", false, ""),
		actor:     fset.String("actor", "", ""),
	}
}

func (o importTokenOptions) validate(source string) error {
	switch {
	case (*o.overwrite || *o.dryRun || *o.actor != "") && !*o.set:
		return usagef("--overwrite-app-account-token, --dry-run and --actor go with --set-app-account-token")
	case *o.set && source == "-":
		return usagef("--set-app-account-token reads FILE after the import: give a file, not standard input")
	}
	return nil
}

// defaultActor names who runs the command: $USER@host.
func defaultActor() string {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && name == "" {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

// setAppAccountTokens plans the token changes of source against the
// ledger and prints them; unless --dry-run, it enqueues their jobs.
func setAppAccountTokens(ctx context.Context, c *cli, s *session, source string, o importTokenOptions) error {
	f, err := os.Open(source)
	if err != nil {
		return fmt.Errorf("opening the import file: %w", err)
	}
	defer f.Close()
	plans, err := jobs.PlanAppAccountTokens(ctx, s.ledger, f, *o.overwrite)
	if err != nil {
		return err
	}
	counts := map[string]int{}
	for _, p := range plans {
		counts[p.Action]++
		switch p.Action {
		case jobs.TokenSet, jobs.TokenOverwrite:
			verb := "set"
			if *o.dryRun {
				verb = "would set"
			}
			fmt.Fprintf(c.stdout, "line %d: %s %s appAccountToken %s → %s\n", p.Line, verb, p.OriginalTransactionID, orDash(p.Current), p.Token)
		case jobs.TokenSkipped:
			fmt.Fprintf(c.stdout, "line %d: skipped %s: %s\n", p.Line, orDash(p.OriginalTransactionID), p.Reason)
		}
	}
	change := counts[jobs.TokenSet] + counts[jobs.TokenOverwrite]
	if *o.dryRun {
		fmt.Fprintf(c.stdout, "dry run: %d appAccountTokens would be set (%d overwriting another), %d already set, %d skipped; nothing was changed\n",
			change, counts[jobs.TokenOverwrite], counts[jobs.TokenUnchanged], counts[jobs.TokenSkipped])
		return nil
	}
	actor := *o.actor
	if actor == "" {
		actor = defaultActor()
	}
	n, err := jobs.EnqueueAppAccountTokens(ctx, s.river, plans, actor)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%d appAccountToken changes enqueued as %s (%d already pending), %d already set, %d skipped; storesync serve works them\n",
		n, actor, change-n, counts[jobs.TokenUnchanged], counts[jobs.TokenSkipped])
	return nil
}
