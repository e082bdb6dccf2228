package appstore

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
)

func notificationPages(pages int) func(r seenRequest) reply {
	return func(r seenRequest) reply {
		n := 0
		if tok := r.Query.Get("paginationToken"); tok != "" {
			if _, err := fmt.Sscanf(tok, "token-%d", &n); err != nil {
				return reply{status: 400, body: []byte(`{"errorCode":4000014,"errorMessage":"Invalid pagination token."}`)}
			}
		}
		next := ""
		if n+1 < pages {
			next = fmt.Sprintf(`"paginationToken":"token-%d",`, n+1)
		}
		return reply{status: 200, body: fmt.Appendf(nil,
			`{%s"hasMore":%v,"notificationHistory":[{"signedPayload":"payload-%d","sendAttempts":[{"attemptDate":1698148900000,"sendAttemptResult":"SUCCESS"}]}]}`,
			next, n+1 < pages, n+1)}
	}
}

func TestNotificationHistoryPages(t *testing.T) {
	t.Parallel()
	f := newFakeApple(t, notificationPages(3))
	b := &recordingBudget{}
	c := newTestClient(t, f, b, func(o *ClientOptions) { o.SandboxFallback = true })
	req := NotificationHistoryRequest{StartDate: 1698148900000, EndDate: 1698148950000, OnlyFailures: true}
	var payloads []string
	for page, err := range c.NotificationHistory(context.Background(), req) {
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.NotificationHistory {
			payloads = append(payloads, it.SignedPayload)
		}
	}
	if strings.Join(payloads, ",") != "payload-1,payload-2,payload-3" {
		t.Errorf("payloads %v", payloads)
	}
	seen := f.Seen()
	if len(seen) != 3 {
		t.Fatalf("%d requests, want 3", len(seen))
	}
	for i, s := range seen {
		if s.Env != Production || s.Method != "POST" || s.Path != "/inApps/v1/notifications/history" {
			t.Errorf("request %d: %s %s %s", i, s.Env, s.Method, s.Path)
		}
		wantTok := []string{"", "token-1", "token-2"}[i]
		if _, has := s.Query["paginationToken"]; has != (wantTok != "") || s.Query.Get("paginationToken") != wantTok {
			t.Errorf("request %d query %v, want paginationToken %q", i, s.Query, wantTok)
		}
		if !bytes.Equal(s.Body, seen[0].Body) {
			t.Errorf("request %d body %s differs from the first %s", i, s.Body, seen[0].Body)
		}
		checkHeaders(t, s)
	}
	jsonEqual(t, seen[0].Body, `{"startDate":1698148900000,"endDate":1698148950000,"onlyFailures":true}`)
	if bytes.Contains(seen[0].Body, []byte("transactionId")) {
		t.Errorf("body %s sends an empty transactionId", seen[0].Body)
	}
	if len(b.Waits()) != 3 {
		t.Errorf("%d budget waits, want 3", len(b.Waits()))
	}
	for _, w := range b.Waits() {
		if w.Env != Production || w.Endpoint != EndpointNotificationHistory {
			t.Errorf("wait %+v", w)
		}
	}
}

func TestNotificationHistoryStopsOnBreak(t *testing.T) {
	t.Parallel()
	f := newFakeApple(t, notificationPages(50))
	c := newTestClient(t, f, &recordingBudget{}, nil)
	req := NotificationHistoryRequest{StartDate: 1, EndDate: 2, TransactionID: "999733843"}
	for _, err := range c.NotificationHistory(context.Background(), req) {
		if err != nil {
			t.Fatal(err)
		}
		break
	}
	seen := f.Seen()
	if len(seen) != 1 {
		t.Fatalf("%d requests after break, want 1", len(seen))
	}
	jsonEqual(t, seen[0].Body, `{"startDate":1,"endDate":2,"transactionId":"999733843"}`)
}

func TestGetNotificationHistoryOnePage(t *testing.T) {
	t.Parallel()
	f := newFakeApple(t, notificationPages(3))
	c := newTestClient(t, f, &recordingBudget{}, nil)
	req := NotificationHistoryRequest{StartDate: 1, EndDate: 2, NotificationType: "SUBSCRIBED", NotificationSubtype: "INITIAL_BUY"}
	page, err := c.GetNotificationHistory(context.Background(), req, "token-1")
	if err != nil || page.PaginationToken != "token-2" || !page.HasMore || page.NotificationHistory[0].SignedPayload != "payload-2" {
		t.Fatalf("page %+v err %v", page, err)
	}
	s := f.Seen()[0]
	if s.Query.Get("paginationToken") != "token-1" {
		t.Errorf("query %v", s.Query)
	}
	jsonEqual(t, s.Body, `{"startDate":1,"endDate":2,"notificationType":"SUBSCRIBED","notificationSubtype":"INITIAL_BUY"}`)
}

func TestNotificationHistoryRequestChecked(t *testing.T) {
	t.Parallel()
	f := newFakeApple(t, notificationPages(1))
	b := &recordingBudget{}
	c := newTestClient(t, f, b, nil)
	for _, tc := range []struct {
		req  NotificationHistoryRequest
		want string
	}{
		{NotificationHistoryRequest{EndDate: 2}, "StartDate is required"},
		{NotificationHistoryRequest{StartDate: 1}, "EndDate is required"},
		{NotificationHistoryRequest{StartDate: 2, EndDate: 2}, "before EndDate"},
		{NotificationHistoryRequest{StartDate: 1, EndDate: 2, TransactionID: "1", NotificationType: "REFUND"}, "cannot both be set"},
		{NotificationHistoryRequest{StartDate: 1, EndDate: 2, NotificationSubtype: "INITIAL_BUY"}, "needs NotificationType"},
	} {
		_, err := c.GetNotificationHistory(context.Background(), tc.req, "")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.req, err, tc.want)
		}
		n := 0
		for page, err := range c.NotificationHistory(context.Background(), tc.req) {
			n++
			if page != nil || err == nil {
				t.Errorf("iterator on %+v yielded %v, %v", tc.req, page, err)
			}
		}
		if n != 1 {
			t.Errorf("iterator on a bad request yielded %d times", n)
		}
	}
	if len(f.Seen()) != 0 || len(b.Waits()) != 0 {
		t.Errorf("bad requests were sent")
	}
}

func TestNotificationHistoryMissingToken(t *testing.T) {
	t.Parallel()
	f := newFakeApple(t, func(seenRequest) reply {
		return reply{status: 200, body: []byte(`{"hasMore":true,"notificationHistory":[]}`)}
	})
	c := newTestClient(t, f, &recordingBudget{}, nil)
	var errs int
	for _, err := range c.NotificationHistory(context.Background(), NotificationHistoryRequest{StartDate: 1, EndDate: 2}) {
		if err != nil {
			errs++
		}
	}
	if errs != 1 || len(f.Seen()) != 1 {
		t.Errorf("%d errors after %d requests, want 1 and 1", errs, len(f.Seen()))
	}
}
