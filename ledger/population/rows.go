package population

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/ledger"
)

// Column lists of the tables Fill copies into; rows are built in this
// order. JWS columns come last, from jwsColumns.
var columns = map[string][]string{
	"customers": {"customer_id", "app_account_token", "created_at", "updated_at"},
	"subscriptions": {"original_transaction_id", "environment", "app_account_token", "customer_id", "product_id",
		"subscription_group_identifier", "status", "status_signed_date", "observed_status", "expires_date",
		"purchase_date", "revocation_date", "auto_renew_status", "auto_renew_product_id", "is_in_billing_retry",
		"grace_period_expires_date", "latest_transaction_id", "transaction_count", "last_signed_date",
		"history_synced_at", "last_checked_at", "created_at", "updated_at"},
	"transactions": {"transaction_id", "original_transaction_id", "environment", "product_id",
		"subscription_group_identifier", "type", "purchase_date", "original_purchase_date", "expires_date",
		"app_account_token", "in_app_ownership_type", "revocation_date", "revocation_reason", "revocation_type",
		"is_upgraded", "offer_type", "offer_identifier", "transaction_reason", "web_order_line_item_id", "price",
		"currency", "storefront", "signed_date", "created_at", "updated_at"},
	"renewal_infos": {"original_transaction_id", "environment", "auto_renew_status", "auto_renew_product_id",
		"product_id", "expiration_intent", "is_in_billing_retry_period", "grace_period_expires_date",
		"renewal_date", "app_account_token", "signed_date", "updated_at"},
	"notifications": {"notification_uuid", "notification_type", "subtype", "environment", "signed_date",
		"original_transaction_id", "transaction_id", "source", "received_at", "processed_at"},
	"subscription_events": {"id", "position", "original_transaction_id", "customer_id", "type", "entitlement",
		"before", "after", "cause_notification_uuid", "cause_import_run", "signed_date", "created_at"},
	"import_rows": {"original_transaction_id", "run_id", "app_account_token", "customer_id", "state",
		"updated_at", "created_at", "statuses_fetched_at"},
}

// tables is the order a chunk is copied in.
var tables = []string{"customers", "subscriptions", "transactions", "renewal_infos", "notifications",
	"subscription_events", "import_rows"}

// copyColumns is a table's full column list for COPY.
func copyColumns(table string) []string {
	return append(append([]string(nil), columns[table]...), jwsColumnNames[table]...)
}

// chunk holds the rows of a run of consecutive subscriptions, per table.
type chunk struct {
	rows       map[string][][]any
	signatures int64
	// chains are the certificate chains the rows name, by SHA-256: one
	// per CA, stored with the chunk's rows.
	chains map[string]string
}

// builder turns plans into rows, signing as it goes.
type builder struct {
	o          Options
	knownChain string // the chain Fill stored up front (SHA-256 as a string)
	importRun  int64
	importAt   time.Time // when the import run started
}

func ms(t time.Time) appstore.Millis { return appstore.Millis(t.UnixMilli()) }

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

