// Package appstore speaks Apple's App Store Server API wire format: the bearer
// JWT, every endpoint storesync calls, typed API errors, the rate budget each
// request draws from, verification of App Store signed data (JWS), and the
// decoded payload types.
//
// The package knows nothing of Postgres; callers persist what it returns.
package appstore
