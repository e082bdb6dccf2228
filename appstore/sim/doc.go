// Package sim is an App Store Server API simulator that speaks
// Apple's wire format, for tests, `storesync sim`, `storesync demo`,
// benchmarks and chaos runs.
//
// A Simulator holds a deterministic world generated from (Seed, Subscribers):
// customers ("accounts") with auto-renewable subscriptions in two
// subscription groups, in every state Apple reports (active, auto-renew off,
// billing retry, grace period, expired, refunded, family-shared, upgraded,
// introductory offers, long weekly histories, sandbox-only customers). The
// world lives on a simulated clock that only moves when Advance is called;
// Advance applies renewals, billing failures, recoveries, expiries,
// auto-renew toggles, refunds, upgrades and new purchases in time order and
// sends App Store Server Notifications V2 to a webhook. A second process,
// with a random stream of its own so that seeded worlds kept the first
// process's draws, adds redeemed offers (OFFER_REDEEMED and its subtypes,
// new customers from App Store offer codes among them), price increases
// (PRICE_INCREASE PENDING/ACCEPTED, EXPIRED/PRICE_INCREASE), refund
// requests and Apple's decisions (CONSUMPTION_REQUEST with
// Options.ConsumptionRequests, REFUND, REFUND_DECLINED), reversed refunds
// (REFUND_REVERSED) and extensions by the developer's support staff
// (RENEWAL_EXTENDED). Mass extensions (RENEWAL_EXTENSION SUMMARY/FAILURE)
// come only from the API. Mutate changes a subscription silently;
// MutateAndNotify makes the same change and sends its notification, so
// every type can be had on demand. Truth reports what a perfect ledger must
// hold, so a test can compare.
//
// About 30% of customers have an appAccountToken only in the company's
// records (/sim/ids, ImportRows), as after a migration from before the app
// set tokens: Apple, and so Truth, has none for them until Set App Account
// Token tells it.
//
// Wire format (see docs/appstore-api.md):
//   - Production endpoints live under the base URL, sandbox endpoints under
//     BaseURL+"/sandbox": a client's sandbox base URL is BaseURL()+"/sandbox"
//     (SandboxURL). Both environments share one API key.
//   - Every API request needs `Authorization: Bearer <ES256 JWT>` signed by
//     the simulator's API key (kid, iss, aud "appstoreconnect-v1", bid, exp
//     at most 60 minutes after iat); anything else is a 401 with no body.
//   - Every signed item is a compact ES256 JWS whose x5c chain (leaf,
//     intermediate, root) is issued by the simulator's own CA, shaped like
//     Apple's (marker extensions 1.2.840.113635.100.6.11.1 on the leaf and
//     1.2.840.113635.100.6.2.1 on the intermediate). Trust RootPEM/RootDER,
//     not Apple Root CA G3. signedDate is always the simulated now.
//   - Errors are Apple-shaped JSON ({"errorCode":…,"errorMessage":…}); 429s
//     carry Retry-After as a UNIX time in milliseconds.
//
// API endpoints, each under both prefixes, authenticated and rate-limited
// with Apple's limits:
//
//	GET  /inApps/v1/subscriptions/{anyTransactionId}          Get All Subscription Statuses
//	GET  /inApps/v2/history/{anyTransactionId}                Get Transaction History
//	GET  /inApps/v1/transactions/{transactionId}              Get Transaction Info
//	PUT  /inApps/v1/transactions/{originalTransactionId}/appAccountToken  Set App Account Token
//	POST /inApps/v1/notifications/history                     Get Notification History
//	GET  /inApps/v2/refund/lookup/{anyTransactionId}          Get Refund History
//	GET  /inApps/v1/lookup/{orderId}                          Look Up Order ID (one transaction per order)
//	PUT  /inApps/v1/subscriptions/extend/{originalTransactionId}  Extend a Subscription Renewal Date
//	POST /inApps/v1/subscriptions/extend/mass                 Extend Renewal Dates for All Active Subscribers
//	GET  /inApps/v1/subscriptions/extend/mass/{productId}/{requestIdentifier}  its status
//	POST /inApps/v1/notifications/test, GET …/test/{token}    test notifications
//
// Rate limits and pagination-token lifetimes run on wall time (they are
// about the client's real behaviour); everything in the data (purchase
// dates, signedDate, notification-history look-back) runs on the simulated
// clock.
//
// Control endpoints (no authentication; for curl, demos and chaos runs):
//
//	GET  /sim/token                  a fresh valid bearer JWT (text)
//	GET  /sim/now                    the simulated clock {"now":…}
//	POST /sim/advance?d=24h          advance the clock, apply due events
//	GET  /sim/truth/{otid}           SubscriptionTruth of one subscription
//	GET  /sim/truth?env=production   every SubscriptionTruth of one environment
//	GET  /sim/ids?env=production     CSV import file: original_transaction_id,app_account_token
//	                                 (the company's tokens; env=all: production then sandbox)
//	GET  /sim/orders?env=production  CSV: order_id,original_transaction_id (env=all as above)
//	GET  /sim/receipts?env=production  CSV import file: app_receipt,customer_id,app_account_token,
//	                                 one app receipt (base64 PKCS#7, signed by the CA's leaf) per
//	                                 customer, holding every transaction of the customer so far
//	POST /sim/mutate?otid=…&kind=…   silent change (a MutationKind, e.g. refund, expire,
//	                                 refund-reversed, price-increase); &notify=true also
//	                                 sends the notification about it
//	GET  /sim/faults, POST /sim/faults  read / replace the Faults (JSON)
//	POST /sim/webhook?url=…          set (or clear, url empty) the webhook URL
//	POST /sim/flush                  wait for in-flight webhook deliveries
//	GET  /sim/stats                  Stats (JSON)
//	GET  /sim/root.pem               the CA root certificate
package sim
