package jobs

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/ledger"
)

// sweep enqueues the scheduled sweep of every environment as the periodic
// job would at end, and waits for it and what it enqueued.
func (e *hookEnv) sweep(end time.Time) {
	e.t.Helper()
	for _, env := range e.deps.SweptEnvironments() {
		if _, err := e.river.Insert(context.Background(), BackfillArgs{Environment: env, End: end, Sweep: true}, nil); err != nil {
			e.t.Fatal(err)
		}
	}
	e.waitIdle(90*time.Second, "backfill", "process_notification", "import", "import_history")
}

// TestBackfillRecoversDroppedDeliveries: the simulator drops 30% of its
// webhook deliveries; after the sweep every notification it sent is in the
// ledger and every subscription equals its truth; sweeping again changes
// nothing.
func TestBackfillRecoversDroppedDeliveries(t *testing.T) {
	t.Parallel()
	simOpts := sim.Options{Seed: 21, Subscribers: 80, DisableRateLimits: true, DropShare: 0.3}
	e := newHookEnv(t, hookEnvOptions{Sim: &simOpts, Work: true})
	if err := e.simulator.SetWebhookURL(e.server.URL + "/webhooks/appstore"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if got := e.deps.SweptEnvironments(); !reflect.DeepEqual(got, []appstore.Environment{appstore.Production, appstore.Sandbox}) {
		t.Fatalf("swept environments %v", got)
	}
	e.sweep(e.simulator.Now()) // the first sweep: [now-24h, now], before anything happened

	e.simulator.Advance(25 * 24 * time.Hour)
	if err := e.simulator.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	e.waitIdle(90*time.Second, "process_notification", "import", "import_history")
	var sent []string
	for _, env := range []appstore.Environment{appstore.Production, appstore.Sandbox} {
		for _, n := range e.simulator.Notifications(env) {
			sent = append(sent, n.NotificationUUID)
		}
	}
	stats := e.simulator.Stats().Webhook
	before := e.count(`SELECT count(*) FROM notifications`)
	if stats.Dropped == 0 || before >= len(sent) {
		t.Fatalf("the simulator dropped %d of %d; the ledger already has %d", stats.Dropped, len(sent), before)
	}

	e.sweep(e.simulator.Now())
	if missing := e.count(`SELECT count(*) FROM unnest($1::uuid[]) AS u(id)
		WHERE NOT EXISTS (SELECT 1 FROM notifications WHERE notification_uuid = u.id)`, sent); missing != 0 {
		t.Fatalf("%d of %d notifications still missing after the sweep", missing, len(sent))
	}
	if n := e.count(`SELECT count(*) FROM notifications WHERE source = 'backfill'`); n != len(sent)-before {
		t.Fatalf("%d backfilled, want the %d dropped", n, len(sent)-before)
	}
	compared := 0
	for _, truth := range e.simulator.Truth() {
		s, err := e.deps.Ledger.Subscription(ctx, truth.OriginalTransactionID)
		if err != nil {
			if len(truth.Notifications) > 0 {
				t.Errorf("%s had notifications but is not in the ledger", truth.OriginalTransactionID)
			}
			continue
		}
		compared++
		// A subscription without notifications is in the ledger only as a
		// sibling in another subscription's statuses answer: its latest
		// state, not its history (which its own import would bring).
		count := truth.TransactionCount
		if len(truth.Notifications) == 0 {
			count = s.TransactionCount
		}
		if s.Status != truth.Status || s.ProductID != truth.ProductID || s.LatestTransactionID != truth.LatestTransactionID ||
			s.TransactionCount != count || s.AutoRenewStatus == nil || *s.AutoRenewStatus != truth.AutoRenewStatus ||
			s.ExpiresDate == nil || !s.ExpiresDate.Equal(truth.ExpiresDate) || string(truth.Environment) != s.Environment {
			t.Errorf("%s: ledger %+v\ntruth %+v", truth.OriginalTransactionID, s, truth)
		}
	}
	if compared < 20 {
		t.Fatalf("only %d subscriptions compared", compared)
	}
	for _, env := range []appstore.Environment{appstore.Production, appstore.Sandbox} {
		wm, ok, err := e.deps.Ledger.BackfillWatermark(ctx, env)
		if err != nil || !ok || !wm.Equal(e.simulator.Now()) {
			t.Errorf("%s watermark %v %v %v, want %v", env, wm, ok, err, e.simulator.Now())
		}
	}
	windows, err := e.deps.Ledger.RecentBackfillWindows(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(windows) != 4 {
		t.Fatalf("%d windows recorded, want 2 per environment: %+v", len(windows), windows)
	}
	for _, w := range windows {
		if w.FinishedAt == nil || w.Kind != ledger.BackfillSweep {
			t.Errorf("window %+v", w)
		}
	}
	var prod []ledger.BackfillWindow // newest first
	for _, w := range windows {
		if w.Environment == appstore.Production {
			prod = append(prod, w)
		}
	}
	if len(prod) != 2 || prod[0].New == 0 || prod[0].Pages < 2 || !prod[0].Start.Equal(prod[1].End.Add(-BackfillOverlap)) ||
		!prod[1].Start.Equal(prod[1].End.Add(-BackfillInitialLookback)) {
		t.Errorf("production windows do not chain: %+v", prod)
	}
	t.Logf("%d notifications sent, %d dropped, %d delivered before the sweep; %d subscriptions compared; windows %+v",
		len(sent), stats.Dropped, before, compared, prod)

	// Sweeping again, and re-reading the whole span, changes nothing.
	dump := ledgerDump(t, e.pool)
	jobs := e.count(`SELECT count(*) FROM river_job WHERE kind = 'process_notification'`)
	e.sweep(e.simulator.Now().Add(time.Minute))
	if _, err := e.river.Insert(ctx, BackfillArgs{Environment: appstore.Production, Start: e.simulator.Now().Add(-26 * 24 * time.Hour), End: e.simulator.Now()}, nil); err != nil {
		t.Fatal(err)
	}
	e.waitIdle(60*time.Second, "backfill", "process_notification", "import", "import_history")
	if got := ledgerDump(t, e.pool); !reflect.DeepEqual(got, dump) {
		t.Fatal("a second sweep changed the ledger")
	}
	if n := e.count(`SELECT count(*) FROM river_job WHERE kind = 'process_notification'`); n != jobs {
		t.Fatalf("a second sweep enqueued %d processing jobs", n-jobs)
	}
	if n := e.count(`SELECT coalesce(sum(new), 0) FROM backfill_windows WHERE started_at > now() - interval '1 minute' AND id > $1`, windows[0].ID); n != 0 {
		t.Fatalf("later windows found %d new notifications", n)
	}
}

// TestBackfillResumesFromItsCursorAndRestartsOnExpiredToken: a job whose
// durable cursor holds a paginationToken that expired meanwhile gets
// PaginationTokenExpiredError, restarts its window from the first page and
// still ends complete, with the restart recorded.
func TestBackfillResumesFromItsCursorAndRestartsOnExpiredToken(t *testing.T) {
	t.Parallel()
	simOpts := sim.Options{Seed: 5, Subscribers: 60, DisableRateLimits: true, PaginationTokenTTL: 2 * time.Second}
	e := newHookEnv(t, hookEnvOptions{Sim: &simOpts, Work: true})
	e.simulator.Advance(20 * 24 * time.Hour)
	ctx := context.Background()
	start, end := e.simulator.Now().Add(-21*24*time.Hour), e.simulator.Now()
	win, err := e.deps.Ledger.OpenBackfillWindow(ctx, ledger.BackfillWindow{
		Environment: appstore.Production, Kind: ledger.BackfillManual, Start: start, End: end})
	if err != nil {
		t.Fatal(err)
	}
	// The first page as the job would have read it before dying.
	first, err := e.deps.Apple.GetNotificationHistory(ctx, appstore.NotificationHistoryRequest{
		StartDate: appstore.MillisOf(start), EndDate: appstore.MillisOf(end)}, "")
	if err != nil {
		t.Fatal(err)
	}
	if !first.HasMore {
		t.Fatal("want several pages")
	}
	time.Sleep(2100 * time.Millisecond) // the token expires
	meta, _ := json.Marshal(map[string]any{"river:resumable_cursor": map[string]any{
		"pages": backfillCursor{WindowID: win.ID, Token: first.PaginationToken}}})
	res, err := e.river.Insert(ctx, BackfillArgs{Environment: appstore.Production, Start: start, End: end},
		&river.InsertOpts{Metadata: meta})
	if err != nil {
		t.Fatal(err)
	}
	e.waitIdle(60*time.Second, "backfill", "process_notification", "import", "import_history")
	got, err := e.deps.Ledger.BackfillWindowByID(ctx, win.ID)
	if err != nil {
		t.Fatal(err)
	}
	total := len(e.simulator.Notifications(appstore.Production))
	if got.FinishedAt == nil || got.Restarts != 1 || got.Seen != total || got.New != total {
		t.Fatalf("window after the restart: %+v (the simulator sent %d)", got, total)
	}
	job, err := e.river.JobGet(ctx, res.Job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if job.Attempt != 1 {
		t.Fatalf("the restart took %d attempts", job.Attempt)
	}
	if n := e.count(`SELECT count(*) FROM notifications WHERE source = 'backfill' AND environment = 'Production'`); n != total {
		t.Fatalf("%d stored, want %d", n, total)
	}
}

// TestBackfillStopsBeforeTheJobTimeoutAndGoesOn: a window too long for one
// run stops between pages near the timeout, snoozes (no attempt lost) and
// finishes in later runs. A run stops at 3/4 of its timeout, so about
// four pages fit in one, and the window has eight. What must fit between
// the stop and the timeout is storing one page (verifying its 20
// notifications): the timeout leaves 3 s for it, room on a machine loaded
// by the whole suite under the race detector (at 1.5 s a CI run once saw
// every attempt time out on its first page, and at 3 s with 0.75 s to
// spare a host with load average 9 still did). Latency and timeout are
// scaled together, so the structure (pages per run) is unchanged.
func TestBackfillStopsBeforeTheJobTimeoutAndGoesOn(t *testing.T) {
	t.Parallel()
	const timeout = 12 * time.Second
	simOpts := sim.Options{Seed: 5, Subscribers: 200, DisableRateLimits: true,
		Faults: sim.Faults{Latency: timeout / 6, Endpoints: []appstore.Endpoint{appstore.EndpointNotificationHistory}}}
	e := newHookEnv(t, hookEnvOptions{Sim: &simOpts, Work: true, JobTimeout: timeout})
	e.simulator.Advance(20 * 24 * time.Hour)
	ctx := context.Background()
	res, err := e.river.Insert(ctx, BackfillArgs{Environment: appstore.Production, Start: e.simulator.Now().Add(-21 * 24 * time.Hour), End: e.simulator.Now()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.waitIdle(3*time.Minute, "backfill", "process_notification", "import", "import_history")
	job, err := e.river.JobGet(ctx, res.Job.ID)
	if err != nil {
		t.Fatal(err)
	}
	total := len(e.simulator.Notifications(appstore.Production))
	w, err := e.deps.Ledger.FindBackfillWindow(ctx, appstore.Production, res.Job.ScheduledAt.Add(-time.Hour*24*365), e.simulator.Now(), false)
	if err != nil {
		t.Fatal(err)
	}
	snoozed := counterValue(e.deps.Metrics.JobOutcomes.WithLabelValues("backfill", "snoozed"))
	if snoozed < 1 || job.State != "completed" || w.FinishedAt == nil || w.Seen != total || w.New != total || w.Pages < 4 {
		t.Fatalf("job %s after %v snoozes (errors %v); window %+v; the simulator sent %d", job.State, snoozed, job.Errors, w, total)
	}
	t.Logf("%d pages in %d runs (%v snoozes), %d attempts", w.Pages, int(snoozed)+1, snoozed, job.Attempt)
}

// TestBackfillPartialWindowIsCompletedOnceItsTimeHasPassed: a sweep whose
// window ends after Apple's now when it is read (it ends at "now" on a
// clock ahead of Apple's, or later) is partial: Apple cannot list what is
// not signed yet. The watermark must stop where the window was read, and
// once that time has passed the next sweep must read the rest, so a
// notification signed in it is not skipped and the watermark moves over
// the window exactly once.
func TestBackfillPartialWindowIsCompletedOnceItsTimeHasPassed(t *testing.T) {
	t.Parallel()
	simOpts := sim.Options{Seed: 9, Subscribers: 40, DisableRateLimits: true}
	e := newHookEnv(t, hookEnvOptions{Sim: &simOpts, Work: true})
	ctx := context.Background()
	env := appstore.Production
	readAt := e.simulator.Now()
	e.sweep(readAt.Add(2 * time.Hour)) // its window ends 2h after Apple's now

	wm, ok, err := e.deps.Ledger.BackfillWatermark(ctx, env)
	if err != nil || !ok || !wm.Equal(readAt) {
		t.Fatalf("watermark after a partial window: %v %v %v, want %v (where it was read, not its end)", wm, ok, err, readAt)
	}
	// Half an hour later a notification is sent and lost (no webhook).
	e.simulator.Advance(30 * time.Minute)
	var lost sim.SubscriptionTruth
	for _, tr := range e.simulator.Truth() {
		if tr.Environment == env && tr.Status == "active" && tr.AutoRenewStatus {
			lost = tr
			break
		}
	}
	if err := e.simulator.MutateAndNotify(lost.OriginalTransactionID, sim.MutateAutoRenewOff); err != nil {
		t.Fatal(err)
	}
	notes := e.simulator.Notifications(env)
	lostUUID := notes[len(notes)-1].NotificationUUID

	// Time passes beyond the window's end; the next sweeps run.
	e.simulator.Advance(3 * time.Hour)
	second := e.simulator.Now()
	e.sweep(second)
	if n := e.count(`SELECT count(*) FROM notifications WHERE notification_uuid = $1`, lostUUID); n != 1 {
		t.Fatalf("the notification signed inside the partial window's unread stretch was skipped")
	}
	wm, _, err = e.deps.Ledger.BackfillWatermark(ctx, env)
	if err != nil || !wm.Equal(second) {
		t.Fatalf("watermark after the next sweep: %v %v, want %v", wm, err, second)
	}
	windows, err := e.deps.Ledger.RecentBackfillWindows(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	var prod []ledger.BackfillWindow // newest first
	for _, w := range windows {
		if w.Environment == env {
			prod = append(prod, w)
		}
	}
	if len(prod) != 2 || prod[1].CompleteUntil == nil || !prod[1].CompleteUntil.Equal(readAt) ||
		!prod[0].Start.Equal(readAt.Add(-BackfillOverlap)) || prod[0].CompleteUntil == nil || !prod[0].CompleteUntil.Equal(second) {
		t.Fatalf("windows %+v: want the partial one complete until %v and the next starting %v before it", prod, readAt, BackfillOverlap)
	}
	// Later sweeps chain on the complete one: the watermark moved over the
	// partial window once and only moves forward.
	e.sweep(second.Add(time.Minute))
	if wm2, _, _ := e.deps.Ledger.BackfillWatermark(ctx, env); !wm2.Equal(second) {
		// The sweep ending a minute after Apple's now is partial again.
		t.Fatalf("watermark %v after a sweep ending after now, want it to stay %v", wm2, second)
	}
	e.simulator.Advance(time.Hour)
	e.sweep(e.simulator.Now())
	if wm3, _, _ := e.deps.Ledger.BackfillWatermark(ctx, env); !wm3.Equal(e.simulator.Now()) {
		t.Fatalf("watermark %v, want %v", wm3, e.simulator.Now())
	}
}
