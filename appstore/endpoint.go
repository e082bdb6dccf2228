package appstore

// Endpoint names one rate-limited App Store Server API endpoint. Apple limits
// requests per app and per endpoint; these names are also the keys of
// APPSTORE_RATE_LIMITS.
type Endpoint string

const (
	EndpointStatuses            Endpoint = "statuses"
	EndpointHistory             Endpoint = "history"
	EndpointTransaction         Endpoint = "transaction"
	EndpointNotificationHistory Endpoint = "notification-history"
	EndpointRefundHistory       Endpoint = "refund-history"
	EndpointOrderLookup         Endpoint = "order-lookup"
	EndpointTestNotification    Endpoint = "test-notification"
)

// Endpoints lists every endpoint storesync calls.
var Endpoints = []Endpoint{
	EndpointStatuses, EndpointHistory, EndpointTransaction, EndpointNotificationHistory,
	EndpointRefundHistory, EndpointOrderLookup, EndpointTestNotification,
}

// ProductionRateLimit returns Apple's published production limit for e in
// requests per second (docs/appstore-api.md §3); sandbox allows 10% of it.
func ProductionRateLimit(e Endpoint) float64 {
	switch e {
	case EndpointStatuses, EndpointHistory, EndpointTransaction, EndpointNotificationHistory:
		return 50
	case EndpointRefundHistory, EndpointOrderLookup:
		return 10
	case EndpointTestNotification:
		return 1
	}
	return 0
}

// DefaultRateLimit returns Apple's limit for e in env: the production figure,
// or 10% of it in the sandbox.
func DefaultRateLimit(e Endpoint, env Environment) float64 {
	if env == Production {
		return ProductionRateLimit(e)
	}
	return ProductionRateLimit(e) / 10
}
