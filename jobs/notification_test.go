package jobs

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/jobs/jobstest"
	"github.com/storesync/storesync/ledger"
)

// simHistory returns every notification the simulator lists in env over
// its look-back (the signed payloads a webhook would have received).
func simHistory(t *testing.T, e *hookEnv, env appstore.Environment) []appstore.NotificationHistoryResponseItem {
	t.Helper()
	apple, err := e.deps.Apple.InEnvironment(env)
	if err != nil {
		t.Fatal(err)
	}
	now := e.simulator.Now()
	req := appstore.NotificationHistoryRequest{
		StartDate: appstore.MillisOf(now.Add(-notificationLookback(env) + time.Hour)), EndDate: appstore.MillisOf(now.Add(time.Millisecond)),
	}
	var out []appstore.NotificationHistoryResponseItem
	for page, err := range apple.NotificationHistory(context.Background(), req) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page.NotificationHistory...)
	}
	return out
}

// ledgerDump is every ledger row that notifications decide, as text.
func ledgerDump(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	var out []string
	for _, q := range []string{
		`SELECT 's|' || original_transaction_id || '|' || environment || '|' || product_id || '|' || status || '|' ||
			observed_status || '|' || status_signed_date || '|' || coalesce(expires_date::text, '') || '|' ||
			coalesce(auto_renew_status::text, '') || '|' || latest_transaction_id || '|' || transaction_count || '|' ||
			coalesce(app_account_token::text, '') || '|' || last_signed_date FROM subscriptions`,
		`SELECT 't|' || transaction_id || '|' || signed_date || '|' || md5(jws) || '|' || coalesce(revocation_date::text, '') FROM transactions`,
		`SELECT 'r|' || original_transaction_id || '|' || signed_date || '|' || md5(jws) || '|' || auto_renew_status FROM renewal_infos`,
		`SELECT 'n|' || notification_uuid || '|' || (processed_at IS NOT NULL) || '|' || coalesce(process_error, '') FROM notifications`,
	} {
		rows, err := pool.Query(context.Background(), q+" ORDER BY 1")
		if err != nil {
			t.Fatal(err)
		}
		s, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s...)
	}
	return out
}

