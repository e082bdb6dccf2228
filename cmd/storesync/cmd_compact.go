package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/storesync/storesync/jobs"
	"github.com/storesync/storesync/ledger"
)

// compactCommand is `storesync compact`; main.go lists it in commands.
func compactCommand() *command {
	return &command{
		name:    "compact",
		summary: "store each certificate chain once: rewrite older rows compact; --wait prints progress",
		usage: `storesync compact [--again] [--wait]

Enqueues the certificate compaction: rows stored before storesync kept each
x5c certificate chain once (transactions, renewal info, notifications,
kept-aside notifications) are rewritten in their compact form, in batches,
while storesync works normally. A running "storesync serve" works it (and
resumes an unfinished pass by itself when it starts). Each JWS is rebuilt
byte for byte on read; one that would not be is left as it came.

  --again  start a new pass when the last one is done (finds rows written by
           an older storesync since); without it a finished pass does nothing
  --wait   wait until the pass is done, printing its progress`,
		run: runCompact,
	}
}

func runCompact(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("compact", flag.ContinueOnError)
	again := fs.Bool("again", false, "start a new pass when the last one is done")
	wait := fs.Bool("wait", false, "wait until the pass is done")
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
	job, err := jobs.EnqueueCompaction(ctx, s.river, s.ledger, *again)
	if err != nil {
		return err
	}
	if job == nil {
		p, err := s.ledger.CompactionProgress(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintln(c.stdout, "nothing to compact: "+compactionLine(p))
		return nil
	}
	fmt.Fprintf(c.stdout, "enqueued the certificate compaction (job %d)\n", job.ID)
	if !*wait {
		return nil
	}
	last := ""
	hinted, start := false, time.Now()
	p, err := jobs.WaitCompaction(ctx, s.river, s.ledger, job.ID, 0, func(p ledger.Compaction) {
		if line := compactionLine(p); line != last && !p.Done() {
			fmt.Fprintln(c.stderr, line)
			last = line
		}
		if scanned, _, _ := p.Totals(); scanned == 0 && !hinted && time.Since(start) > 5*time.Second {
			hinted = true
			fmt.Fprintln(c.stderr, "waiting for a running `storesync serve` to work the compaction…")
		}
	})
	if p != nil && err == nil {
		fmt.Fprintln(c.stdout, compactionLine(p))
	}
	return err
}
