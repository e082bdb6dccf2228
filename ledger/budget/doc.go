// Package budget is the Apple rate budget that every storesync process of
// an app shares through Postgres: Postgres implements appstore.Budget with
// one token bucket per (app, environment, endpoint) in the database, and
// Usage and ThrottledSince read back what was spent (for `storesync status`
// and `storesync import --wait`).
//
// It lives beside the ledger because, with package ledger, it is the only
// place storesync's own SQL may live; it never imports jobs (metrics come
// in through PostgresOptions.ObserveWait).
package budget
