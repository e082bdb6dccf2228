package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// writeKeptAsideStatus prints the notifications the webhook kept aside
// (Apple-signed, but for another bundle id, app Apple id or environment)
// by reason, with what the latest one claimed: a misconfigured
// APPSTORE_BUNDLE_ID or notification URL shows here rather than as
// silently missing notifications.
func writeKeptAsideStatus(_ context.Context, s *statusContext, w io.Writer) error {
	if s.Status.KeptAsideErr != nil {
		return s.Status.KeptAsideErr
	}
	reasons := s.Status.KeptAside
	if len(reasons) == 0 {
		fmt.Fprintln(w, "no notifications kept aside")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "reason\tnotifications\tdeliveries\tlatest\tlatest claimed bundle\tlatest claimed environment")
	for _, r := range reasons {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Reason, withCommas(r.Notifications), withCommas(r.Deliveries),
			r.Latest.UTC().Format(time.RFC3339), r.LatestBundleID, r.LatestEnvironment)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "Apple signed these for another app or environment; the ledger refused them. Check APPSTORE_BUNDLE_ID,")
	fmt.Fprintln(w, "APPSTORE_APP_APPLE_ID and the notification URLs in App Store Connect; once fixed, `storesync resubmit`")
	fmt.Fprintln(w, "stores those that were this app's (README, Troubleshooting).")
	return nil
}
