package jobs

import (
	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/ledger"
)

// NotificationRecord is what the ledger stores of a notification whose
// signedPayload p was decoded from has been verified, by the webhook or
// from Apple's notification history (backfill, re-sync): source says which
// (ledger.SourceWebhook, …), attempts are the history's send attempts (nil
// from the webhook). The transaction ids (columns for lookups, never acted
// on) are read from the inner fields without verifying them, which the
// outer signature makes safe for that use (see appstore.PeekTransactionIDs);
// an inner field that does not decode leaves them empty, and processing,
// which verifies it, records why it fails. The UUID is p's as is: callers
// check it is one (ledger.IsUUID) before storing.
func NotificationRecord(p *appstore.NotificationPayload, env appstore.Environment, signedPayload, source string,
	attempts []appstore.SendAttemptItem) ledger.Notification {
	n := ledger.Notification{
		UUID: p.NotificationUUID, Type: p.NotificationType, Subtype: p.Subtype, Environment: env,
		SignedDate: p.SignedDate, SignedPayload: signedPayload, Source: source, SendAttempts: attempts,
	}
	if d := p.Data; d != nil {
		if d.SignedTransactionInfo != "" {
			n.OriginalTransactionID, n.TransactionID, _ = appstore.PeekTransactionIDs(d.SignedTransactionInfo)
		}
		if n.OriginalTransactionID == "" && d.SignedRenewalInfo != "" {
			n.OriginalTransactionID, _, _ = appstore.PeekTransactionIDs(d.SignedRenewalInfo)
		}
	}
	return n
}
