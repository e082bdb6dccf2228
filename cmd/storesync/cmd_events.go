package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/storesync/storesync/jobs"
	"github.com/storesync/storesync/ledger"
)

// eventsCommand is `storesync events`; main.go lists it in commands.
func eventsCommand() *command {
	return &command{
		name:    "events",
		summary: "the change feed: tail it, redeliver dead-lettered webhooks",
		usage: `storesync events tail [--after CURSOR] [--follow]
       storesync events redeliver [--endpoint ID]
       storesync events release RUN

Prints the change feed's events after CURSOR (default 0: from the beginning)
as JSON Lines, in feed order, the same events GET /v1/events answers. Each
event's "id" is a stable cursor: pass the last one printed as --after to go on.

  --after CURSOR   start after this event id
  --follow         keep polling (every second) for new events until interrupted

redeliver makes every dead-lettered webhook (see status, Event delivery) of
one endpoint, or of all, pending again with a fresh STORESYNC_EVENT_DEAD_AFTER;
a running "storesync serve" delivers them, in order per subscription.

release lets the webhooks of an import run with --events=hold go out
(RUN is the run id import and status print).`,
		run: runEvents,
	}
}

func runEvents(ctx context.Context, c *cli, args []string) error {
	if len(args) == 0 {
		return usagef("events: give a subcommand: tail, redeliver or release")
	}
	switch args[0] {
	case "tail":
		return runEventsTail(ctx, c, args[1:])
	case "redeliver":
		return runEventsRedeliver(ctx, c, args[1:])
	case "release":
		return runEventsRelease(ctx, c, args[1:])
	}
	return usagef("events: unknown subcommand %q: use tail, redeliver or release", args[0])
}

func runEventsTail(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("events tail", flag.ContinueOnError)
	after := fs.Int64("after", 0, "start after this event id")
	follow := fs.Bool("follow", false, "keep polling for new events")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("unexpected argument %q", rest[0])
	}
	if *after < 0 {
		return usagef("--after must be 0 or an event id")
	}
	s, err := openSession(ctx, c)
	if err != nil {
		return err
	}
	defer s.Close()
	enc := json.NewEncoder(c.stdout)
	_, err = jobs.TailEvents(ctx, s.ledger, *after, *follow, time.Second, func(e ledger.Event) error { return enc.Encode(e) })
	if *follow && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func runEventsRedeliver(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("events redeliver", flag.ContinueOnError)
	endpoint := fs.Int64("endpoint", 0, "only this endpoint's dead letters")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("unexpected argument %q", rest[0])
	}
	if *endpoint < 0 {
		return usagef("--endpoint must be an id from storesync endpoints list")
	}
	s, err := openSession(ctx, c)
	if err != nil {
		return err
	}
	defer s.Close()
	n, err := jobs.RedeliverDead(ctx, s.ledger, s.river, *endpoint)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "redelivering the dead letters of %d subscription queue(s)\n", n)
	return nil
}

func runEventsRelease(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("events release", flag.ContinueOnError)
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usagef("events release: give the import run id")
	}
	run, err := strconv.ParseInt(rest[0], 10, 64)
	if err != nil || run <= 0 {
		return usagef("events release: RUN must be an import run id (storesync status lists them)")
	}
	s, err := openSession(ctx, c)
	if err != nil {
		return err
	}
	defer s.Close()
	n, err := jobs.ReleaseImportEvents(ctx, s.ledger, s.river, run)
	if errors.Is(err, ledger.ErrNotFound) {
		return fmt.Errorf("import run %d was not run with --events=hold", run)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "import run %d released: %d subscription queue(s) to deliver\n", run, n)
	return nil
}
