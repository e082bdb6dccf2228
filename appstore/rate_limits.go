package appstore

import "maps"

// extraProductionRateLimits are Apple's production limits (req/s) of the
// endpoints the Client can call but storesync's jobs do not, so they are
// kept out of Endpoints and ProductionRateLimit.
var extraProductionRateLimits = map[Endpoint]float64{
	EndpointAppTransaction:        50,
	EndpointExtendRenewalDate:     20,
	EndpointMassExtendRenewalDate: 1,
	EndpointMassExtendStatus:      1, // unpublished; assume the strictest
	EndpointAppAccountToken:       20,
}

// DefaultRateLimits returns the requests per second storesync may send to
// each endpoint in env: every endpoint the Client calls, with Apple's
// production limit, cut to 10% outside Production, then multiplied by share.
//
// An override replaces Apple's *production* figure for its endpoint, before
// both the sandbox cut and share are applied. So one APPSTORE_RATE_LIMITS
// setting (written in production numbers, like docs/appstore-api.md §3) fits
// both environments, and sandbox fallback gets the sandbox's share of it.
// Override keys that are not known endpoints are kept, handled the same way.
//
// share is the fraction of Apple's limit this app's storesync may use, in
// (0, 1]; anything else (0 for unset, a negative number, more than 1)
// counts as 1, since exceeding Apple's limit only earns 429s.
func DefaultRateLimits(env Environment, share float64, overrides map[Endpoint]float64) map[Endpoint]float64 {
	if !(share > 0 && share <= 1) {
		share = 1
	}
	production := make(map[Endpoint]float64, len(Endpoints)+len(extraProductionRateLimits)+len(overrides))
	for _, e := range Endpoints {
		production[e] = ProductionRateLimit(e)
	}
	maps.Copy(production, extraProductionRateLimits)
	maps.Copy(production, overrides)
	out := make(map[Endpoint]float64, len(production))
	for e, v := range production {
		if env != Production {
			v /= 10
		}
		out[e] = v * share
	}
	return out
}