// TestNotificationsInAnyOrderGiveTheSameLedger delivers the simulator's
// notifications in order to one ledger, and shuffled, duplicated and mixed
// with backfilled copies to another: both must end identical. Apple is
// unreachable, so imports of new subscriptions cannot mask an ordering bug.
func TestNotificationsInAnyOrderGiveTheSameLedger(t *testing.T) {
	t.Parallel()
	// CONSUMPTION_REQUEST asks for a statuses refresh that cannot happen
	// here (no App Store client): it must still be recorded and finish.
	simOpts := sim.Options{Seed: 7, Subscribers: 60, DisableRateLimits: true, ConsumptionRequests: true}
	source := newHookEnv(t, hookEnvOptions{Sim: &simOpts})
	source.simulator.Advance(25 * 24 * time.Hour)
	var items []appstore.NotificationHistoryResponseItem
	for _, env := range []appstore.Environment{appstore.Production, appstore.Sandbox} {
		items = append(items, simHistory(t, source, env)...)
	}
	if len(items) < 40 {
		t.Fatalf("the simulator sent only %d notifications", len(items))
	}

	inOrder := newHookEnv(t, hookEnvOptions{Work: true, CA: source.ca})
	shuffled := newHookEnv(t, hookEnvOptions{Work: true, CA: source.ca})
	for _, it := range items {
		if c := inOrder.postSigned(it.SignedPayload); c != 200 {
			t.Fatalf("in order: status %d", c)
		}
	}

	r := rand.New(rand.NewPCG(11, 12))
	order := append([]appstore.NotificationHistoryResponseItem(nil), items...)
	for range len(items) / 4 {
		order = append(order, items[r.IntN(len(items))]) // webhook retries
	}
	r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	ctx := context.Background()
	for i, it := range order {
		if i%3 == 0 {
			// A backfilled copy: stored through the history path.
			env, err := appstore.PeekNotificationEnvironment(it.SignedPayload)
			if err != nil {
				t.Fatal(err)
			}
			err = pgx.BeginFunc(ctx, shuffled.pool, func(tx pgx.Tx) error {
				_, _, err := shuffled.deps.storeHistoryItems(ctx, tx, shuffled.river, env,
					[]appstore.NotificationHistoryResponseItem{it}, ledger.SourceBackfill, PriorityBulk)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			continue
		}
		if c := shuffled.postSigned(it.SignedPayload); c != 200 {
			t.Fatalf("shuffled: status %d", c)
		}
	}
	inOrder.waitIdle(60*time.Second, "process_notification")
	shuffled.waitIdle(60*time.Second, "process_notification")

	want, got := ledgerDump(t, inOrder.pool), ledgerDump(t, shuffled.pool)
	if !reflect.DeepEqual(got, want) {
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Fatalf("ledgers differ (%d vs %d rows); first difference:\n got %s\nwant %s", len(got), len(want), got[i], want[i])
			}
		}
		t.Fatalf("ledgers differ: %d rows vs %d", len(got), len(want))
	}
	if n := inOrder.count(`SELECT count(*) FROM notifications WHERE processed_at IS NULL`); n != 0 {
		t.Fatalf("%d notifications unprocessed", n)
	}
	if n := inOrder.count(`SELECT count(*) FROM notifications WHERE notification_type = 'CONSUMPTION_REQUEST'`); n == 0 {
		t.Fatal("the simulator sent no CONSUMPTION_REQUEST: pick another seed")
	}
	for _, e := range []*hookEnv{inOrder, shuffled} {
		if n := e.count(`SELECT count(*) FROM river_job WHERE kind = 'process_notification' AND state <> 'completed'`); n != 0 {
			t.Fatalf("%d processing jobs not completed (a refresh that cannot happen must not fail the job)", n)
		}
	}
	if n := shuffled.count(`SELECT count(*) FROM river_job WHERE kind = 'process_notification'`); n != len(items) {
		t.Fatalf("%d processing jobs for %d distinct notifications", n, len(items))
	}
	// Every subscription a notification named holds the simulator's state
	// as of its latest notification: the latest one at the simulated now.
	checked := 0
	for _, truth := range source.simulator.Truth() {
		if len(truth.Notifications) == 0 {
			continue
		}
		s, err := inOrder.deps.Ledger.Subscription(ctx, truth.OriginalTransactionID)
		if err != nil {
			t.Fatalf("%s: %v", truth.OriginalTransactionID, err)
		}
		checked++
		if s.Status != truth.Status || s.ProductID != truth.ProductID || s.LatestTransactionID != truth.LatestTransactionID ||
			s.AutoRenewStatus == nil || *s.AutoRenewStatus != truth.AutoRenewStatus || !s.ExpiresDate.Equal(truth.ExpiresDate) {
			t.Errorf("%s: ledger %s/%s/%s/%v/%v, truth %s/%s/%s/%v/%v", truth.OriginalTransactionID,
				s.Status, s.ProductID, s.LatestTransactionID, deref(s.AutoRenewStatus), s.ExpiresDate,
				truth.Status, truth.ProductID, truth.LatestTransactionID, truth.AutoRenewStatus, truth.ExpiresDate)
		}
	}
	if checked == 0 {
		t.Fatal("no subscription was checked against the truth")
	}
	t.Logf("%d notifications (%d deliveries shuffled), %d ledger rows, %d subscriptions checked against the truth",
		len(items), len(order), len(want), checked)
	// New subscriptions asked for their full import (Apple is unreachable
	// here, so those jobs wait).
	if n := inOrder.count(`SELECT count(DISTINCT args->>'original_transaction_id') FROM river_job WHERE kind = 'import'`); n != checked {
		t.Fatalf("%d imports enqueued for %d new subscriptions", n, checked)
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestNotificationProcessing covers the kinds of notification one by one:
// a new subscription (import enqueued), one that cannot settle its state
// (statuses refreshed at interactive priority), TEST and an unknown type
// (recorded, never failed).
func TestNotificationProcessing(t *testing.T) {
	t.Parallel()
	simOpts := sim.Options{Seed: 3, Subscribers: 20, DisableRateLimits: true}
	e := newHookEnv(t, hookEnvOptions{Sim: &simOpts, Work: true})
	ctx := context.Background()
	truth := e.simulator.Truth()[0]
	now := e.simulator.Now()

	// Renewal info only: the payload cannot say the status, so statuses are
	// re-read and the subscription ends equal to Apple's truth.
	n := jobstest.NewNote(appstore.Production, now)
	n.N.NotificationType, n.N.Subtype = "DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_DISABLED"
	n.Tx = nil
	n.RI.OriginalTransactionID = truth.OriginalTransactionID
	n.RI.SignedDate = appstore.MillisOf(now.Add(-time.Hour))
	if c := e.postSigned(n.Sign(t, e.ca)); c != 200 {
		t.Fatalf("status %d", c)
	}
	e.waitIdle(30*time.Second, "process_notification", "import", "import_history")
	s, err := e.deps.Ledger.Subscription(ctx, truth.OriginalTransactionID)
	if err != nil {
		t.Fatal(err)
	}
	if s.Status != truth.Status || s.LatestTransactionID != truth.LatestTransactionID || s.TransactionCount != truth.TransactionCount {
		t.Fatalf("after refresh and import: %+v, truth %+v", s, truth)
	}
	if c := counterValue(e.deps.Metrics.AppleCalls.WithLabelValues(string(appstore.EndpointStatuses), "ok")); c < 1 {
		t.Fatalf("no statuses call counted")
	}
	if k := e.count(`SELECT count(*) FROM river_job WHERE kind = 'import' AND args->>'original_transaction_id' = $1`, truth.OriginalTransactionID); k != 1 {
		t.Fatalf("%d imports of the new subscription", k)
	}

	// A later notification of the now known subscription: no new import.
	known := jobstest.NewNote(appstore.Production, now)
	known.Tx.OriginalTransactionID = truth.OriginalTransactionID
	known.RI.OriginalTransactionID = truth.OriginalTransactionID
	known.N.NotificationType = "DID_CHANGE_RENEWAL_PREF"
	// TEST, an unknown type with data, and a non-subscription purchase.
	test := &jobstest.Note{N: appstore.NotificationPayload{NotificationType: "TEST", NotificationUUID: jobstest.NextUUID(),
		Version: "2.0", SignedDate: appstore.MillisOf(now), Data: &appstore.NotificationData{
			AppAppleID: sim.DefaultAppAppleID, BundleID: sim.DefaultBundleID, Environment: appstore.Production}}}
	future := jobstest.NewNote(appstore.Production, now)
	future.N.NotificationType = "SOMETHING_NEW_FROM_APPLE"
	consumable := jobstest.NewNote(appstore.Production, now)
	consumable.N.NotificationType, consumable.Tx.Type = "ONE_TIME_CHARGE", "Consumable"
	for _, note := range []*jobstest.Note{known, test, future, consumable} {
		if c := e.postSigned(note.Sign(t, e.ca)); c != 200 {
			t.Fatalf("%s: status %d", note.N.NotificationType, c)
		}
	}
	e.waitIdle(30*time.Second, "process_notification")
	if k := e.count(`SELECT count(*) FROM river_job WHERE kind = 'import' AND args->>'original_transaction_id' = $1`, truth.OriginalTransactionID); k != 1 {
		t.Fatalf("a known subscription was imported again (%d)", k)
	}
	if k := e.count(`SELECT count(*) FROM notifications WHERE processed_at IS NULL OR process_error IS NOT NULL`); k != 0 {
		t.Fatalf("%d notifications unprocessed or failed", k)
	}
	if _, err := e.deps.Ledger.Subscription(ctx, future.Tx.OriginalTransactionID); err != nil {
		t.Fatalf("unknown type's signed facts not applied: %v", err)
	}
	if _, err := e.deps.Ledger.Subscription(ctx, consumable.Tx.OriginalTransactionID); err == nil {
		t.Fatal("a consumable became a subscription")
	}
	// ... but its transaction is kept, as Apple signed it.
	if k := e.count(`SELECT count(*) FROM transactions WHERE transaction_id = $1 AND type = 'Consumable'`, consumable.Tx.TransactionID); k != 1 {
		t.Fatalf("the consumable's transaction stored %d times, want 1", k)
	}
	if got := counterValue(e.deps.Metrics.JobOutcomes.WithLabelValues("process_notification", "completed")); got != 5 {
		t.Fatalf("completed processing jobs counted %v, want 5", got)
	}
}

// TestProcessingCancelsWhenStoredPayloadNoLongerVerifies: the trusted
// roots changed after storing: the nested JWS (signed with the chain the
// webhook verified) no longer verify, so the notification is marked with
// the reason and the job cancelled, not retried.
func TestProcessingCancelsWhenStoredPayloadNoLongerVerifies(t *testing.T) {
	t.Parallel()
	e := newHookEnv(t, hookEnvOptions{})
	n := jobstest.NewNote(appstore.Production, time.Now())
	if c := e.postSigned(n.Sign(t, e.ca)); c != 200 {
		t.Fatalf("status %d", c)
	}
	other, err := sim.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	v, err := appstore.NewVerifier(appstore.VerifierOptions{RootCertificates: [][]byte{other.RootDER()},
		Environment: appstore.Production, BundleID: sim.DefaultBundleID, AppAppleID: sim.DefaultAppAppleID})
	if err != nil {
		t.Fatal(err)
	}
	deps := *e.deps
	deps.Verifier = v
	_, err = deps.processNotification(context.Background(), n.N.NotificationUUID)
	if !isJobCancel(err) {
		t.Fatalf("want a cancel, got %v", err)
	}
	stored, err := e.deps.Ledger.NotificationByUUID(context.Background(), n.N.NotificationUUID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.ProcessedAt == nil || !strings.HasPrefix(stored.ProcessError, "verification: ") {
		t.Fatalf("not marked: %+v", stored)
	}
	if _, err := e.deps.Ledger.Subscription(context.Background(), n.Tx.OriginalTransactionID); err == nil {
		t.Fatal("applied although it no longer verifies")
	}
}

// TestProcessingCancelsWhenAnInnerFieldDoesNotVerify: the webhook verifies
// only the outer signature, so a notification validly signed around an
// inner field that does not verify on its own (another chain, another
// bundle, another environment) is stored (Apple signed those bytes) with
// the ids read from it; its processing job verifies the inner fields,
// applies nothing, records why and is cancelled rather than retried.
func TestProcessingCancelsWhenAnInnerFieldDoesNotVerify(t *testing.T) {
	t.Parallel()
	e := newHookEnv(t, hookEnvOptions{Work: true})
	other := jobstest.NewChain(t, true, "") // its root is not trusted
	now := time.Now()
	untrusted := jobstest.NewNote(appstore.Production, now)
	wrongBundle := jobstest.NewNote(appstore.Production, now)
	wrongBundle.Tx.BundleID = "com.attacker.app"
	sandboxRenewal := jobstest.NewNote(appstore.Production, now)
	sandboxRenewal.RI.Environment = appstore.Sandbox
	cases := []struct {
		note   *jobstest.Note
		signed string
		field  string
	}{
		{untrusted, signWithInnerTx(t, e, untrusted, other.Sign(t, "ES256", untrusted.Tx)), "data.signedTransactionInfo"},
		{wrongBundle, wrongBundle.Sign(t, e.ca), "data.signedTransactionInfo"},
		{sandboxRenewal, sandboxRenewal.Sign(t, e.ca), "data.signedRenewalInfo"},
	}
	for _, c := range cases {
		if code := e.postSigned(c.signed); code != 200 {
			t.Fatalf("%s: status %d, want 200 (the outer signature verifies)", c.field, code)
		}
	}
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for e.count(`SELECT count(*) FROM river_job WHERE kind = 'process_notification' AND state <> 'cancelled'`) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("processing jobs not cancelled: %d", e.count(`SELECT count(*) FROM river_job WHERE state <> 'cancelled'`))
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, c := range cases {
		stored, err := e.deps.Ledger.NotificationByUUID(ctx, c.note.N.NotificationUUID)
		if err != nil {
			t.Fatal(err)
		}
		if stored.OriginalTransactionID != c.note.Tx.OriginalTransactionID || stored.TransactionID != c.note.Tx.TransactionID {
			t.Errorf("%s: stored ids %q %q, want %q %q", c.field, stored.OriginalTransactionID, stored.TransactionID,
				c.note.Tx.OriginalTransactionID, c.note.Tx.TransactionID)
		}
		if stored.ProcessedAt == nil || !strings.HasPrefix(stored.ProcessError, "verification: ") ||
			!strings.Contains(stored.ProcessError, c.field) {
			t.Errorf("%s: processed %v with %q", c.field, stored.ProcessedAt, stored.ProcessError)
		}
		if _, err := e.deps.Ledger.Subscription(ctx, c.note.Tx.OriginalTransactionID); err == nil {
			t.Errorf("%s: applied although an inner field does not verify", c.field)
		}
	}
	if n := e.count(`SELECT count(*) FROM river_job WHERE kind = 'process_notification' AND state = 'cancelled' AND attempt = 1`); n != len(cases) {
		t.Fatalf("%d jobs cancelled at their first attempt, want %d", n, len(cases))
	}
	if n := e.count(`SELECT count(*) FROM river_job WHERE kind <> 'process_notification'`); n != 0 {
		t.Fatalf("%d other jobs enqueued (imports of unverified subscriptions?)", n)
	}
}

// TestProcessingAppliesWhatEachPathStoredButNoForgedNestedJWS: processing
// does not verify a stored notification's outer signature again, only what
// its writer did not (verifyStored). A notification stored by each way into
// the ledger (webhook; backfill and re-sync from Apple's notification
// history; kept aside, then resubmitted once the configuration is fixed) is
// applied. One whose nested transaction is forged (its payload changed
// under Apple's signature) inside a genuinely signed notification is stored
// by the webhook and by the resubmission, which verify only the outer
// signature, but never applied: its processing is cancelled with the
// reason; the history path, which verifies in full, does not store it.
func TestProcessingAppliesWhatEachPathStoredButNoForgedNestedJWS(t *testing.T) {
	t.Parallel()
	e := newHookEnv(t, hookEnvOptions{})
	ctx := context.Background()
	const otherBundle = "com.other.app"
	fixed := *e.deps // the configuration the kept-aside notifications are resubmitted and processed with
	var err error
	fixed.Verifier, err = appstore.NewVerifier(appstore.VerifierOptions{
		RootCertificates: [][]byte{e.ca.RootDER()}, Environment: appstore.Production,
		BundleID: otherBundle, AppAppleID: sim.DefaultAppAppleID,
	})
	if err != nil {
		t.Fatal(err)
	}
	note := func(bundle string) *jobstest.Note {
		n := jobstest.NewNote(appstore.Production, time.Now())
		n.N.Data.BundleID, n.Tx.BundleID = bundle, bundle
		return n
	}
	// forged signs n around its transaction signed by the trusted CA, then
	// given another expiry under the same signature.
	forged := func(n *jobstest.Note) string {
		genuine, err := e.ca.Sign(n.Tx)
		if err != nil {
			t.Fatal(err)
		}
		tx := *n.Tx
		tx.ExpiresDate = appstore.MillisOf(time.Now().Add(10 * 365 * 24 * time.Hour))
		payload, err := json.Marshal(&tx)
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(genuine, ".")
		return signWithInnerTx(t, e, n, parts[0]+"."+base64.RawURLEncoding.EncodeToString(payload)+"."+parts[2])
	}
	type row struct {
		path   string
		note   *jobstest.Note
		forged bool
		deps   *Deps
	}
	var rows []row

	webhook, webhookForged := note(sim.DefaultBundleID), note(sim.DefaultBundleID)
	if c := e.postSigned(webhook.Sign(t, e.ca)); c != 200 {
		t.Fatalf("webhook: status %d", c)
	}
	if c := e.postSigned(forged(webhookForged)); c != 200 {
		t.Fatalf("webhook, forged nested transaction: status %d, want 200 (the outer signature verifies)", c)
	}
	rows = append(rows, row{"webhook", webhook, false, e.deps}, row{"webhook", webhookForged, true, e.deps})

	for _, source := range []string{ledger.SourceBackfill, ledger.SourceResync} {
		n, nf := note(sim.DefaultBundleID), note(sim.DefaultBundleID)
		items := []appstore.NotificationHistoryResponseItem{{SignedPayload: n.Sign(t, e.ca)}, {SignedPayload: forged(nf)}}
		var fresh int
		err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
			_, fresh, err = e.deps.storeHistoryItems(ctx, tx, e.river, appstore.Production, items, source, PriorityBulk)
			return err
		})
		if err != nil || fresh != 1 {
			t.Fatalf("%s: %d stored (%v), want the genuine one only", source, fresh, err)
		}
		if k := e.count(`SELECT count(*) FROM notifications WHERE notification_uuid = $1`, nf.N.NotificationUUID); k != 0 {
			t.Fatalf("%s stored a notification whose nested transaction is forged", source)
		}
		rows = append(rows, row{source, n, false, e.deps})
	}

	kept, keptForged := note(otherBundle), note(otherBundle)
	for _, signed := range []string{kept.Sign(t, e.ca), forged(keptForged)} {
		if c := e.postSigned(signed); c != 400 {
			t.Fatalf("another bundle's notification: status %d, want 400 (kept aside)", c)
		}
	}
	if res, err := ResubmitKeptAside(ctx, &fixed, e.river); err != nil || res.Resubmitted != 2 {
		t.Fatalf("resubmitting: %+v, %v", res, err)
	}
	rows = append(rows, row{"kept aside", kept, false, &fixed}, row{"kept aside", keptForged, true, &fixed})

	wctx := e.workContext()
	for _, r := range rows {
		uuid, otid := r.note.N.NotificationUUID, r.note.Tx.OriginalTransactionID
		res, err := r.deps.processNotification(wctx, uuid)
		stored, serr := e.deps.Ledger.NotificationByUUID(ctx, uuid)
		if serr != nil {
			t.Fatalf("%s: %v", r.path, serr)
		}
		sub, subErr := e.deps.Ledger.Subscription(ctx, otid)
		if r.forged {
			if !isJobCancel(err) || stored.ProcessedAt == nil || !strings.Contains(stored.ProcessError, "data.signedTransactionInfo") {
				t.Errorf("%s, forged nested transaction: %v, process error %q", r.path, err, stored.ProcessError)
			}
			if subErr == nil {
				t.Errorf("%s: a forged nested transaction was applied: %+v", r.path, sub)
			}
			continue
		}
		if err != nil || res.Changed != 1 || stored.ProcessedAt == nil || stored.ProcessError != "" {
			t.Errorf("%s: %+v, %v; stored %+v", r.path, res, err, stored)
		}
		if subErr != nil || sub.LatestTransactionID != r.note.Tx.TransactionID {
			t.Errorf("%s: not applied: %+v, %v", r.path, sub, subErr)
		}
	}
}

// signWithInnerTx signs n with the trusted CA around txJWS instead of its
// own signed transaction.
func signWithInnerTx(t *testing.T, e *hookEnv, n *jobstest.Note, txJWS string) string {
	t.Helper()
	p := n.N
	d := *p.Data
	p.Data = &d
	d.SignedTransactionInfo = txJWS
	var err error
	if d.SignedRenewalInfo, err = e.ca.Sign(n.RI); err != nil {
		t.Fatal(err)
	}
	s, err := e.ca.Sign(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
