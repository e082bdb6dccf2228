package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/storesync/storesync/jobs"
	"github.com/storesync/storesync/ledger"
)

// writeWebhookStatus prints the webhook's answers (every `serve`, as
// stored by its WebhookLog) over the last minute and hour: rate, refusals
// and answer time.
func writeWebhookStatus(_ context.Context, s *statusContext, w io.Writer) error {
	if s.Status.WebhookErr != nil {
		return s.Status.WebhookErr
	}
	wh := s.Status.Webhook
	if wh.LastHour.Answers == 0 {
		fmt.Fprintln(w, "no webhook answers in the last hour")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "over\tanswers\trefused\tper second\tmean\tp50\tp99")
	for _, row := range []struct {
		name string
		a    ledger.WebhookAnswers
		rate float64
	}{{"last minute", wh.LastMinute, wh.PerSecondMinute}, {"last hour", wh.LastHour, wh.PerSecondHour}} {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", row.name, withCommas(row.a.Answers), withCommas(row.a.Refused),
			jobs.RateText(row.rate), jobs.LatencyText(row.a.Mean()), jobs.LatencyText(row.a.Quantile(0.5)),
			jobs.LatencyText(row.a.Quantile(0.99)))
	}
	return tw.Flush()
}
