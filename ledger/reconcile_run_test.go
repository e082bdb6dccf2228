package ledger_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

func TestReconcileRunLifecycle(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	l := ledger.New(pool)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `INSERT INTO subscriptions (original_transaction_id) SELECT 's' || g FROM generate_series(1, 15) g`); err != nil {
		t.Fatal(err)
	}
	night1 := time.Date(2026, 11, 2, 3, 0, 0, 0, time.UTC)
	n := ledger.NewReconcileRun{Key: "nightly 2026-11-02T03:00:00Z", AsOf: night1, CallCap: 500,
		FullCycle: 7 * 24 * time.Hour, FirstSweep: 24 * time.Hour, MaxSweep: 180 * 24 * time.Hour}
	run, created, err := l.StartReconcileRun(ctx, n)
	if err != nil || !created {
		t.Fatalf("created %v err %v", created, err)
	}
	if run.Phase != ledger.PhaseSweep || run.CallCap != 500 || run.TotalSubscriptions != 15 || run.RollingQuota != 3 ||
		!run.SweepSince.Equal(night1.Add(-24*time.Hour)) || !run.SweepUntil.Equal(night1) || !run.AsOf.Equal(night1) {
		t.Fatalf("new run %+v", run)
	}
	// Starting the same key again (a job run again) continues it.
	again, created, err := l.StartReconcileRun(ctx, n)
	if err != nil || created || again.ID != run.ID {
		t.Fatalf("restart: created %v id %d/%d err %v", created, again.ID, run.ID, err)
	}

	cursor := ledger.SelectCursor{Reason: ledger.ReasonRolling, PastNulls: true, Key: &night1, ID: "s7"}
	if err := l.SetReconcileProgress(ctx, run.ID, ledger.PhaseRolling, cursor); err != nil {
		t.Fatal(err)
	}
	for _, o := range []ledger.CheckOutcome{
		{Reason: ledger.ReasonDue, Calls: 1, Repaired: true, Subscriptions: 1},
		{Reason: ledger.ReasonRolling, Calls: 2, Subscriptions: 3},
		{Reason: ledger.ReasonRolling, Calls: 1, Failed: true, Subscriptions: 1},
	} {
		if err := l.CountCheck(ctx, run.ID, o); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.AddReconcileCalls(ctx, run.ID, 1); err != nil {
		t.Fatal(err)
	}
	findings := []ledger.Drift{
		{OriginalTransactionID: "s1", Class: ledger.DriftExpiredAtApple, Field: "status", LedgerValue: "active", AppleValue: "expired"},
		{OriginalTransactionID: "s1", Class: ledger.DriftRenewalChanged, Field: "expires_date", LedgerValue: "a", AppleValue: "b"},
		{OriginalTransactionID: "s1", Class: ledger.DriftAutoRenewChanged, Field: "auto_renew_status", LedgerValue: "true", AppleValue: "false"},
		{OriginalTransactionID: "s2", Class: ledger.DriftRenewalChanged, Field: "expires_date", LedgerValue: "c", AppleValue: "d"},
		{OriginalTransactionID: "s2", Class: ledger.DriftRenewalChanged, Field: "latest_transaction_id", LedgerValue: "1", AppleValue: "2"},
	}
	idsOut, err := l.RecordDrift(ctx, run.ID, findings)
	if err != nil || len(idsOut) != len(findings) {
		t.Fatalf("ids %v err %v", idsOut, err)
	}
	if err := l.MarkDriftRepaired(ctx, idsOut[:3]); err != nil {
		t.Fatal(err)
	}
	if _, err := l.RecordDrift(ctx, run.ID, []ledger.Drift{{OriginalTransactionID: "s3", Field: "status"}}); err == nil {
		t.Fatal("a finding without a class was recorded")
	}
	if err := l.FinishReconcileRun(ctx, run.ID, "call cap reached", ""); err != nil {
		t.Fatal(err)
	}
	done, err := l.ReconcileRunByKey(ctx, n.Key)
	if err != nil {
		t.Fatal(err)
	}
	if done.Phase != ledger.PhaseDone || done.FinishedAt == nil || done.StoppedReason != "call cap reached" ||
		done.CallsUsed != 4+1 || done.SweepNew != 0 || done.Failed != 1 || done.Repaired != 1 || done.CheckedTotal() != 5 ||
		!reflect.DeepEqual(done.Checked, map[string]int64{"due": 1, "rolling": 4}) ||
		done.DriftedSubscriptions != 2 ||
		!reflect.DeepEqual(done.Drifted, map[string]int64{"expired_at_apple": 1, "renewal_changed": 2, "auto_renew_changed": 1}) ||
		!reflect.DeepEqual(done.Cursor, cursor) {
		t.Fatalf("finished run %+v", done)
	}
	drift, err := l.DriftOfRun(ctx, run.ID)
	if err != nil || len(drift) != 5 {
		t.Fatalf("drift %v err %v", drift, err)
	}
	for i, d := range drift {
		if d.ID != idsOut[i] || d.Field != findings[i].Field || d.AppleValue != findings[i].AppleValue || (d.RepairedAt != nil) != (i < 3) {
			t.Fatalf("drift %d: %+v", i, d)
		}
	}

	// The next night sweeps from this run's AsOf; the latest run is it.
	night2 := night1.Add(24 * time.Hour)
	n2 := n
	n2.Key, n2.AsOf = "nightly 2026-11-03T03:00:00Z", night2
	run2, created, err := l.StartReconcileRun(ctx, n2)
	if err != nil || !created || !run2.SweepSince.Equal(night1) {
		t.Fatalf("second run %+v created %v err %v", run2, created, err)
	}
	latest, err := l.LatestReconcileRun(ctx)
	if err != nil || latest.ID != run2.ID {
		t.Fatalf("latest %+v err %v", latest, err)
	}
	list, err := l.ReconcileRuns(ctx, 5)
	if err != nil || len(list) != 2 || list[0].ID != run2.ID || list[1].ID != run.ID {
		t.Fatalf("runs %v err %v", list, err)
	}
	// A sweep never reaches further back than MaxSweep.
	n3 := n
	n3.Key, n3.AsOf, n3.MaxSweep = "manual far", night2.Add(400*24*time.Hour), 180*24*time.Hour
	run3, _, err := l.StartReconcileRun(ctx, n3)
	if err != nil || !run3.SweepSince.Equal(n3.AsOf.Add(-180*24*time.Hour)) {
		t.Fatalf("far run %+v err %v", run3, err)
	}
	if _, err := l.ReconcileRunByKey(ctx, "nope"); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("unknown key: %v", err)
	}
}

