package appstore

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// EndpointAppAccountToken is Set App Account Token (20 req/s in
// production). Not in Endpoints; DefaultRateLimits includes it.
const EndpointAppAccountToken Endpoint = "app-account-token"

// SetAppAccountToken sets the appAccountToken (a UUID) of the purchase
// originalTransactionID. Apple refuses a non-UUID (4000183), a
// family-shared transaction (4000185) and an id that is not an original
// transaction id (4000187). It never falls back to the sandbox.
func (c *Client) SetAppAccountToken(ctx context.Context, originalTransactionID, appAccountToken string) error {
	id, err := pathID("SetAppAccountToken: originalTransactionID", originalTransactionID)
	if err != nil {
		return err
	}
	body, err := json.Marshal(struct {
		AppAccountToken string `json:"appAccountToken"`
	}{appAccountToken})
	if err != nil {
		return fmt.Errorf("appstore: encoding the app account token: %w", err)
	}
	return c.send(ctx, c.env, request{
		endpoint: EndpointAppAccountToken, method: http.MethodPut,
		path: "/inApps/v1/transactions/" + id + "/appAccountToken", body: body,
	}, nil)
}
