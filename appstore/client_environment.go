package appstore

import "fmt"

// InEnvironment returns a Client that sends every request to env, without
// fallback: once a subscription is known to live in the sandbox, paging its
// history must not spend a production call (and a 404) per page. It shares
// the Budget, key and HTTP client of c. env must be c's environment or, when
// c falls back, Sandbox.
func (c *Client) InEnvironment(env Environment) (*Client, error) {
	if _, ok := c.baseURLs[env]; !ok {
		return nil, fmt.Errorf("appstore: this client cannot reach the %s environment: set APPSTORE_SANDBOX_FALLBACK=true to reach the sandbox from production", env)
	}
	cc := *c
	cc.env = env
	cc.fallback = false
	return &cc, nil
}
