// Package population builds a realistic ledger of many subscriptions in
// minutes, for the benchmarks that must run at a million subscribers (issue
// 18) and for tests that need a large ledger.
//
// Fill writes, with COPY over parallel streams: customers with their
// appAccountTokens; subscriptions across products, statuses and
// environments; up to a year of monthly renewal transactions per
// subscription; renewal info; notifications; the change feed's events; an
// import run with its rows; and a week of nightly reconciliation runs with
// their drift and conflicts. Every JWS is genuinely signed with the given
// simulator CA (appstore/sim), so re-verification, `show` and exports work
// on it, and every stored column agrees with the payload it came from:
// re-applying a subscription's stored facts through the ledger changes
// nothing.
//
// The ledger's shape is a function of Options.Seed and the subscription's
// index alone, so a caller can name ids that exist (OriginalTransactionID,
// CustomerID, AppAccountToken) without reading them back.
package population
