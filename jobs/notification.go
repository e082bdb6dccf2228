package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/ledger"
)

// ProcessNotificationArgs applies one stored notification to the ledger.
// It is inserted in the transaction that stored the notification (webhook,
// backfill, re-sync), so a stored notification is always processed.
type ProcessNotificationArgs struct {
	NotificationUUID string `json:"notification_uuid"`
}

// Kind is the River job kind.
func (ProcessNotificationArgs) Kind() string { return "process_notification" }

// InsertOpts puts live notifications on their own queue, ahead of bulk
// work; backfilled ones are inserted with PriorityBulk instead.
func (ProcessNotificationArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueNotifications, Priority: PriorityLive}
}

type processNotificationWorker struct {
	river.WorkerDefaults[ProcessNotificationArgs]
	d *Deps
}

func (w *processNotificationWorker) Work(ctx context.Context, job *river.Job[ProcessNotificationArgs]) error {
	// Answering Apple comes first: while the webhook is busy only a few
	// notifications are processed at a time (see IngestGovernor). A job
	// that waited too long gives its worker back and comes again soon,
	// without using an attempt.
	release, waited, ok := w.d.Ingest.Acquire(ctx)
	if waited > 0 {
		w.d.Metrics.processingYielded(waited)
	}
	if !ok {
		if ctx.Err() != nil {
			return w.d.jobDone(ctx, job.JobRow, ctx.Err())
		}
		return w.d.jobDone(ctx, job.JobRow, river.JobSnooze(time.Second), slog.String("notification_uuid", job.Args.NotificationUUID))
	}
	defer release()
	res, err := w.d.processNotification(ctx, job.Args.NotificationUUID)
	attrs := []slog.Attr{slog.String("notification_uuid", job.Args.NotificationUUID)}
	if res != nil {
		attrs = append(attrs, slog.String("type", res.Type), slog.String("environment", string(res.Environment)),
			slog.String("original_transaction_id", res.OriginalTransactionID), slog.Int("changed", res.Changed),
			slog.Bool("import_enqueued", res.ImportEnqueued), slog.Bool("refreshed", res.Refreshed))
		if res.Subtype != "" {
			attrs = append(attrs, slog.String("subtype", res.Subtype))
		}
		if res.Note != "" {
			attrs = append(attrs, slog.String("note", res.Note))
		}
	}
	return w.d.jobDone(ctx, job.JobRow, err, attrs...)
}

// notificationResult says what processing one notification did.
type notificationResult struct {
	Type, Subtype         string
	Environment           appstore.Environment
	OriginalTransactionID string
	Changed               int  // subscriptions whose state moved
	ImportEnqueued        bool // the subscription was new: full import enqueued
	Refreshed             bool // statuses re-read because the payload cannot settle the state
	Note                  string
}

// Notification types whose payload does not settle a subscription's state
// on its own: the subscription is re-read from Get All Subscription
// Statuses. (Mass-extension summaries name no subscription; see
// ledger.MarkProductForReconcile.)
var refreshTypes = map[string]bool{
	"CONSUMPTION_REQUEST": true, // refund requested: the outcome comes later, the state may have moved
	"RENEWAL_EXTENSION":   true, // FAILURE names one subscription whose extension failed
}

