// Package httpapi is storesync's HTTP server: the App Store Server
// Notifications V2 webhook (which verifies each notification and stores it
// with its processing job, in group commits; one Apple signed for another
// app or environment is refused but kept aside, see ledger.KeepAside),
// /healthz, /metrics and the admin API (re-sync, the ledger's view of a
// subscription).
//
// It is built on package jobs (the workers, their job arguments, metrics
// and dependencies) and never the other way round: jobs works without an
// HTTP server (`storesync import`, `backfill`, the workers of `serve`).
package httpapi
