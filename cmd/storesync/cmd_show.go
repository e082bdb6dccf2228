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
		usage: `storesync show --original-transaction-id ID | --app-account-token UUID | --customer-id ID [--entitlements]
storesync show --original-transaction-id ID --signed

Prints the ledger's view of one subscription, or of every subscription of one
appAccountToken or customer, as JSON. Exits 1 with "not found" for an unknown id.
With --entitlements it prints instead what GET /v1/.../entitlements answers:
the entitlements held now under STORESYNC_ENTITLEMENTS_FILE (an unknown id
holds none).
With --signed it prints what Apple signed about the subscription, byte for
byte: {"originalTransactionId", "signedTransactions" (latest purchase first),
"signedRenewalInfo"}, each JWS verifiable with any App Store library or
"storesync verify".`,
		run: runShow,
	}
}

func runShow(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("show", flag.ContinueOnError)
	otid := fs.String("original-transaction-id", "", "the subscription's originalTransactionId")
	token := fs.String("app-account-token", "", "the customer's appAccountToken (UUID)")
	customer := fs.String("customer-id", "", "the company's customer id")
	ents := fs.Bool("entitlements", false, "print the entitlements held instead of the subscriptions")
	signed := fs.Bool("signed", false, "print the subscription's signed transactions and renewal info")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("unexpected argument %q", rest[0])
	}
	given := 0
	for _, v := range []string{*otid, *token, *customer} {
		if v != "" {
			given++
		}
	}
	if given != 1 {
		return usagef("give exactly one of --original-transaction-id, --app-account-token and --customer-id")
	}
	if *signed && (*otid == "" || *ents) {
		return usagef("--signed goes with --original-transaction-id, without --entitlements")
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
	switch {
	case *signed:
		out, err = l.SignedData(ctx, *otid)
	case *ents && *otid != "":
		out, err = l.EntitlementsByOriginalTransactionID(ctx, *otid)
	case *ents && *token != "":
		out, err = l.EntitlementsByAppAccountToken(ctx, *token)
	case *ents:
		out, err = l.EntitlementsByCustomerID(ctx, *customer)
	case *customer != "":
		var subs []*ledger.Subscription
		subs, err = l.SubscriptionsByCustomerID(ctx, *customer)
		out = struct {
			CustomerID    string                 `json:"customerId"`
			Subscriptions []*ledger.Subscription `json:"subscriptions"`
		}{*customer, subs}
	case *otid != "":
		out, err = l.Subscription(ctx, *otid)
	default:
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