// processNotification loads a stored notification, finishes its
// verification (see verifyStored), applies its signed facts and marks it
// processed in one transaction, enqueueing a full import when the ledger never synced the
// subscription's history. When the payload cannot settle the state alone it
// then refreshes the subscription's statuses at interactive priority. TEST
// and unknown types never fail. A refresh that cannot happen (no App Store
// client configured, or a permanent Apple error) does not fail the job
// either: the notification is recorded and processed, and the log line's
// note says why the refresh was skipped; only transient errors retry.
func (d *Deps) processNotification(ctx context.Context, uuid string) (*notificationResult, error) {
	ctx = ledger.WithCause(ctx, ledger.Cause{NotificationUUID: uuid}) // the change feed names the notification
	stored, err := d.Ledger.NotificationPayloadByUUID(ctx, uuid)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, river.JobCancel(fmt.Errorf("notification %s is not stored", uuid))
	}
	if err != nil {
		return nil, err
	}
	res := &notificationResult{Type: stored.Type, Subtype: stored.Subtype, Environment: stored.Environment,
		OriginalTransactionID: stored.OriginalTransactionID}
	v, err := d.verifierFor(stored.Environment)
	if err != nil {
		return res, err
	}
	vn, err := verifyStored(v, stored)
	if err != nil {
		d.Metrics.VerifyFailure(err)
		var verr *appstore.VerificationError
		if errors.As(err, &verr) && !verr.Retryable() {
			// Stored after verifying its signature, so either a nested
			// field fails (signed by Apple's key around it, yet not valid
			// itself: forged, wrong bundle, environment or chain) or the
			// configuration changed (roots, bundle id). Retrying cannot
			// help: keep it, say why, and do not retry ten times.
			if merr := d.Ledger.MarkNotificationProcessed(ctx, uuid, "verification: "+err.Error()); merr != nil {
				return res, merr
			}
			return res, river.JobCancel(err)
		}
		return res, err
	}
	facts, refreshOTID, note := notificationPlan(vn)
	res.Note = note
	if res.OriginalTransactionID == "" {
		res.OriginalTransactionID = refreshOTID
	}
	if stored.ProcessedAt == nil {
		var client *river.Client[pgx.Tx]
		if client, err = river.ClientFromContextSafely[pgx.Tx](ctx); err != nil {
			return res, ErrNoRiverClient
		}
		err = pgx.BeginFunc(ctx, d.Ledger.Pool(), func(tx pgx.Tx) error {
			changes, err := d.Ledger.WithTx(tx).Apply(ctx, facts)
			if err != nil {
				return err
			}
			res.Changed, res.ImportEnqueued = 0, false
			for _, c := range changes {
				if c.Changed() {
					res.Changed++
				}
				if c.Before == nil || c.Before.HistoryRevision == "" {
					// New to the ledger, or known only from single signed
					// items (another account's statuses): one transaction
					// is not its history.
					if err := d.enqueueImportTx(ctx, client, tx, c.After.OriginalTransactionID); err != nil {
						return err
					}
					res.ImportEnqueued = true
				}
			}
			if vn.Payload.Summary != nil && vn.Payload.NotificationType == "RENEWAL_EXTENSION" {
				if err := d.Ledger.WithTx(tx).MarkProductForReconcile(ctx, vn.Payload.Summary.ProductID); err != nil {
					return err
				}
			}
			return d.Ledger.WithTx(tx).MarkNotificationProcessed(ctx, uuid, "")
		})
		if err != nil {
			return res, err
		}
	}
	if refreshOTID != "" {
		if d.Apple == nil {
			// Recorded and its signed facts applied above; without an App
			// Store client the refresh can never happen, and retrying would
			// only keep the job (say a CONSUMPTION_REQUEST) failing until
			// River discards it. Reconciliation re-reads the subscription
			// once a client is configured.
			res.Note += "; statuses not refreshed: no App Store client configured"
			return res, nil
		}
		ctx := appstore.WithPriority(ctx, appstore.PriorityInteractive)
		changes, _, err := d.syncStatuses(ctx, refreshOTID)
		if err != nil && isPermanentAppleError(err) {
			// Apple will answer the same however often it is asked (an id
			// it does not know, a key it refuses, data that fails
			// verification): the notification is processed; say why the
			// refresh did not happen instead of failing the job.
			res.Note += "; statuses not refreshed: " + reasonOf(err)
			return res, nil
		}
		if err != nil {
			return res, appleOutcome(fmt.Errorf("refreshing %s: %w", refreshOTID, err))
		}
		res.Refreshed = true
		for _, c := range changes {
			if c.Changed() {
				res.Changed++
			}
			if c.After != nil && c.After.HistoryRevision == "" {
				// The statuses answer covers the whole account: a subscription
				// it revealed needs its history too.
				if err := d.enqueueImport(ctx, c.After.OriginalTransactionID); err != nil {
					return res, err
				}
				res.ImportEnqueued = true
			}
		}
	}
	return res, nil
}

// verifyStored finishes the verification of a stored notification (read
// by NotificationPayloadByUUID: its payload as stored, decoded, when it
// is) with v (the verifier of the environment it was stored
// under): its identity claims (bundle id, app Apple id, environment, as v
// is configured now) and its nested signedTransactionInfo and
// signedRenewalInfo in full (signature, chain, bundle, environment), but
// not the outer signature and chain again.
//
// Why that is enough: every way into the notifications table verifies the
// outer signature and chain first, with the configured roots, and stores
// nothing that fails:
//   - the webhook (httpapi): VerifyNotificationDecoded, in the environment
//     the row is stored under;
//   - backfill and re-sync from Apple's notification history
//     (storeHistoryItems): VerifyNotificationDeep;
//   - kept-aside notifications stored by ResubmitKeptAside:
//     VerifyNotification, in the environment the row is stored under;
//   - ledger.RecordNotifications is the only writer of the table and the
//     three above its only callers that enqueue processing (tests and
//     benchmarks store notifications signed by the CA their verifier
//     trusts; population.Fill's COPY rows are processed already).
//
// Verifying it again here cost one ECDSA verification per notification
// (a third of processing's verification) and proved nothing the write did
// not. What is still checked is what the webhook leaves to processing (the
// nested JWS, which the outer signature vouches for only as bytes) and what
// may have changed since (the configured bundle id, app Apple id and
// environment). A change of trusted roots is still caught through the
// nested JWS, which carry the same chain; a notification with none applies
// no fact on the strength of its outer payload alone (see
// notificationPlan: at most a mass-extension summary moves its product up
// the next reconciliation, which asks Apple). A new way of storing
// notifications must verify before it writes (ledger.RecordNotifications
// says so), or this must verify its rows in full again.
func verifyStored(v *appstore.Verifier, stored *ledger.StoredNotification) (*appstore.VerifiedNotification, error) {
	var p *appstore.NotificationPayload
	var err error
	if stored.PayloadJSON != "" {
		p, err = appstore.PeekNotificationPayload(stored.PayloadJSON)
	} else {
		p, err = appstore.PeekNotification(stored.SignedPayload)
	}
	if err != nil {
		return nil, err
	}
	return v.VerifyNotificationNested(p)
}

