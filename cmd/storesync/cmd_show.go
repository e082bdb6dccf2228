package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"

	"github.com/storesync/storesync/ledger"
)

// showCommand is `storesync show`; main.go lists it in commands.
func showCommand() *command {
	return &command{
		name:    "show",
		summary: "print the ledger's view of a subscription or a customer as JSON",
		usage: `storesync show --original-transaction-id ID | --app-account-token UUID

Prints the ledger's view of one subscription, or of every subscription of one
appAccountToken, as JSON. Exits 1 with "not found" for an unknown id.`,
		run: runShow,
	}
}

func runShow(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("show", flag.ContinueOnError)
	otid := fs.String("original-transaction-id", "", "the subscription's originalTransactionId")
	token := fs.String("app-account-token", "", "the customer's appAccountToken (UUID)")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("unexpected argument %q", rest[0])
	}
	if (*otid == "") == (*token == "") {
		return usagef("give exactly one of --original-transaction-id and --app-account-token")
	}
	if *token != "" && !ledger.IsUUID(*token) {
		return usagef("--app-account-token %q is not a UUID", *token)
	}
	s, err := openSession(ctx, c)
	if err != nil {
		return err
	}
	defer s.Close()
	l := s.ledger

	var out any
	if *otid != "" {
		out, err = l.Subscription(ctx, *otid)
	} else {
		var subs []*ledger.Subscription
		subs, err = l.SubscriptionsByAppAccountToken(ctx, *token)
		out = struct {
			AppAccountToken string                 `json:"appAccountToken"`
			Subscriptions   []*ledger.Subscription `json:"subscriptions"`
		}{*token, subs}
	}
	if errors.Is(err, ledger.ErrNotFound) {
		return errors.New("not found")
	}
	if err != nil {
		return err
	}
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
