// Package jobs holds storesync's River job arguments and workers (import,
// notification processing, backfill, re-sync, reconciliation) and their
// periodic schedules. The HTTP server that enqueues (webhook, admin API) is
// jobs/httpapi, built on this package; the Apple rate budget every worker
// draws from is ledger/budget.
//
// Every job is idempotent: it may run twice, concurrently, or again after a
// crash mid-way, because the ledger's writes are idempotent upserts and long
// work checkpoints its cursor in the same transaction as its ledger writes.
package jobs