// notificationPlan decides what a verified notification contributes: the
// facts to apply, the subscription to refresh from Get All Subscription
// Statuses ("" for none) and a note for the log.
func notificationPlan(vn *appstore.VerifiedNotification) (facts ledger.Facts, refreshOTID, note string) {
	p := vn.Payload
	var txJWS, riJWS string
	if p.Data != nil {
		txJWS, riJWS = p.Data.SignedTransactionInfo, p.Data.SignedRenewalInfo
	}
	otid := ""
	switch {
	case vn.Transaction != nil:
		otid = vn.Transaction.OriginalTransactionID
	case vn.RenewalInfo != nil:
		otid = vn.RenewalInfo.OriginalTransactionID
	}
	switch {
	case p.NotificationType == "TEST":
		return facts, "", "test notification: recorded"
	case p.Data == nil && p.Summary != nil:
		return facts, "", "mass extension summary of product " + p.Summary.ProductID + ": its subscriptions are checked first by the next reconciliation"
	case p.Data == nil:
		return facts, "", "no data: recorded only"
	case vn.Transaction != nil && !ledger.IsSubscriptionTransaction(vn.Transaction):
		// A consumable, non-consumable or non-renewing purchase (say
		// ONE_TIME_CHARGE, or its REFUND): its transaction is kept, but
		// Apple has no subscription status to apply or re-read for it.
		facts.Transactions = []ledger.SignedTransaction{{Payload: vn.Transaction, JWS: txJWS}}
		return facts, "", "transaction of type " + vn.Transaction.Type + ": not a subscription, transaction stored only"
	}
	facts = ledger.NotificationFacts(p, vn.Transaction, txJWS, vn.RenewalInfo, riJWS)
	switch {
	case otid == "":
		note = "no transaction or renewal info: recorded only"
	case vn.Transaction == nil:
		refreshOTID, note = otid, "no signedTransactionInfo: refreshing statuses"
	case refreshTypes[p.NotificationType]:
		refreshOTID, note = otid, p.NotificationType+": refreshing statuses"
	case p.Data.Status == 0:
		refreshOTID, note = otid, "no status: refreshing statuses"
	case !knownNotificationTypes[p.NotificationType]:
		note = "unknown notification type: its signed facts applied"
	}
	return facts, refreshOTID, note
}

// knownNotificationTypes are the V2 types of docs/appstore-api.md §6.3. Others
// are stored, logged and applied for their signed facts, never failed.
var knownNotificationTypes = map[string]bool{
	"SUBSCRIBED": true, "DID_CHANGE_RENEWAL_PREF": true, "DID_CHANGE_RENEWAL_STATUS": true,
	"OFFER_REDEEMED": true, "DID_RENEW": true, "EXPIRED": true, "DID_FAIL_TO_RENEW": true,
	"GRACE_PERIOD_EXPIRED": true, "PRICE_INCREASE": true, "REFUND": true, "REFUND_DECLINED": true,
	"REFUND_REVERSED": true, "CONSUMPTION_REQUEST": true, "RENEWAL_EXTENDED": true,
	"RENEWAL_EXTENSION": true, "REVOKE": true, "TEST": true, "EXTERNAL_PURCHASE_TOKEN": true,
	"ONE_TIME_CHARGE": true, "RESCIND_CONSENT": true, "METADATA_UPDATE": true, "MIGRATION": true,
	"PRICE_CHANGE": true,
}

// enqueueImport is enqueueImportTx outside a transaction (imports are
// unique per subscription, so a repeat is skipped).
func (d *Deps) enqueueImport(ctx context.Context, otid string) error {
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return ErrNoRiverClient
	}
	if _, err := client.Insert(ctx, ImportArgs{OriginalTransactionID: otid}, nil); err != nil {
		return fmt.Errorf("enqueueing the import of %s: %w", otid, err)
	}
	return nil
}

// enqueueImportTx enqueues, in tx, the full import (statuses and whole
// history) of a subscription the ledger had never seen: not from a file, so
// RunID 0 and no customer link. Imports are unique per subscription.
func (d *Deps) enqueueImportTx(ctx context.Context, client *river.Client[pgx.Tx], tx pgx.Tx, otid string) error {
	_, err := client.InsertTx(ctx, tx, ImportArgs{OriginalTransactionID: otid}, nil)
	if err != nil {
		return fmt.Errorf("enqueueing the import of %s: %w", otid, err)
	}
	return nil
}
