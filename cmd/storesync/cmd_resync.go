package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/storesync/storesync/jobs"
	"github.com/storesync/storesync/ledger"
)

// resyncCommand is `storesync resync`; main.go lists it in commands.
func resyncCommand() *command {
	return &command{
		name:    "resync",
		summary: "re-fetch and repair one customer's subscriptions now, at high priority",
		usage: `storesync resync --original-transaction-id ID | --app-account-token UUID | --customer-id ID | --order-id ID [--wait] [--timeout D]

Enqueues a high-priority re-sync of one target: Apple's statuses of the
customer's account, the transaction history since the stored revision, and
the customer's notification history (missing notifications are stored and
processed). An appAccountToken or customer id is resolved through the ledger;
an order id (the Order ID on the customer's receipt email, e.g. MKJ9XFLQ5L)
through Apple's Look Up Order ID: an order Apple does not know fails the
re-sync with that reason.
One re-sync per target runs at a time: asking again while one is pending
waits for that one. A running "storesync serve" works the job.

  --wait        wait for the result and print what changed (field: before → after)
  --timeout D   how long --wait waits (default 2m)`,
		run: runResync,
	}
}

func runResync(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("resync", flag.ContinueOnError)
	var target jobs.ResyncTarget
	fs.StringVar(&target.OriginalTransactionID, "original-transaction-id", "", "")
	fs.StringVar(&target.AppAccountToken, "app-account-token", "", "")
	fs.StringVar(&target.CustomerID, "customer-id", "", "")
	fs.StringVar(&target.OrderID, "order-id", "", "")
	wait := fs.Bool("wait", false, "")
	timeout := fs.Duration("timeout", 2*time.Minute, "")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("unexpected argument %q", rest[0])
	}
	if err := target.Validate(); err != nil {
		return usagef("%s", strings.NewReplacer("originalTransactionId", "--original-transaction-id",
			"appAccountToken", "--app-account-token", "customerId", "--customer-id", "orderId", "--order-id").Replace(err.Error()))
	}
	if *timeout <= 0 {
		return usagef("--timeout %s: use a positive duration such as 2m", *timeout)
	}
	s, err := openSession(ctx, c)
	if err != nil {
		return err
	}
	defer s.Close()
	client := s.river
	// An unknown customer is bad input: say so now rather than enqueue a
	// job that can only be cancelled.
	if _, err := jobs.ResyncTargetIDs(ctx, s.ledger, target); errors.Is(err, ledger.ErrNotFound) {
		return fmt.Errorf("not found: no subscription in the ledger has %s; re-sync by --original-transaction-id, or import the customer first", target)
	} else if err != nil {
		return err
	}
	st, err := jobs.EnqueueResync(ctx, client, target)
	if err != nil {
		return fmt.Errorf("enqueueing the re-sync: %w", err)
	}
	if st.Duplicate {
		fmt.Fprintf(c.stdout, "re-sync of %s already pending as job %d\n", target, st.JobID)
	} else {
		fmt.Fprintf(c.stdout, "re-sync of %s enqueued as job %d\n", target, st.JobID)
	}
	if !*wait {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	hint := time.AfterFunc(15*time.Second, func() {
		if s, err := jobs.ResyncStatusOf(context.Background(), client, st.JobID); err == nil && s.Attempt == 0 {
			fmt.Fprintln(c.stderr, "still waiting: the re-sync has not started; is a `storesync serve` process running?")
		}
	})
	defer hint.Stop()
	st, err = jobs.WaitResync(wctx, client, st.JobID, 250*time.Millisecond)
	if err != nil {
		if st != nil && errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("the re-sync (job %d) is still %s after %s; it continues in the background", st.JobID, st.State, *timeout)
		}
		return err
	}
	return printResync(c.stdout, st)
}

// printResync prints a finished re-sync: one line per changed field, then
// what was read; an error when the job did not complete.
func printResync(w io.Writer, st *jobs.ResyncStatus) error {
	if st.State != "completed" {
		reason := "no error recorded"
		if n := len(st.Errors); n > 0 {
			reason = st.Errors[n-1]
		}
		return fmt.Errorf("re-sync of %s %s: %s", st.Target, st.State, reason)
	}
	r := st.Result
	if r == nil {
		return fmt.Errorf("re-sync of %s completed without a result", st.Target)
	}
	if len(r.Changes) == 0 {
		fmt.Fprintln(w, "no changes: the ledger already matched Apple")
	}
	for _, ch := range r.Changes {
		fmt.Fprintf(w, "%s %s: %s → %s\n", ch.OriginalTransactionID, ch.Field, orDash(ch.Before), orDash(ch.After))
	}
	fmt.Fprintf(w, "re-read %d subscription(s) (%s), %d history page(s); notifications: %d seen, %d missing and now stored\n",
		len(r.Subscriptions), strings.Join(r.Subscriptions, ", "), r.HistoryPages, r.NotificationsSeen, r.NotificationsStored)
	for _, e := range r.Errors {
		fmt.Fprintln(w, "error:", e)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
