package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/storesync/storesync/jobs"
	"github.com/storesync/storesync/ledger"
)

// endpointsCommand is `storesync endpoints`; main.go lists it in commands.
func endpointsCommand() *command {
	return &command{
		name:    "endpoints",
		summary: "the backend's webhook endpoints of the change feed: add, list, remove",
		usage: `storesync endpoints add URL | list | remove ID

add URL     stores an endpoint (https; http only for localhost) and prints its
            signing secret, whsec_…, once: give it to the backend, which
            verifies every webhook with a Standard Webhooks library. The
            endpoint receives the events sequenced from now on.
list        prints id, URL and creation time (never the secret)
remove ID   deletes the endpoint and its undelivered events`,
		run: runEndpoints,
	}
}

func runEndpoints(ctx context.Context, c *cli, args []string) error {
	if len(args) == 0 {
		return usagef("endpoints: give a subcommand: add, list or remove")
	}
	fs := flag.NewFlagSet("endpoints "+args[0], flag.ContinueOnError)
	rest, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	want := map[string]int{"add": 1, "list": 0, "remove": 1}
	n, ok := want[args[0]]
	if !ok {
		return usagef("endpoints: unknown subcommand %q: use add, list or remove", args[0])
	}
	if len(rest) != n {
		return usagef("endpoints %s takes %d argument(s)", args[0], n)
	}
	var id int64
	if args[0] == "add" {
		if err := jobs.ValidateEndpointURL(rest[0]); err != nil {
			return usagef("%v", err)
		}
	}
	if args[0] == "remove" {
		if id, err = strconv.ParseInt(rest[0], 10, 64); err != nil || id <= 0 {
			return usagef("endpoints remove: ID must be the number endpoints list shows")
		}
	}
	s, err := openSession(ctx, c)
	if err != nil {
		return err
	}
	defer s.Close()
	switch args[0] {
	case "add":
		e, err := jobs.AddEndpoint(ctx, s.ledger, rest[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "endpoint %d: %s\nsecret (shown once; the backend verifies webhooks with it): %s\n", e.ID, e.URL, e.Secret)
	case "list":
		eps, err := s.ledger.Endpoints(ctx)
		if err != nil {
			return err
		}
		if len(eps) == 0 {
			fmt.Fprintln(c.stdout, "no endpoints")
			return nil
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tURL\tADDED")
		for _, e := range eps {
			fmt.Fprintf(tw, "%d\t%s\t%s\n", e.ID, e.URL, e.CreatedAt.UTC().Format(time.RFC3339))
		}
		return tw.Flush()
	case "remove":
		if err := s.ledger.RemoveEndpoint(ctx, id); errors.Is(err, ledger.ErrNotFound) {
			return fmt.Errorf("no endpoint %d (see storesync endpoints list)", id)
		} else if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "endpoint %d removed\n", id)
	}
	return nil
}
