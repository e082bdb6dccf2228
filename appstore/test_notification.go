package appstore

import (
	"context"
	"net/http"
)

// RequestTestNotification asks Apple to send a TEST notification to the
// notification URL configured for the Client's environment (404 4040007
// when none is). Check its delivery with GetTestNotificationStatus.
func (c *Client) RequestTestNotification(ctx context.Context) (*SendTestNotificationResponse, error) {
	return call[SendTestNotificationResponse](ctx, c, c.env, request{
		endpoint: EndpointTestNotification, method: http.MethodPost, path: "/inApps/v1/notifications/test",
	})
}

// GetTestNotificationStatus returns the TEST notification sent for token
// and its delivery attempts; 404 4040008 while none exists or after the
// token expired.
func (c *Client) GetTestNotificationStatus(ctx context.Context, token string) (*CheckTestNotificationResponse, error) {
	t, err := pathID("GetTestNotificationStatus: token", token)
	if err != nil {
		return nil, err
	}
	return call[CheckTestNotificationResponse](ctx, c, c.env, request{
		endpoint: EndpointTestNotification, method: http.MethodGet, path: "/inApps/v1/notifications/test/" + t,
	})
}
