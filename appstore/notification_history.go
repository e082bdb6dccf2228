package appstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
)

// Send attempt results (SendAttemptItem.SendAttemptResult); Apple may add
// others.
const (
	SendAttemptSuccess                      = "SUCCESS"
	SendAttemptTimedOut                     = "TIMED_OUT"
	SendAttemptTLSIssue                     = "TLS_ISSUE"
	SendAttemptCircularRedirect             = "CIRCULAR_REDIRECT"
	SendAttemptNoResponse                   = "NO_RESPONSE"
	SendAttemptSocketIssue                  = "SOCKET_ISSUE"
	SendAttemptUnsupportedCharset           = "UNSUPPORTED_CHARSET"
	SendAttemptInvalidResponse              = "INVALID_RESPONSE"
	SendAttemptPrematureClose               = "PREMATURE_CLOSE"
	SendAttemptUnsuccessfulHTTPResponseCode = "UNSUCCESSFUL_HTTP_RESPONSE_CODE"
	SendAttemptOther                        = "OTHER"
)

// body checks req for the mistakes Apple would reject and encodes it.
func (req NotificationHistoryRequest) body() ([]byte, error) {
	var errs []error
	if req.StartDate == 0 {
		errs = append(errs, errors.New("StartDate is required (UNIX ms, at most 180 days back in production, 30 in sandbox)"))
	}
	if req.EndDate == 0 {
		errs = append(errs, errors.New("EndDate is required (UNIX ms, after StartDate)"))
	}
	if req.StartDate != 0 && req.EndDate != 0 && req.StartDate >= req.EndDate {
		errs = append(errs, errors.New("StartDate must be before EndDate"))
	}
	if req.TransactionID != "" && req.NotificationType != "" {
		errs = append(errs, errors.New("TransactionID and NotificationType cannot both be set (Apple error 4000019): filter by one"))
	}
	if req.NotificationSubtype != "" && req.NotificationType == "" {
		errs = append(errs, errors.New("NotificationSubtype needs NotificationType"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("appstore: NotificationHistoryRequest: %w", err)
	}
	return json.Marshal(req)
}

// GetNotificationHistory returns one page (up to 20) of the notifications
// Apple sent, or tried to send, in the Client's environment. Pass "" as
// paginationToken for the first page and the previous page's
// PaginationToken for the next while HasMore, with an identical req: Apple
// answers 4000017 or 4000014 otherwise. Records hold the state of when the
// notification was first sent.
func (c *Client) GetNotificationHistory(ctx context.Context, req NotificationHistoryRequest, paginationToken string) (*NotificationHistoryResponse, error) {
	body, err := req.body()
	if err != nil {
		return nil, err
	}
	return c.notificationHistoryPage(ctx, body, paginationToken)
}

func (c *Client) notificationHistoryPage(ctx context.Context, body []byte, token string) (*NotificationHistoryResponse, error) {
	q := url.Values{}
	if token != "" {
		q.Set("paginationToken", token)
	}
	return call[NotificationHistoryResponse](ctx, c, c.env, request{
		endpoint: EndpointNotificationHistory, method: http.MethodPost,
		path: "/inApps/v1/notifications/history", query: q, body: body,
	})
}

// NotificationHistory pages through the notification history matching req,
// sending the same body bytes for every page and yielding each page as it
// arrives. It stops after the page with HasMore false, at the first error
// (yielded once, with a nil page), or as soon as the loop body breaks. To
// resume later, keep the last PaginationToken and call
// GetNotificationHistory with the same req.
func (c *Client) NotificationHistory(ctx context.Context, req NotificationHistoryRequest) iter.Seq2[*NotificationHistoryResponse, error] {
	return func(yield func(*NotificationHistoryResponse, error) bool) {
		body, err := req.body()
		if err != nil {
			yield(nil, err)
			return
		}
		token := ""
		for {
			page, err := c.notificationHistoryPage(ctx, body, token)
			if err == nil && page.HasMore && (page.PaginationToken == "" || page.PaginationToken == token) {
				err = fmt.Errorf("appstore: notification history has more pages but no new pagination token (%q)", page.PaginationToken)
			}
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(page, nil) || !page.HasMore {
				return
			}
			token = page.PaginationToken
		}
	}
}
