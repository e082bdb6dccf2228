package sim

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
)

// webhookRecorder is an httptest webhook that stores every signedPayload
// and answers 500 to every failEvery-th delivery (0 = never).
type webhookRecorder struct {
	srv       *httptest.Server
	failEvery int64
	n         atomic.Int64
	mu        sync.Mutex
	payloads  []string
}

func newWebhookRecorder(t *testing.T, failEvery int64) *webhookRecorder {
	wr := &webhookRecorder{failEvery: failEvery}
	wr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			SignedPayload string `json:"signedPayload"`
		}
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &body); err != nil || body.SignedPayload == "" || r.Method != http.MethodPost {
			w.WriteHeader(400)
			return
		}
		if k := wr.n.Add(1); wr.failEvery > 0 && k%wr.failEvery == 0 {
			w.WriteHeader(500)
			return
		}
		wr.mu.Lock()
		wr.payloads = append(wr.payloads, body.SignedPayload)
		wr.mu.Unlock()
	}))
	t.Cleanup(wr.srv.Close)
	return wr
}

func TestAdvanceDeliversNotificationsAndDropsItsShare(t *testing.T) {
	t.Parallel()
	hook := newWebhookRecorder(t, 10)
	s := startTest(t, unlimited(Options{Seed: 21, Subscribers: 2000, WebhookURL: hook.srv.URL, DropShare: 0.2}))
	rep := s.Advance(24 * time.Hour)
	if rep.Notifications < 20 || rep.Notifications > 200 {
		t.Fatalf("Advance(24h) on 2,000 subscribers made %d notifications, want tens", rep.Notifications)
	}
	rep2 := s.Advance(72 * time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	total := rep.Notifications + rep2.Notifications
	st := s.Stats().Webhook
	if int(st.Notifications) != total || st.Delivered+st.Failed+st.Dropped != st.Notifications {
		t.Fatalf("webhook stats %+v, want %d notifications all accounted for", st, total)
	}
	if share := float64(st.Dropped) / float64(total); share < 0.12 || share > 0.28 {
		t.Errorf("dropped %d of %d (%.2f), want about 0.2", st.Dropped, total, share)
	}
	hook.mu.Lock()
	received := append([]string(nil), hook.payloads...)
	hook.mu.Unlock()
	if int64(len(received)) != st.Delivered || hook.n.Load() != st.Delivered+st.Failed {
		t.Fatalf("webhook got %d (%d stored), stats say delivered %d failed %d", hook.n.Load(), len(received), st.Delivered, st.Failed)
	}
	uuids := map[string]bool{}
	for i, jws := range received {
		var n appstore.NotificationPayload
		if i < 5 {
			verifyJWS(t, s, jws, &n)
			var tx appstore.TransactionPayload
			verifyJWS(t, s, n.Data.SignedTransactionInfo, &tx)
			var rn appstore.RenewalInfoPayload
			verifyJWS(t, s, n.Data.SignedRenewalInfo, &rn)
			if tx.SignedDate != n.SignedDate || tx.OriginalTransactionID != rn.OriginalTransactionID {
				t.Errorf("inner payloads: signedDate %d vs %d, otid %s vs %s", tx.SignedDate, n.SignedDate, tx.OriginalTransactionID, rn.OriginalTransactionID)
			}
		} else {
			decodeJWS(t, jws, &n)
		}
		if n.Version != "2.0" || n.Data == nil || int64(n.Data.AppAppleID) != s.AppAppleID() || n.Data.BundleID != s.BundleID() || n.Data.Status < 1 || n.Data.Status > 5 {
			t.Fatalf("notification %+v", n)
		}
		uuids[n.NotificationUUID] = true
	}

	// Notification history has every notification with its attempts;
	// onlyFailures has exactly the dropped and failed ones.
	start := rep.From.UnixMilli()
	end := rep2.To.UnixMilli() + 1
	all := pageNotificationHistory(t, s, "", appstore.NotificationHistoryRequest{StartDate: appstore.Millis(start), EndDate: appstore.Millis(end)})
	sandbox := pageNotificationHistory(t, s, "/sandbox", appstore.NotificationHistoryRequest{StartDate: appstore.Millis(start), EndDate: appstore.Millis(end)})
	if len(all)+len(sandbox) != total || len(all) != len(s.Notifications(appstore.Production)) {
		t.Fatalf("notification history has %d production + %d sandbox, want %d", len(all), len(sandbox), total)
	}
	failReq := appstore.NotificationHistoryRequest{StartDate: appstore.Millis(start), EndDate: appstore.Millis(end), OnlyFailures: true}
	failures := append(pageNotificationHistory(t, s, "", failReq), pageNotificationHistory(t, s, "/sandbox", failReq)...)
	if int64(len(failures)) != st.Dropped+st.Failed {
		t.Fatalf("onlyFailures gave %d, want dropped %d + failed %d", len(failures), st.Dropped, st.Failed)
	}
	results := map[string]int{}
	for _, it := range failures {
		var n appstore.NotificationPayload
		decodeJWS(t, it.SignedPayload, &n)
		if uuids[n.NotificationUUID] {
			t.Errorf("delivered notification %s listed as failure", n.NotificationUUID)
		}
		if len(it.SendAttempts) != 1 {
			t.Fatalf("failure with %d attempts, want 1 (never retried)", len(it.SendAttempts))
		}
		if it.SendAttempts[0].AttemptDate != n.SignedDate {
			t.Errorf("attempt date %d, signedDate %d", it.SendAttempts[0].AttemptDate, n.SignedDate)
		}
		results[it.SendAttempts[0].SendAttemptResult]++
	}
	if int64(results["NO_RESPONSE"]) != st.Dropped || int64(results["UNSUCCESSFUL_HTTP_RESPONSE_CODE"]) != st.Failed {
		t.Errorf("failure results %v, want %d NO_RESPONSE and %d UNSUCCESSFUL_HTTP_RESPONSE_CODE", results, st.Dropped, st.Failed)
	}
}

// pageNotificationHistory pages Get Notification History with an identical
// body and returns every item.
func pageNotificationHistory(t *testing.T, s *Simulator, prefix string, req appstore.NotificationHistoryRequest) []appstore.NotificationHistoryResponseItem {
	t.Helper()
	var out []appstore.NotificationHistoryResponseItem
	token := ""
	for page := 0; ; page++ {
		if page > 1000 {
			t.Fatal("notification history paging does not end")
		}
		path := prefix + "/inApps/v1/notifications/history"
		if token != "" {
			path += "?paginationToken=" + url.QueryEscape(token)
		}
		var h appstore.NotificationHistoryResponse
		call(t, s, "POST", path, req).decode(t, &h)
		out = append(out, h.NotificationHistory...)
		if !h.HasMore {
			if h.PaginationToken != "" {
				t.Error("last page carries a paginationToken")
			}
			return out
		}
		if len(h.NotificationHistory) != pageSize {
			t.Fatalf("page with hasMore has %d items, want %d", len(h.NotificationHistory), pageSize)
		}
		token = h.PaginationToken
	}
}

func TestNotificationHistoryTokensAndLimits(t *testing.T) {
	t.Parallel()
	s := startTest(t, unlimited(Options{Seed: 4, Subscribers: 2000, PaginationTokenTTL: time.Second}))
	rep := s.Advance(48 * time.Hour)
	if rep.Notifications <= 2*pageSize {
		t.Fatalf("only %d notifications", rep.Notifications)
	}
	body := appstore.NotificationHistoryRequest{StartDate: appstore.MillisOf(rep.From), EndDate: appstore.MillisOf(rep.To.Add(time.Hour))}
	var h appstore.NotificationHistoryResponse
	call(t, s, "POST", "/inApps/v1/notifications/history", body).decode(t, &h)
	if !h.HasMore || h.PaginationToken == "" {
		t.Fatal("want a second page")
	}
	tok := "?paginationToken=" + url.QueryEscape(h.PaginationToken)
	changed := body
	changed.EndDate++
	call(t, s, "POST", "/inApps/v1/notifications/history"+tok, changed).wantError(t, 400, 4000014)
	onlyFail := body
	onlyFail.OnlyFailures = true
	call(t, s, "POST", "/inApps/v1/notifications/history"+tok, onlyFail).wantError(t, 400, 4000014)
	call(t, s, "POST", "/inApps/v1/notifications/history?paginationToken=nonsense", body).wantError(t, 400, 4000014)
	call(t, s, "POST", "/sandbox/inApps/v1/notifications/history"+tok, body).wantError(t, 400, 4000014)
	call(t, s, "POST", "/inApps/v1/notifications/history"+tok, body).decode(t, &h) // identical body: fine
	time.Sleep(1100 * time.Millisecond)
	call(t, s, "POST", "/inApps/v1/notifications/history"+tok, body).wantError(t, 400, 4000017)

	// Every notification of the window exactly once, in signedDate order.
	items := pageNotificationHistory(t, s, "", body)
	if want := len(s.Notifications(appstore.Production)); len(items) != want || want <= 2*pageSize {
		t.Fatalf("paged %d, want %d", len(items), want)
	}
	seen := map[string]bool{}
	var last appstore.Millis
	for _, it := range items {
		var n appstore.NotificationPayload
		decodeJWS(t, it.SignedPayload, &n)
		if seen[n.NotificationUUID] || n.SignedDate < last {
			t.Fatalf("notification %s repeated or out of order", n.NotificationUUID)
		}
		seen[n.NotificationUUID] = true
		last = n.SignedDate
	}

	// Filters: one customer's notifications by any of its transaction ids.
	recs := s.Notifications(appstore.Production)
	otid := recs[0].OriginalTransactionID
	want := 0
	for _, r := range recs {
		if a, _ := s.AccountOf(r.OriginalTransactionID); a.ID == mustAccount(t, s, otid).ID {
			want++
		}
	}
	byTx := pageNotificationHistory(t, s, "", appstore.NotificationHistoryRequest{StartDate: body.StartDate, EndDate: body.EndDate, TransactionID: otid})
	if len(byTx) != want {
		t.Errorf("transactionId filter gave %d, want %d", len(byTx), want)
	}
	byType := pageNotificationHistory(t, s, "", appstore.NotificationHistoryRequest{StartDate: body.StartDate, EndDate: body.EndDate, NotificationType: "DID_RENEW", NotificationSubtype: "BILLING_RECOVERY"})
	for _, it := range byType {
		var n appstore.NotificationPayload
		decodeJWS(t, it.SignedPayload, &n)
		if n.NotificationType != "DID_RENEW" || n.Subtype != "BILLING_RECOVERY" {
			t.Errorf("type filter returned %s/%s", n.NotificationType, n.Subtype)
		}
	}

	now := s.Now()
	ms := func(t time.Time) appstore.Millis { return appstore.MillisOf(t) }
	for _, c := range []struct {
		name   string
		prefix string
		body   any
		code   int
	}{
		{"production look-back 180 days", "", appstore.NotificationHistoryRequest{StartDate: ms(now.Add(-181 * day)), EndDate: ms(now)}, 4000012},
		{"sandbox look-back 30 days", "/sandbox", appstore.NotificationHistoryRequest{StartDate: ms(now.Add(-31 * day)), EndDate: ms(now)}, 4000012},
		{"start after end", "", appstore.NotificationHistoryRequest{StartDate: ms(now), EndDate: ms(now.Add(-time.Hour))}, 4000013},
		{"start equals end", "", appstore.NotificationHistoryRequest{StartDate: ms(now), EndDate: ms(now)}, 4000013},
		{"two filters", "", appstore.NotificationHistoryRequest{StartDate: ms(now.Add(-day)), EndDate: ms(now), TransactionID: otid, NotificationType: "DID_RENEW"}, 4000019},
		{"bad type", "", appstore.NotificationHistoryRequest{StartDate: ms(now.Add(-day)), EndDate: ms(now), NotificationType: "RENEWED"}, 4000018},
		{"no start", "", map[string]any{"endDate": now.UnixMilli()}, 4000015},
		{"no end", "", map[string]any{"startDate": now.UnixMilli()}, 4000016},
		{"empty transactionId", "", map[string]any{"startDate": now.Add(-day).UnixMilli(), "endDate": now.UnixMilli(), "transactionId": ""}, 4000006},
	} {
		r := call(t, s, "POST", c.prefix+"/inApps/v1/notifications/history", c.body)
		if r.status != 400 {
			t.Errorf("%s: status %d", c.name, r.status)
			continue
		}
		r.wantError(t, 400, c.code)
	}
	// Inside the look-back works (179 days, sandbox 29 days).
	call(t, s, "POST", "/inApps/v1/notifications/history", appstore.NotificationHistoryRequest{StartDate: ms(now.Add(-179 * day)), EndDate: ms(now)}).decode(t, &h)
	call(t, s, "POST", "/sandbox/inApps/v1/notifications/history", appstore.NotificationHistoryRequest{StartDate: ms(now.Add(-29 * day)), EndDate: ms(now)}).decode(t, &h)
	call(t, s, "POST", "/inApps/v1/notifications/history", appstore.NotificationHistoryRequest{StartDate: ms(now.Add(-day)), EndDate: ms(now), TransactionID: "42"}).wantError(t, 404, 4040010)
}

func mustAccount(t *testing.T, s *Simulator, id string) Account {
	t.Helper()
	a, ok := s.AccountOf(id)
	if !ok {
		t.Fatalf("no account for %s", id)
	}
	return a
}

func TestTestNotification(t *testing.T) {
	t.Parallel()
	s := startTest(t, unlimited(Options{Seed: 1, Subscribers: 10}))
	call(t, s, "POST", "/inApps/v1/notifications/test", nil).wantError(t, 404, 4040007)
	hook := newWebhookRecorder(t, 0)
	if err := s.SetWebhookURL(hook.srv.URL); err != nil {
		t.Fatal(err)
	}
	var sent appstore.SendTestNotificationResponse
	call(t, s, "POST", "/sandbox/inApps/v1/notifications/test", nil).decode(t, &sent)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var check appstore.CheckTestNotificationResponse
	call(t, s, "GET", "/sandbox/inApps/v1/notifications/test/"+url.PathEscape(sent.TestNotificationToken), nil).decode(t, &check)
	var n appstore.NotificationPayload
	verifyJWS(t, s, check.SignedPayload, &n)
	if n.NotificationType != "TEST" || n.Data == nil || n.Data.Environment != appstore.Sandbox {
		t.Errorf("test notification %+v", n)
	}
	if len(check.SendAttempts) != 1 || check.SendAttempts[0].SendAttemptResult != "SUCCESS" {
		t.Errorf("send attempts %+v", check.SendAttempts)
	}
	call(t, s, "GET", "/inApps/v1/notifications/test/"+url.PathEscape(sent.TestNotificationToken), nil).wantError(t, 404, 4040008)
	if len(s.Notifications(appstore.Sandbox)) != 0 {
		t.Error("TEST notification entered notification history")
	}
}
