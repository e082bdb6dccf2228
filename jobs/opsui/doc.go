// Package opsui is storesync's ops console: HTML pages at /ops (overview,
// customer search and re-sync) and River's own UI at /riverui, both behind
// one login with the admin token.
//
// Pages are html/template with embedded CSS and no JavaScript framework;
// they refresh themselves with a meta refresh while work runs. Every number
// comes from the same ledger and budget functions `storesync status` reads
// (ledger.QueueCounts, ImportRuns, BackfillWatermarks, ReconcileRuns,
// budget.Usage), plus budget.UsageSeries for the chart and ledger.Timeline
// for a customer: no SQL lives here.
package opsui