func nullMillis(m appstore.Millis) any {
	if m == 0 {
		return nil
	}
	return m.Time()
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// eventsPerSubscription bounds the feed events of one subscription (one
// subscription event, then one grant per entitlement), so event ids are
// a function of the subscription's index.
const eventsPerSubscription = 8

// notification UUIDs: from (seed, i, salt), salts above 100.
func notificationUUID(seed uint64, i, j int) string { return AppAccountToken(seed^0x5eed, i*8+j) }

func (b *builder) sign(c *chunk, v any) (string, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	c.signatures++
	return b.o.CA.SignJSON(body)
}

func (b *builder) add(c *chunk, table string, row []any, jws string) {
	if jws != "" {
		cols, sha, chain := jwsColumns(table, jws)
		row = append(row, cols...)
		if sha != nil {
			if c.chains == nil {
				c.chains = map[string]string{}
			}
			c.chains[string(sha)] = chain
		}
	}
	c.rows[table] = append(c.rows[table], row)
}

// build appends subscription i's rows to c.
func (b *builder) build(c *chunk, i int) error {
	o := b.o
	p := planOf(o.Seed, i, o.Now)
	env := appstore.Environment(p.env)
	price := map[string]int64{ProductMonthly: 9990, ProductPremium: 19990, ProductYearly: 99990}[p.product]
	token := nullString(p.token)
	var customerID any
	if p.customer >= 0 {
		customerID = CustomerID(p.customer)
	}
	imported := p.start.Before(b.importAt)
	createdAt := p.start.Add(5 * time.Second) // learnt from its first notification
	if imported {
		createdAt = b.importAt.Add(time.Duration(i%3600) * time.Second)
	}
	if p.customer == i {
		b.add(c, "customers", []any{CustomerID(i), token, createdAt, createdAt}, "")
	}

	// Transactions, oldest first.
	txJWS := make([]string, p.n)
	for k := 0; k < p.n; k++ {
		tp := appstore.TransactionPayload{
			TransactionID: transactionID(i, k), OriginalTransactionID: p.otid,
			WebOrderLineItemID: fmt.Sprint(4000000000000000 + int64(i)*16 + int64(k)), BundleID: o.BundleID,
			ProductID: p.product, SubscriptionGroupIdentifier: GroupID, PurchaseDate: ms(p.purchase(k)),
			OriginalPurchaseDate: ms(p.start), ExpiresDate: ms(p.expires(k)), Quantity: 1,
			Type: "Auto-Renewable Subscription", AppAccountToken: p.token, InAppOwnershipType: "PURCHASED",
			SignedDate: ms(p.txSigned(k)), Environment: env, Storefront: "USA", StorefrontID: "143441",
			TransactionReason: "RENEWAL", Price: appstore.Int(price), Currency: "USD",
			AppTransactionID: fmt.Sprint(7000000000000000 + i),
		}
		if k == 0 {
			tp.TransactionReason = "PURCHASE"
			if p.months == 1 && mix(o.Seed, i, 14)%10 < 3 {
				tp.OfferType, tp.OfferDiscountType, tp.OfferPeriod, tp.Price = 1, "FREE_TRIAL", "P1M", 0
			}
		}
		var revReason any
		if p.class == classRevoked && k == p.n-1 {
			reason := appstore.Int(mix(o.Seed, i, 15) % 2)
			tp.RevocationDate, tp.RevocationReason, tp.RevocationType = ms(p.revokedAt), &reason, "REFUND_FULL"
			revReason = int64(reason)
		}
		jws, err := b.sign(c, tp)
		if err != nil {
			return err
		}
		txJWS[k] = jws
		b.add(c, "transactions", []any{tp.TransactionID, p.otid, p.env, p.product, GroupID, tp.Type,
			tp.PurchaseDate.Time(), tp.OriginalPurchaseDate.Time(), tp.ExpiresDate.Time(), token, tp.InAppOwnershipType,
			nullTime(p.revokedAt), revReason, tp.RevocationType, false, int64(tp.OfferType), "",
			tp.TransactionReason, tp.WebOrderLineItemID, int64(tp.Price), "USD", "USA", int64(tp.SignedDate),
			createdAt, createdAt}, jws)
	}
	// Renewal info.
	latest := p.n - 1
	rp := appstore.RenewalInfoPayload{OriginalTransactionID: p.otid, AutoRenewProductID: p.product, ProductID: p.product,
		IsInBillingRetryPeriod: p.class == classBillingRetry || p.class == classGrace, SignedDate: ms(p.riSigned),
		Environment: env, RecentSubscriptionStartDate: ms(p.start), AppAccountToken: p.token, Currency: "USD",
		RenewalPrice: appstore.Int(price), GracePeriodExpiresDate: ms(p.graceUntil), ExpirationIntent: appstore.Int(p.intent),
		AppTransactionID: fmt.Sprint(7000000000000000 + i)}
	if p.graceUntil.IsZero() {
		rp.GracePeriodExpiresDate = 0
	}
	if p.autoRenew() {
		rp.AutoRenewStatus, rp.RenewalDate = 1, ms(p.expires(latest))
	}
	riJWS, err := b.sign(c, rp)
	if err != nil {
		return err
	}
	b.add(c, "renewal_infos", []any{p.otid, p.env, p.autoRenew(), p.product, p.product, int64(p.intent),
		rp.IsInBillingRetryPeriod, nullTime(p.graceUntil), nullMillis(rp.RenewalDate), token,
		int64(rp.SignedDate), createdAt}, riJWS)

	// Notifications: the last two purchases (the revoked one's refund
	// replaces its renewal), then the one that ended or changed it.
	type note struct {
		typ, sub string
		k        int
		at       time.Time
		status   int
	}
	var notes []note
	for k := max(0, p.n-2); k < p.n; k++ {
		if p.class == classRevoked && k == latest {
			continue
		}
		typ, sub := "DID_RENEW", ""
		if k == 0 {
			typ, sub = "SUBSCRIBED", "INITIAL_BUY"
		}
		notes = append(notes, note{typ, sub, k, p.purchase(k).Add(2500 * time.Millisecond), 1})
	}
	switch p.class {
	case classExpired:
		sub := "VOLUNTARY"
		if p.intent == 2 {
			sub = "BILLING_RETRY"
		}
		notes = append(notes, note{"EXPIRED", sub, latest, p.riSigned, 2})
	case classBillingRetry:
		notes = append(notes, note{"DID_FAIL_TO_RENEW", "", latest, p.riSigned, 3})
	case classGrace:
		notes = append(notes, note{"DID_FAIL_TO_RENEW", "GRACE_PERIOD", latest, p.riSigned, 4})
	case classRevoked:
		notes = append(notes, note{"REFUND", "", latest, p.riSigned, 5})
	case classAutoRenewOff:
		notes = append(notes, note{"DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_DISABLED", latest, p.riSigned, 1})
	}
	var lastNote string
	for j, n := range notes {
		id := notificationUUID(o.Seed, i, j)
		np := appstore.NotificationPayload{NotificationType: n.typ, Subtype: n.sub, NotificationUUID: id,
			Version: "2.0", SignedDate: ms(n.at), Data: &appstore.NotificationData{AppAppleID: appstore.Int(o.AppAppleID),
				BundleID: o.BundleID, BundleVersion: "1", Environment: env, SignedTransactionInfo: txJWS[n.k],
				SignedRenewalInfo: riJWS, Status: appstore.Int(n.status)}}
		jws, err := b.sign(c, np)
		if err != nil {
			return err
		}
		received := n.at.Add(time.Second)
		b.add(c, "notifications", []any{id, n.typ, n.sub, p.env, int64(np.SignedDate), p.otid, transactionID(i, n.k),
			"webhook", received, received.Add(80 * time.Millisecond)}, jws)
		lastNote = id
	}

	// The subscription, as the ledger projects it from those facts.
	status := p.status()
	autoRenew := p.autoRenew()
	checked := nullTime(p.checkedAt)
	b.add(c, "subscriptions", []any{p.otid, p.env, token, customerID, p.product, GroupID, int16(status),
		p.statusSigned().UnixMilli(), int16(status), p.expires(latest), p.purchase(latest),
		nullTime(p.revokedAt), autoRenew, p.product, rp.IsInBillingRetryPeriod,
		nullTime(p.graceUntil), transactionID(i, latest), int32(p.n), p.lastSigned().UnixMilli(),
		p.lastSigned(), checked, createdAt, p.lastSigned()}, "")

	// The change feed: the subscription's creation in its current state
	// (the history before it predates the feed), then its grants.
	expires := p.expires(latest).UTC()
	state := ledger.EventState{OriginalTransactionID: p.otid, AppAccountToken: p.token, Environment: p.env,
		ProductID: p.product, Status: ledger.StatusName(status), ExpiresDate: &expires, AutoRenewStatus: &autoRenew,
		AutoRenewProductID: p.product, Entitlements: []string{}}
	if p.customer >= 0 {
		state.CustomerID = CustomerID(p.customer)
	}
	if o.Rules != nil && (status == 1 || status == 4) {
		if g := o.Rules.Grants(p.product, p.env); g != nil {
			state.Entitlements = g
		}
	}
	after, err := json.Marshal(state)
	if err != nil {
		return err
	}
	var causeRun, causeNote any
	if imported {
		causeRun = b.importRun
	} else {
		causeNote = lastNote
	}
	evID := int64(i)*eventsPerSubscription + 1
	signed := p.lastSigned().UnixMilli()
	b.add(c, "subscription_events", []any{evID, evID, p.otid, customerID, ledger.EventSubscriptionCreated, "",
		nil, after, causeNote, causeRun, signed, createdAt}, "")
	for j, e := range state.Entitlements {
		if j >= eventsPerSubscription-1 {
			break
		}
		id := evID + int64(j) + 1
		b.add(c, "subscription_events", []any{id, id, p.otid, customerID, ledger.EventEntitlementGranted, e,
			nil, after, causeNote, causeRun, signed, createdAt}, "")
	}

	if imported {
		b.add(c, "import_rows", []any{p.otid, b.importRun, token, customerID, "done",
			createdAt, b.importAt, createdAt}, "")
	}
	return nil
}
