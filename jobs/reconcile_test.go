package jobs

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/jobs/jobstest"
	"github.com/storesync/storesync/ledger"
)

// reconcileHarness imports the simulator's whole population, then lets a
// test run reconciliations against it.
func reconcileHarness(t *testing.T, subscribers int, rs ReconcileSettings) *importHarness {
	t.Helper()
	h := startImportHarness(t, sim.Options{Seed: 7, Subscribers: subscribers, DisableRateLimits: true}, Settings{Reconcile: rs})
	run, _, _ := h.importCSV(t, truthCSV(h.simulator.Truth(), nil))
	p := h.waitRun(t, run, 3*time.Minute)
	if p.Failed > 0 {
		t.Fatalf("import: %+v", p)
	}
	jobstest.RequireLedgerEqualsTruth(t, h.deps.Ledger, h.simulator.Truth())
	return h
}

// reconcileNow runs one reconciliation to its end and returns its summary.
func reconcileNow(t testing.TB, h *importHarness, key string, callCap int64) *ledger.ReconcileRun {
	t.Helper()
	ctx := context.Background()
	res, err := h.client.Insert(ctx, ReconcileArgs{RunKey: key, CallCap: callCap}, nil)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		run, err := h.deps.Ledger.ReconcileRunByKey(ctx, key)
		if err == nil && run.FinishedAt != nil {
			if run.Error != "" {
				t.Fatalf("run %s failed: %s", key, run.Error)
			}
			return run
		}
		job, jerr := h.client.JobGet(ctx, res.Job.ID)
		if jerr == nil && (job.State == "discarded" || job.State == "cancelled") {
			t.Fatalf("reconcile job %s: %v", job.State, job.Errors)
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s unfinished after 3m: %+v (err %v)", key, run, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func appleRequests(simulator *sim.Simulator, ep appstore.Endpoint) int64 {
	st := simulator.Stats()
	return st.Endpoint(appstore.Production, ep).Requests + st.Endpoint(appstore.Sandbox, ep).Requests
}

func TestReconcileUnchangedPopulationHasNoDrift(t *testing.T) {
	t.Parallel()
	// A one-day cycle checks everyone; tiny slices make the run continue
	// itself many times, which must not change a single count.
	h := reconcileHarness(t, 200, ReconcileSettings{FullCycle: 24 * time.Hour, BatchSize: 32, SliceDuration: time.Millisecond})
	ctx := context.Background()
	statuses0 := appleRequests(h.simulator, appstore.EndpointStatuses)
	calls0 := statuses0 + appleRequests(h.simulator, appstore.EndpointHistory) + appleRequests(h.simulator, appstore.EndpointNotificationHistory)

	run := reconcileNow(t, h, "manual test", 0)

	var subs int64
	if err := h.pool.QueryRow(ctx, "SELECT count(*) FROM subscriptions").Scan(&subs); err != nil {
		t.Fatal(err)
	}
	if run.DriftedSubscriptions != 0 || len(run.Drifted) != 0 {
		drift, _ := h.deps.Ledger.DriftOfRun(ctx, run.ID)
		t.Fatalf("unchanged population drifted: %d subscriptions %v; first findings %+v", run.DriftedSubscriptions, run.Drifted, drift[:min(5, len(drift))])
	}
	if run.Failed != 0 || run.Repaired != 0 || run.StoppedReason != "" || run.SweepNew != 0 {
		t.Fatalf("run %+v", run)
	}
	if run.CheckedTotal() != subs || run.RollingQuota != subs {
		t.Fatalf("checked %d (%v) of %d subscriptions, quota %d", run.CheckedTotal(), run.Checked, subs, run.RollingQuota)
	}
	var unchecked int64
	if err := h.pool.QueryRow(ctx, `SELECT count(*) FROM subscriptions WHERE last_checked_at IS NULL OR last_checked_at < $1`,
		run.StartedAt).Scan(&unchecked); err != nil {
		t.Fatal(err)
	}
	if unchecked != 0 {
		t.Fatalf("%d subscriptions not checked by the run", unchecked)
	}
	// The calls reported are the calls Apple saw; one answer covers an
	// account, so there are fewer calls than subscriptions.
	calls := appleRequests(h.simulator, appstore.EndpointStatuses) + appleRequests(h.simulator, appstore.EndpointHistory) +
		appleRequests(h.simulator, appstore.EndpointNotificationHistory) - calls0
	if run.CallsUsed != calls || run.CallsUsed > run.CallCap {
		t.Fatalf("calls used %d, Apple saw %d, cap %d", run.CallsUsed, calls, run.CallCap)
	}
	if statuses := appleRequests(h.simulator, appstore.EndpointStatuses) - statuses0; statuses >= subs {
		t.Fatalf("%d statuses calls for %d subscriptions: accounts were asked about more than once", statuses, subs)
	}
	var snoozes int
	if err := h.pool.QueryRow(ctx, `SELECT COALESCE((metadata->>'snoozes')::int, 0) FROM river_job WHERE kind = 'reconcile'`).Scan(&snoozes); err != nil {
		t.Fatal(err)
	}
	if snoozes < 5 {
		t.Fatalf("the run continued itself %d times; tiny slices should make it do so for every batch", snoozes)
	}
	jobstest.RequireLedgerEqualsTruth(t, h.deps.Ledger, h.simulator.Truth())

	// The same run key again does nothing more.
	again := reconcileNow(t, h, "manual test", 0)
	if again.ID != run.ID || again.CallsUsed != run.CallsUsed {
		t.Fatalf("re-running the key: %+v", again)
	}
}

// pickSubscription returns a production subscription matching ok whose
// account no earlier pick used.
func pickSubscription(t *testing.T, truths []sim.SubscriptionTruth, used map[string]bool, what string,
	ok func(sim.SubscriptionTruth) bool) sim.SubscriptionTruth {
	t.Helper()
	for _, tr := range truths {
		if tr.Environment == appstore.Production && !used[tr.AccountID] && ok(tr) {
			used[tr.AccountID] = true
			return tr
		}
	}
	t.Fatalf("no subscription of the simulated population is %s", what)
	return sim.SubscriptionTruth{}
}

func TestReconcileFindsClassifiesAndRepairsSilentChanges(t *testing.T) {
	t.Parallel()
	h := reconcileHarness(t, 80, ReconcileSettings{FullCycle: 24 * time.Hour})
	ctx := context.Background()
	truths := h.simulator.Truth()
	used := map[string]bool{}
	active := func(tr sim.SubscriptionTruth) bool { return tr.Status == "active" }
	renewing := func(tr sim.SubscriptionTruth) bool { return active(tr) && tr.AutoRenewStatus }
	cases := []struct {
		kind  sim.MutationKind
		sub   sim.SubscriptionTruth
		want  []ledger.DriftClass
		field string // a field whose finding must show the old and new value
	}{
		{kind: sim.MutateRefund, sub: pickSubscription(t, truths, used, "active", active),
			want: []ledger.DriftClass{ledger.DriftRevokedAtApple}, field: "status"},
		{kind: sim.MutateExpire, sub: pickSubscription(t, truths, used, "active and renewing", renewing),
			want: []ledger.DriftClass{ledger.DriftExpiredAtApple, ledger.DriftRenewalChanged, ledger.DriftAutoRenewChanged}, field: "expires_date"},
		{kind: sim.MutateRenew, sub: pickSubscription(t, truths, used, "expired", func(tr sim.SubscriptionTruth) bool {
			return tr.Status == "expired"
		}), want: []ledger.DriftClass{ledger.DriftActiveAtApple, ledger.DriftMissingTransaction, ledger.DriftRenewalChanged}, field: "latest_transaction_id"},
		{kind: sim.MutateAutoRenewOff, sub: pickSubscription(t, truths, used, "active and renewing", renewing),
			want: []ledger.DriftClass{ledger.DriftAutoRenewChanged}, field: "auto_renew_status"},
		{kind: sim.MutateAutoRenewOn, sub: pickSubscription(t, truths, used, "active and not renewing", func(tr sim.SubscriptionTruth) bool {
			return active(tr) && !tr.AutoRenewStatus
		}), want: []ledger.DriftClass{ledger.DriftAutoRenewChanged}, field: "auto_renew_status"},
		{kind: sim.MutateChangeRenewalProduct, sub: pickSubscription(t, truths, used, "active and renewing", renewing),
			want: []ledger.DriftClass{ledger.DriftRenewalChanged}, field: "auto_renew_product_id"},
		{kind: sim.MutateBillingRetry, sub: pickSubscription(t, truths, used, "active and renewing", renewing),
			want: []ledger.DriftClass{ledger.DriftBillingRetryAtApple}, field: "status"},
		{kind: sim.MutateBillingGrace, sub: pickSubscription(t, truths, used, "active and renewing", renewing),
			want: []ledger.DriftClass{ledger.DriftGracePeriodAtApple}, field: "status"},
	}
	// Apple signs with the simulated now, and the ledger only moves forward
	// in signedDate: let a millisecond pass since the import, as time does.
	h.simulator.Advance(time.Millisecond)
	for _, c := range cases {
		if err := h.simulator.Mutate(c.sub.OriginalTransactionID, c.kind); err != nil {
			t.Fatalf("%s: %v", c.kind, err)
		}
	}

	run := reconcileNow(t, h, "manual drift", 0)

	drift, err := h.deps.Ledger.DriftOfRun(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	bySub := map[string][]ledger.Drift{}
	for _, d := range drift {
		bySub[d.OriginalTransactionID] = append(bySub[d.OriginalTransactionID], d)
		if d.RepairedAt == nil {
			t.Errorf("finding not repaired: %+v", d)
		}
	}
	for _, c := range cases {
		found := bySub[c.sub.OriginalTransactionID]
		delete(bySub, c.sub.OriginalTransactionID)
		classes := map[ledger.DriftClass]bool{}
		for _, d := range found {
			classes[d.Class] = true
		}
		for _, w := range c.want {
			if !classes[w] {
				t.Errorf("%s of %s: no %s finding among %+v", c.kind, c.sub.OriginalTransactionID, w, found)
			}
		}
		after, _ := h.simulator.TruthOf(c.sub.OriginalTransactionID)
		i := slices.IndexFunc(found, func(d ledger.Drift) bool { return d.Field == c.field })
		if i < 0 {
			t.Errorf("%s: no finding on %s: %+v", c.kind, c.field, found)
			continue
		}
		if want := fieldOfTruth(c.sub, c.field); found[i].LedgerValue != want {
			t.Errorf("%s: %s ledger value %q, want the value before the change %q", c.kind, c.field, found[i].LedgerValue, want)
		}
		if want := fieldOfTruth(after, c.field); found[i].AppleValue != want {
			t.Errorf("%s: %s Apple's value %q, want %q", c.kind, c.field, found[i].AppleValue, want)
		}
	}
	if len(bySub) > 0 {
		t.Errorf("drift on subscriptions nobody changed: %v", bySub)
	}
	if run.DriftedSubscriptions != int64(len(cases)) || run.Repaired != int64(len(cases)) {
		t.Errorf("summary: %d drifted, %d repaired, want %d: %+v", run.DriftedSubscriptions, run.Repaired, len(cases), run)
	}
	if run.Drifted[string(ledger.DriftAutoRenewChanged)] < 3 || run.Drifted[string(ledger.DriftRevokedAtApple)] != 1 {
		t.Errorf("by class: %v", run.Drifted)
	}
	jobstest.RequireLedgerEqualsTruth(t, h.deps.Ledger, h.simulator.Truth())

	// Nothing changed since: the next run finds nothing.
	next := reconcileNow(t, h, "manual drift 2", 0)
	if next.DriftedSubscriptions != 0 {
		d, _ := h.deps.Ledger.DriftOfRun(ctx, next.ID)
		t.Fatalf("second run drifted: %+v", d)
	}
}

// fieldOfTruth is tr's value of a drift field, as findings print it.
func fieldOfTruth(tr sim.SubscriptionTruth, field string) string {
	switch field {
	case "status":
		return tr.Status
	case "expires_date":
		return tr.ExpiresDate.UTC().Format(time.RFC3339Nano)
	case "latest_transaction_id":
		return tr.LatestTransactionID
	case "auto_renew_status":
		return fmt.Sprint(tr.AutoRenewStatus)
	case "auto_renew_product_id":
		return tr.AutoRenewProductID
	}
	panic("fieldOfTruth: " + field)
}

func TestReconcileSweepFindsMissingNotifications(t *testing.T) {
	t.Parallel()
	h := reconcileHarness(t, 60, ReconcileSettings{FullCycle: 24 * time.Hour, FirstSweep: 72 * time.Hour})
	ctx := context.Background()
	// Two days pass and nobody hears of it: no webhook is configured.
	h.simulator.Advance(48 * time.Hour)
	var want []string
	for _, env := range []appstore.Environment{appstore.Production, appstore.Sandbox} {
		for _, n := range h.simulator.Notifications(env) {
			if n.OriginalTransactionID != "" {
				want = append(want, n.NotificationUUID)
			}
		}
	}
	if len(want) == 0 {
		t.Fatal("the simulator sent no notification in two days; the test needs some")
	}

	run := reconcileNow(t, h, "manual sweep", 0)

	if run.SweepNew != int64(len(want)) {
		t.Fatalf("sweep found %d notifications, Apple sent %d", run.SweepNew, len(want))
	}
	drift, err := h.deps.Ledger.DriftOfRun(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range drift {
		if d.Class == ledger.DriftMissingNotification {
			got = append(got, d.AppleValue[len(d.AppleValue)-36:])
		}
	}
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Fatalf("missing_notification findings %v, want %v", got, want)
	}
	// Every stored notification gets processed; with the checks, the
	// ledger ends equal to Apple's truth.
	waitJobs(t, h, "process_notification")
	jobstest.RequireLedgerEqualsTruth(t, h.deps.Ledger, h.simulator.Truth())
}

// waitJobs waits until no job of kind is left to work.
func waitJobs(t *testing.T, h *importHarness, kind string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var left int
		if err := h.pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE kind = $1
			AND state NOT IN ('completed', 'cancelled', 'discarded')`, kind).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d %s jobs left after 1m", left, kind)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestReconcileRespectsTheCallCap(t *testing.T) {
	t.Parallel()
	h := reconcileHarness(t, 60, ReconcileSettings{FullCycle: 24 * time.Hour, Concurrency: 4})
	ctx := context.Background()
	allCalls := func() int64 {
		return appleRequests(h.simulator, appstore.EndpointStatuses) + appleRequests(h.simulator, appstore.EndpointHistory) +
			appleRequests(h.simulator, appstore.EndpointNotificationHistory)
	}
	before := allCalls()
	run := reconcileNow(t, h, "manual capped", 5)
	if run.StoppedReason != "call cap reached" || run.CallCap != 5 || run.CallsUsed != 5 {
		t.Fatalf("capped run: %+v", run)
	}
	// The sweep's pages count too (one per environment here).
	if seen := allCalls() - before; seen != 5 {
		t.Fatalf("Apple saw %d calls, cap 5", seen)
	}
	// The subscriptions left unchecked come first the next time.
	var checked int64
	if err := h.pool.QueryRow(ctx, `SELECT count(*) FROM subscriptions WHERE last_checked_at >= $1`, run.StartedAt).Scan(&checked); err != nil {
		t.Fatal(err)
	}
	if checked != run.CheckedTotal() || checked < 3 { // 5 calls, 2 of them the sweep's
		t.Fatalf("%d subscriptions marked checked, summary says %d", checked, run.CheckedTotal())
	}
	next := reconcileNow(t, h, "manual capped 2", 5)
	var overlap int64
	if err := h.pool.QueryRow(ctx, `SELECT count(*) FROM subscriptions WHERE last_checked_at >= $1`, next.StartedAt).Scan(&overlap); err != nil {
		t.Fatal(err)
	}
	if overlap != next.CheckedTotal() {
		t.Fatalf("second run: %d marked, summary %d", overlap, next.CheckedTotal())
	}
	var rechecked int64
	if err := h.pool.QueryRow(ctx, `SELECT count(*) FROM subscriptions WHERE last_checked_at >= $1
		AND original_transaction_id IN (SELECT original_transaction_id FROM subscriptions WHERE last_checked_at >= $2 AND last_checked_at < $1)`,
		next.StartedAt, run.StartedAt).Scan(&rechecked); err != nil {
		t.Fatal(err)
	}
	if rechecked != 0 {
		t.Fatalf("the second run re-checked %d subscriptions the first had just checked", rechecked)
	}
}

func TestNightlyRunKeyAndSchedule(t *testing.T) {
	t.Parallel()
	pj, err := reconcilePeriodic("0 3 * * *")
	if err != nil || pj == nil {
		t.Fatalf("periodic: %v", err)
	}
	if _, err := reconcilePeriodic("every night"); err == nil {
		t.Fatal("a bad cron spec was accepted")
	}
	if pj, err := reconcilePeriodic(""); pj != nil || err != nil {
		t.Fatalf("no spec: %v %v", pj, err)
	}
	sched, _ := cronSchedule(t, "0 3 * * *")
	day := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		now  time.Time
		want string
	}{
		// Before tonight's tick: last night's run (already done), not tonight's.
		{day.Add(2 * time.Hour), "nightly 2026-11-01T03:00:00Z"},
		{day.Add(3 * time.Hour), "nightly 2026-11-02T03:00:00Z"},
		{day.Add(3*time.Hour + time.Second), "nightly 2026-11-02T03:00:00Z"},
		{day.Add(23 * time.Hour), "nightly 2026-11-02T03:00:00Z"},
		// In another zone, still UTC.
		{day.Add(10 * time.Hour).In(time.FixedZone("X", 9*3600)), "nightly 2026-11-02T03:00:00Z"},
	} {
		if got := NightlyRunKey(sched, c.now); got != c.want {
			t.Errorf("NightlyRunKey(%s) = %q, want %q", c.now, got, c.want)
		}
	}
	if got := ManualRunKey(time.Date(2026, 11, 2, 10, 15, 42, 0, time.UTC)); got != "manual 2026-11-02T10:15:00Z" {
		t.Errorf("ManualRunKey = %q", got)
	}
	opts := ReconcileArgs{}.InsertOpts()
	if !opts.UniqueOpts.ByArgs || opts.UniqueOpts.ByPeriod != 24*time.Hour || opts.Queue != QueueMaintenance {
		t.Errorf("insert opts %+v", opts)
	}
	var _ river.JobArgsWithInsertOpts = ReconcileArgs{}
}

func cronSchedule(t *testing.T, spec string) (river.PeriodicSchedule, error) {
	t.Helper()
	return parseUTCSchedule(spec)
}

func TestReconcileCallCap(t *testing.T) {
	t.Parallel()
	if got := ReconcileCallCap(50, 0.25, 0); got != 1_080_000 {
		t.Errorf("25%% of production statuses = %d", got)
	}
	if got := ReconcileCallCap(5, 0.25, 0); got != 108_000 {
		t.Errorf("25%% of sandbox statuses = %d", got)
	}
	if got := ReconcileCallCap(50, 0.25, 777); got != 777 {
		t.Errorf("absolute cap = %d", got)
	}
	d := &Deps{}
	if got := d.reconcileSettings().CallCap; got != 1_080_000 {
		t.Errorf("default cap without a client = %d", got)
	}
}

func TestDiffSubscriptionClassifiesEveryField(t *testing.T) {
	t.Parallel()
	expires := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	yes := true
	ledgerView := func() *ledger.Subscription {
		e := expires
		return &ledger.Subscription{OriginalTransactionID: "1", Status: "active", ExpiresDate: &e,
			LatestTransactionID: "11", ProductID: "monthly", AutoRenewStatus: &yes, AutoRenewProductID: "monthly",
			AppAccountToken: "6f1c0000-0000-4000-8000-000000000001"}
	}
	apple := func() appleView {
		return appleView{status: 1,
			tx: &appstore.TransactionPayload{TransactionID: "11", OriginalTransactionID: "1", ProductID: "monthly",
				ExpiresDate: appstore.MillisOf(expires), AppAccountToken: "6F1C0000-0000-4000-8000-000000000001"},
			ri: &appstore.RenewalInfoPayload{OriginalTransactionID: "1", AutoRenewStatus: 1, AutoRenewProductID: "monthly"}}
	}
	if got := diffSubscription(ledgerView(), apple(), true, ""); len(got) != 0 {
		t.Fatalf("identical views differ (tokens compare case-insensitively): %+v", got)
	}
	type want struct {
		class        ledger.DriftClass
		field        string
		ours, apples string
	}
	for _, c := range []struct {
		name   string
		change func(l *ledger.Subscription, a *appleView)
		known  bool
		want   []want
	}{
		{"billing retry", func(l *ledger.Subscription, a *appleView) { a.status = 3 }, true,
			[]want{{ledger.DriftBillingRetryAtApple, "status", "active", "billing_retry"}}},
		{"grace period", func(l *ledger.Subscription, a *appleView) { a.status = 4 }, true,
			[]want{{ledger.DriftGracePeriodAtApple, "status", "active", "grace_period"}}},
		{"refund reversed", func(l *ledger.Subscription, a *appleView) {
			r := expires.Add(-time.Hour)
			l.Status, l.RevocationDate = "revoked", &r
		}, true, []want{{ledger.DriftActiveAtApple, "status", "revoked", "active"},
			{ledger.DriftActiveAtApple, "revocation_date", "2026-12-01T09:00:00Z", ""}}},
		{"customer conflict", func(l *ledger.Subscription, a *appleView) {
			a.tx.AppAccountToken = "7f1c0000-0000-4000-8000-000000000002"
		}, true,
			[]want{{ledger.DriftCustomerConflict, "app_account_token", "6f1c0000-0000-4000-8000-000000000001", "7f1c0000-0000-4000-8000-000000000002"}}},
		{"product moved", func(l *ledger.Subscription, a *appleView) { a.tx.ProductID = "yearly" }, true,
			[]want{{ledger.DriftRenewalChanged, "product_id", "monthly", "yearly"}}},
		{"renewal info absent", func(l *ledger.Subscription, a *appleView) { a.ri = nil; l.AutoRenewStatus = nil }, true, nil},
		{"unknown subscription", func(l *ledger.Subscription, a *appleView) {}, false,
			[]want{{ledger.DriftMissingTransaction, "transaction_id", "", "11"}}},
	} {
		l, a := ledgerView(), apple()
		c.change(l, &a)
		view := l
		if c.name == "unknown subscription" {
			view = nil
		}
		got := diffSubscription(view, a, c.known, "")
		if len(got) != len(c.want) {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
			continue
		}
		for i, w := range c.want {
			if g := got[i]; g.Class != w.class || g.Field != w.field || g.LedgerValue != w.ours || g.AppleValue != w.apples {
				t.Errorf("%s: finding %d = %+v, want %+v", c.name, i, g, w)
			}
		}
	}
}

// Apple answers 5xx, retryable 404s and 429s: checks retry in the job,
// the run snoozes until Retry-After without failing, finds no drift and
// counts every request Apple saw.
func TestReconcileSurvivesAppleFaults(t *testing.T) {
	t.Parallel()
	h := reconcileHarness(t, 60, ReconcileSettings{FullCycle: 24 * time.Hour, BatchSize: 8})
	ctx := context.Background()
	calls := func() int64 {
		return appleRequests(h.simulator, appstore.EndpointStatuses) + appleRequests(h.simulator, appstore.EndpointHistory) +
			appleRequests(h.simulator, appstore.EndpointNotificationHistory)
	}
	before := calls()
	if err := h.simulator.SetFaults(sim.Faults{RetryableErrorShare: 0.15, Retryable404Share: 0.05,
		Endpoints: []appstore.Endpoint{appstore.EndpointStatuses}}); err != nil {
		t.Fatal(err)
	}
	// Apple's limit far below what the job's budget allows: 429s.
	if err := h.simulator.SetRateLimit(appstore.Production, appstore.EndpointStatuses, 10); err != nil {
		t.Fatal(err)
	}
	run := reconcileNow(t, h, "manual faults", 0)
	var subs int64
	if err := h.pool.QueryRow(ctx, "SELECT count(*) FROM subscriptions").Scan(&subs); err != nil {
		t.Fatal(err)
	}
	if run.DriftedSubscriptions != 0 || run.Failed != 0 || run.CheckedTotal() != subs {
		t.Fatalf("run under faults: %+v (of %d subscriptions)", run, subs)
	}
	seen := calls() - before
	if run.CallsUsed != seen {
		t.Fatalf("calls used %d, Apple saw %d", run.CallsUsed, seen)
	}
	st := h.simulator.Stats()
	if st.Endpoint(appstore.Production, appstore.EndpointStatuses).RateLimited == 0 {
		t.Fatal("Apple answered no 429: the test proves nothing")
	}
	var snoozes int
	if err := h.pool.QueryRow(ctx, `SELECT COALESCE((metadata->>'snoozes')::int, 0) FROM river_job WHERE kind = 'reconcile'`).Scan(&snoozes); err != nil {
		t.Fatal(err)
	}
	if snoozes == 0 {
		t.Fatal("the run never snoozed")
	}
	jobstest.RequireLedgerEqualsTruth(t, h.deps.Ledger, h.simulator.Truth())
}

// customer_conflict compares Apple's appAccountToken with the one the
// import row carried too: the ledger's own token follows Apple, so
// comparing with it alone never sees the company's file contradicted.
func TestDiffSubscriptionComparesTheImportRowsToken(t *testing.T) {
	t.Parallel()
	const (
		ledgers  = "6f1c0000-0000-4000-8000-000000000001"
		apples   = "6F1C0000-0000-4000-8000-000000000001" // the ledger's, in Apple's case
		other    = "7f1c0000-0000-4000-8000-000000000002"
		imported = "8f1c0000-0000-4000-8000-000000000003"
	)
	view := func(ledgerToken, appleToken string) (*ledger.Subscription, appleView) {
		return &ledger.Subscription{OriginalTransactionID: "1", Status: "active", LatestTransactionID: "11",
				ProductID: "monthly", AppAccountToken: ledgerToken},
			appleView{status: 1, tx: &appstore.TransactionPayload{TransactionID: "11", OriginalTransactionID: "1",
				ProductID: "monthly", AppAccountToken: appleToken}}
	}
	type want struct{ field, ours, apples string }
	for _, c := range []struct {
		name                             string
		ledgerToken, appleToken, fileTok string
		want                             []want
	}{
		{"the file's token differs, the ledger's follows Apple", ledgers, apples, imported,
			[]want{{"imported_app_account_token", imported, apples}}},
		{"the file's token is Apple's", ledgers, apples, ledgers, nil},
		{"no import row token", ledgers, apples, "", nil},
		{"Apple knows no token yet", "", "", imported, nil},
		{"the ledger's and the file's both differ", ledgers, other, ledgers,
			[]want{{"imported_app_account_token", ledgers, other}, {"app_account_token", ledgers, other}}},
	} {
		l, a := view(c.ledgerToken, c.appleToken)
		got := diffSubscription(l, a, true, c.fileTok)
		if len(got) != len(c.want) {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
			continue
		}
		for i, w := range c.want {
			if g := got[i]; g.Class != ledger.DriftCustomerConflict || g.Field != w.field || g.LedgerValue != w.ours || g.AppleValue != w.apples {
				t.Errorf("%s: finding %d = %+v, want customer_conflict %+v", c.name, i, g, w)
			}
		}
	}
}