func TestFinishReconcileSweepRecordsMissingNotifications(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	l := ledger.New(pool)
	ctx := context.Background()
	asOf := time.Date(2026, 11, 3, 3, 0, 0, 0, time.UTC)
	run, _, err := l.StartReconcileRun(ctx, ledger.NewReconcileRun{Key: "k", AsOf: asOf, FirstSweep: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	in := asOf.Add(-time.Hour).UnixMilli()
	for _, n := range []struct {
		uuid, source, typ, subtype string
		signed                     int64
		receivedBeforeRun          bool
		processed                  bool
	}{
		{"00000000-0000-4000-8000-000000000001", "backfill", "DID_RENEW", "", in, false, true},
		{"00000000-0000-4000-8000-000000000002", "backfill", "DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_DISABLED", in + 1, false, false},
		{"00000000-0000-4000-8000-000000000003", "webhook", "DID_RENEW", "", in, false, true},                                     // arrived live
		{"00000000-0000-4000-8000-000000000004", "backfill", "DID_RENEW", "", asOf.Add(-48 * time.Hour).UnixMilli(), false, true}, // before the window
		{"00000000-0000-4000-8000-000000000005", "backfill", "EXPIRED", "", in, true, true},                                       // found by an earlier backfill
	} {
		received := "now()"
		if n.receivedBeforeRun {
			received = "now() - interval '1 day'"
		}
		processed := "NULL"
		if n.processed {
			processed = "now()"
		}
		if _, err := pool.Exec(ctx, `INSERT INTO notifications (notification_uuid, notification_type, subtype, environment,
			signed_date, original_transaction_id, signed_payload, source, received_at, processed_at)
			VALUES ($1, $2, $3, 'Production', $4, '2000', 'x', $5, `+received+`, `+processed+`)`,
			n.uuid, n.typ, n.subtype, n.signed, n.source); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `INSERT INTO backfill_windows (environment, start_date, end_date, pages)
		VALUES ('Production', $1, $2, 3), ('Production', $3, $4, 7)`,
		asOf.Add(-24*time.Hour), asOf, asOf.Add(-30*24*time.Hour), asOf.Add(-29*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := l.SetReconcileSweepJobs(ctx, run.ID, []int64{11, 12}); err != nil {
		t.Fatal(err)
	}
	run, err = l.ReconcileRunByID(ctx, run.ID)
	if err != nil || !reflect.DeepEqual(run.SweepJobs, []int64{11, 12}) {
		t.Fatalf("sweep jobs %v err %v", run.SweepJobs, err)
	}
	var found int64
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		found, err = l.WithTx(tx).FinishReconcileSweep(ctx, run)
		return err
	})
	if err != nil || found != 2 {
		t.Fatalf("found %d err %v", found, err)
	}
	run, err = l.ReconcileRunByID(ctx, run.ID)
	if err != nil || run.Phase != ledger.PhaseTargeted || run.SweepNew != 2 || run.CallsUsed != 3 ||
		run.DriftedSubscriptions != 1 || run.Drifted["missing_notification"] != 1 {
		t.Fatalf("after sweep %+v err %v", run, err)
	}
	drift, err := l.DriftOfRun(ctx, run.ID)
	if err != nil || len(drift) != 2 {
		t.Fatalf("drift %+v err %v", drift, err)
	}
	if drift[0].AppleValue != "DID_RENEW 00000000-0000-4000-8000-000000000001" || drift[0].RepairedAt == nil ||
		drift[1].AppleValue != "DID_CHANGE_RENEWAL_STATUS/AUTO_RENEW_DISABLED 00000000-0000-4000-8000-000000000002" || drift[1].RepairedAt != nil ||
		drift[0].Class != ledger.DriftMissingNotification || drift[0].Field != "notification" {
		t.Fatalf("drift %+v", drift)
	}
}
