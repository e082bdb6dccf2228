package jobs

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/ledger"
)

// KeptAsideResubmission is what ResubmitKeptAside did.
type KeptAsideResubmission struct {
	// Resubmitted counts kept-aside notifications that verified with the
	// current configuration and were stored with their processing job
	// (AlreadyStored of them were in the ledger already, e.g. brought by a
	// backfill: nothing more is enqueued for those).
	Resubmitted, AlreadyStored int
	// StillRefused counts, by verification status, those that still do
	// not verify; they stay kept aside.
	StillRefused map[string]int
}

// ResubmitKeptAside re-verifies every notification the webhook kept aside
// (ledger.KeepAside: Apple-signed, but for another bundle id, app Apple id
// or environment) with d.Verifier as it is configured now, in the
// environment each claims (Production or Sandbox, as the webhook accepts
// them). Those that verify are stored in the ledger as webhook
// notifications with their processing job, and leave the kept-aside table,
// each in one transaction; the others stay, counted by reason. It is the
// way back after fixing APPSTORE_BUNDLE_ID or APPSTORE_APP_APPLE_ID, and
// needs no call to Apple (unlike a backfill, it also covers notifications
// older than Apple's notification history). Running it twice, or
// concurrently, stores nothing twice. client only inserts; a running serve
// works the jobs.
func ResubmitKeptAside(ctx context.Context, d *Deps, client *river.Client[pgx.Tx]) (KeptAsideResubmission, error) {
	res := KeptAsideResubmission{StillRefused: map[string]int{}}
	if d.Verifier == nil {
		return res, errors.New("jobs: resubmitting kept-aside notifications needs a verifier (APPSTORE_* configuration)")
	}
	after := ""
	for {
		page, err := d.Ledger.KeptAsideNotifications(ctx, after, 100)
		if err != nil {
			return res, err
		}
		if len(page) == 0 {
			return res, nil
		}
		for _, k := range page {
			after = k.UUID
			env, p, err := verifyKeptAside(d, k.SignedPayload)
			if err != nil {
				var verr *appstore.VerificationError
				if !errors.As(err, &verr) {
					return res, fmt.Errorf("verifying kept-aside notification %s: %w", k.UUID, err)
				}
				res.StillRefused[verr.Status.String()]++
				continue
			}
			n := NotificationRecord(p, env, k.SignedPayload, ledger.SourceWebhook, nil)
			err = pgx.BeginFunc(ctx, d.Ledger.Pool(), func(tx pgx.Tx) error {
				l := d.Ledger.WithTx(tx)
				inserted, err := l.RecordNotification(ctx, n)
				if err != nil {
					return err
				}
				if inserted {
					if _, err := client.InsertTx(ctx, tx, ProcessNotificationArgs{NotificationUUID: n.UUID}, nil); err != nil {
						return fmt.Errorf("enqueueing the processing of %s: %w", n.UUID, err)
					}
				} else {
					res.AlreadyStored++
				}
				return l.DeleteKeptAside(ctx, k.UUID)
			})
			if err != nil {
				return res, err
			}
			res.Resubmitted++
		}
	}
}

// verifyKeptAside verifies a kept-aside payload as the webhook would: in
// the environment it claims, Production or Sandbox only (Xcode and
// LocalTesting payloads are unsigned, so never trusted).
func verifyKeptAside(d *Deps, signed string) (appstore.Environment, *appstore.NotificationPayload, error) {
	env, err := appstore.PeekNotificationEnvironment(signed)
	if err != nil {
		return "", nil, err
	}
	if env != appstore.Production && env != appstore.Sandbox {
		return "", nil, &appstore.VerificationError{Status: appstore.InvalidEnvironment,
			Reason: fmt.Sprintf("notification claims environment %q: only Production and Sandbox are accepted", env)}
	}
	v, err := d.verifierFor(env)
	if err != nil {
		return "", nil, err
	}
	p, err := v.VerifyNotification(signed)
	return env, p, err
}
