package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// writeDeliveryStatus prints each webhook endpoint's backlog: pending and
// dead-lettered events (redeliver with `storesync events redeliver`).
func writeDeliveryStatus(_ context.Context, s *statusContext, w io.Writer) error {
	if s.Status.DeliveryErr != nil {
		return s.Status.DeliveryErr
	}
	stats := s.Status.Delivery
	if len(stats) == 0 {
		fmt.Fprintln(w, "no endpoints (storesync endpoints add URL)")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENDPOINT\tURL\tDELIVERED\tPENDING\tOLDEST PENDING\tHELD\tDEAD\tNOT FANNED OUT\tLAST ERROR")
	for _, st := range stats {
		oldest := "-"
		if st.OldestSince != nil {
			oldest = time.Since(*st.OldestSince).Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%s\t%d\t%d\t%d\t%s\n", st.Endpoint.ID, st.Endpoint.URL, st.Delivered, st.Pending,
			oldest, st.Held, st.Dead, st.Behind, st.LastError)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, st := range stats {
		if st.Dead > 0 {
			fmt.Fprintln(w, "dead-lettered events: storesync events redeliver [--endpoint ID] retries them")
			break
		}
	}
	return nil
}
