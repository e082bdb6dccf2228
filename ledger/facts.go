package ledger

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/storesync/storesync/appstore"
)

// SignedTransaction is a verified transaction payload and the JWS it came in.
type SignedTransaction struct {
	Payload *appstore.TransactionPayload
	JWS     string
}

// SignedRenewalInfo is a verified renewal-info payload and its JWS.
type SignedRenewalInfo struct {
	Payload *appstore.RenewalInfoPayload
	JWS     string
}

// StatusObservation is Apple's statement of a subscription's status (1–5)
// as of SignedDate: an item of Get All Subscription Statuses, or the
// data.status of a notification.
type StatusObservation struct {
	OriginalTransactionID string
	Status                int
	SignedDate            appstore.Millis
}

// Facts is a set of Apple's signed facts to apply together.
type Facts struct {
	Transactions []SignedTransaction
	RenewalInfos []SignedRenewalInfo
	Statuses     []StatusObservation
}

// IsEmpty reports whether f holds nothing.
func (f *Facts) IsEmpty() bool {
	return len(f.Transactions) == 0 && len(f.RenewalInfos) == 0 && len(f.Statuses) == 0
}

// Add appends g's facts to f.
func (f *Facts) Add(g Facts) {
	f.Transactions = append(f.Transactions, g.Transactions...)
	f.RenewalInfos = append(f.RenewalInfos, g.RenewalInfos...)
	f.Statuses = append(f.Statuses, g.Statuses...)
}

// Change is one subscription touched by Apply, before and after. Before is
// nil when the ledger did not know the subscription.
type Change struct {
	Before *Subscription
	After  *Subscription
}

// Changed reports whether the ledger's view of the subscription moved.
func (c Change) Changed() bool {
	return c.Before == nil || !c.Before.SameState(c.After)
}

// Apply stores facts in one database transaction and recomputes every
// subscription they touch. Transactions that are not an auto-renewable
// subscription's (IsSubscriptionTransaction) are stored but neither create
// nor change a subscription, and status observations about their
// originalTransactionId are dropped. It is idempotent and order-independent: a
// transaction is replaced only by a version Apple signed later, renewal info
// and status likewise, and every subscription column is a function of the
// stored facts. Concurrent Apply calls on the same subscriptions serialise on
// the subscription rows (locked in id order, so they cannot deadlock).
//
// On a pool-backed ledger Apply begins and commits its own transaction. On a
// WithTx ledger it runs in the caller's transaction, adding no savepoint: the
// facts commit with the rest of it, and the locks are held until then. Facts
// that touch no subscription store nothing and return no changes.
func (l *Ledger) Apply(ctx context.Context, facts Facts) ([]Change, error) {
	var changes []Change
	err := l.inTx(ctx, func(l *Ledger) error {
		var err error
		changes, err = l.apply(ctx, facts)
		return err
	})
	return changes, err
}

// apply is Apply on a ledger that runs in a transaction (l.db is a pgx.Tx).
func (l *Ledger) apply(ctx context.Context, facts Facts) ([]Change, error) {
	ids, others, err := factIDs(facts)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 && len(others) == 0 {
		return nil, nil
	}
	before, err := l.createAndLock(ctx, ids)
	if err != nil {
		return nil, err
	}

	batch := &pgx.Batch{}
	// Chains first: the rows compacted below name them.
	var chains chainSet
	txs := make([]storedJWS, len(facts.Transactions))
	for i, t := range facts.Transactions {
		txs[i] = compactForStorage(t.JWS)
		chains.add(txs[i].chainSHA, txs[i].chain)
	}
	ris := make([]storedJWS, len(facts.RenewalInfos))
	for i, r := range facts.RenewalInfos {
		ris[i] = compactForStorage(r.JWS)
		chains.add(ris[i].chainSHA, ris[i].chain)
	}
	if len(chains.sha) > 0 {
		batch.Queue(insertChainsSQL, chains.sha, chains.chain)
	}
	for i, t := range facts.Transactions {
		queueTransaction(batch, t, txs[i])
	}
	for i, r := range facts.RenewalInfos {
		queueRenewalInfo(batch, r, ris[i])
	}
	for _, s := range facts.Statuses {
		if _, ok := others[s.OriginalTransactionID]; ok {
			continue // not a subscription: Apple states no status of it
		}
		batch.Queue(`UPDATE subscriptions SET observed_status = $2, status_signed_date = $3
			WHERE original_transaction_id = $1 AND ($3::bigint, $2::smallint) > (status_signed_date, observed_status)`,
			s.OriginalTransactionID, s.Status, int64(s.SignedDate))
	}
	batch.Queue(projectSQL, ids)
	// The subscriptions as projected, read in the same round trip.
	var after []*Subscription
	batch.Queue(subscriptionSelect+` WHERE s.original_transaction_id = ANY($1)
		ORDER BY s.original_transaction_id`, ids).Query(func(rows pgx.Rows) error {
		var err error
		after, err = collectSubscriptions(rows)
		return err
	})
	batch.Queue(defaultPlansSQL)
	if err := l.db.SendBatch(ctx, batch).Close(); err != nil {
		return nil, fmt.Errorf("ledger: applying facts: %w", err)
	}
	byID := make(map[string]*Subscription, len(before))
	for _, s := range before {
		// A row created by this Apply has no facts yet: treat it as unknown.
		if s.TransactionCount > 0 || s.LastSignedDate != nil {
			byID[s.OriginalTransactionID] = s
		}
	}
	changes := make([]Change, 0, len(after))
	for _, a := range after {
		changes = append(changes, Change{Before: byID[a.OriginalTransactionID], After: a})
	}
	if err := l.recordChanges(ctx, changes); err != nil { // the change feed, same transaction
		return nil, err
	}
	return changes, nil
}

// Apply's statements run on generic plans (genericPlansSQL, from
// createAndLock until the facts' batch ends with defaultPlansSQL). Each
// looks up a few subscriptions by originalTransactionId (= ANY($1)), and
// Postgres otherwise plans them again at every execution: it keeps custom
// plans because a generic plan's estimate for an array of unknown length
// looks dearer than a plan for the one id given. Planning projectSQL took
// about 0.5 ms of Postgres CPU per Apply, more than running it, and the
// two subscription reads 0.1 ms each; the generic plan is the same index
// nested loop per subscription, and no slower for thousands of ids. Only
// the plan changes, never a result. SET LOCAL lasts until the transaction
// ends, so the default is set back at the end for the caller's own
// statements (the caller's transaction may go on: WithTx); an error
// aborts the transaction, which discards the setting with it.
const (
	genericPlansSQL = `SET LOCAL plan_cache_mode = force_generic_plan`
	defaultPlansSQL = `SET LOCAL plan_cache_mode TO DEFAULT`
)

// createAndLock creates the subscriptions ids that do not exist yet and
// returns all of them as they are, locked (in id order, so that
// concurrent Applies cannot deadlock) until the transaction ends. The
// statements (with genericPlansSQL first) go in one round trip.
func (l *Ledger) createAndLock(ctx context.Context, ids []string) ([]*Subscription, error) {
	batch := &pgx.Batch{}
	batch.Queue(genericPlansSQL)
	if len(ids) > 0 {
		batch.Queue(`INSERT INTO subscriptions (original_transaction_id)
		SELECT id FROM unnest($1::text[]) AS id ORDER BY id ON CONFLICT DO NOTHING`, ids)
	}
	batch.Queue(subscriptionSelect+` WHERE s.original_transaction_id = ANY($1)
		ORDER BY s.original_transaction_id FOR UPDATE OF s`, ids)
	br := l.db.SendBatch(ctx, batch)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, fmt.Errorf("ledger: applying facts: %w", err)
	}
	if len(ids) > 0 {
		if _, err := br.Exec(); err != nil {
			return nil, fmt.Errorf("ledger: creating subscriptions: %w", err)
		}
	}
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("ledger: locking subscriptions: %w", err)
	}
	before, err := collectSubscriptions(rows)
	if err != nil {
		return nil, err
	}
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("ledger: locking subscriptions: %w", err)
	}
	return before, nil
}

// factIDs returns the sorted, distinct subscriptions facts touch, the
// originalTransactionIds known only from transactions that are not a
// subscription's (others: stored, never made subscriptions), and rejects
// facts that cannot be keyed.
func factIDs(f Facts) (ids []string, others map[string]struct{}, err error) {
	set := map[string]struct{}{}
	others = map[string]struct{}{}
	for i, t := range f.Transactions {
		if t.Payload == nil || t.Payload.TransactionID == "" || t.Payload.OriginalTransactionID == "" {
			return nil, nil, fmt.Errorf("ledger: transaction %d has no transactionId or originalTransactionId", i)
		}
		if t.JWS == "" {
			return nil, nil, fmt.Errorf("ledger: transaction %s has no signed JWS to keep", t.Payload.TransactionID)
		}
		if IsSubscriptionTransaction(t.Payload) {
			set[t.Payload.OriginalTransactionID] = struct{}{}
		} else {
			others[t.Payload.OriginalTransactionID] = struct{}{}
		}
	}
	for i, r := range f.RenewalInfos {
		if r.Payload == nil || r.Payload.OriginalTransactionID == "" || r.JWS == "" {
			return nil, nil, fmt.Errorf("ledger: renewal info %d has no originalTransactionId or JWS", i)
		}
		// Only auto-renewable subscriptions have renewal info.
		set[r.Payload.OriginalTransactionID] = struct{}{}
	}
	for id := range set {
		delete(others, id)
	}
	for i, s := range f.Statuses {
		if s.OriginalTransactionID == "" || s.Status < 1 || s.Status > 5 {
			return nil, nil, fmt.Errorf("ledger: status observation %d: want an originalTransactionId and a status 1–5, got %q/%d", i, s.OriginalTransactionID, s.Status)
		}
		if _, ok := others[s.OriginalTransactionID]; !ok {
			set[s.OriginalTransactionID] = struct{}{}
		}
	}
	ids = make([]string, 0, len(set))
	for id := range set {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids, others, nil
}

func queueTransaction(b *pgx.Batch, t SignedTransaction, stored storedJWS) {
	p := t.Payload
	var revReason *int64
	if p.RevocationReason != nil {
		v := int64(*p.RevocationReason)
		revReason = &v
	}
	// A transaction is replaced only by a version signed later (ties broken
	// by Apple's JWS text, rebuilt, so that any order and any stored form
	// end the same). The same stored form again (a redelivery, the most
	// common tie) is settled without the rebuild: Postgres runs the cheap
	// comparison before the costly function. The new version's text is
	// rebuilt in SQL too, from its row (its chain is stored earlier in the
	// same batch), rather than sent as one more parameter: that is 5 KB
	// more to encode and send with every write, for a rare tie.
	b.Queue(`INSERT INTO transactions (transaction_id, original_transaction_id, environment, product_id,
			subscription_group_identifier, type, purchase_date, original_purchase_date, expires_date,
			app_account_token, in_app_ownership_type, revocation_date, revocation_reason, revocation_type,
			is_upgraded, offer_type, offer_identifier, transaction_reason, web_order_line_item_id, price,
			currency, storefront, signed_date, jws, jws_chain)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23,$24,$25)
		ON CONFLICT (transaction_id) DO UPDATE SET
			environment = excluded.environment, product_id = excluded.product_id,
			subscription_group_identifier = excluded.subscription_group_identifier, type = excluded.type,
			purchase_date = excluded.purchase_date, original_purchase_date = excluded.original_purchase_date,
			expires_date = excluded.expires_date, app_account_token = excluded.app_account_token,
			in_app_ownership_type = excluded.in_app_ownership_type, revocation_date = excluded.revocation_date,
			revocation_reason = excluded.revocation_reason, revocation_type = excluded.revocation_type,
			is_upgraded = excluded.is_upgraded, offer_type = excluded.offer_type,
			offer_identifier = excluded.offer_identifier, transaction_reason = excluded.transaction_reason,
			web_order_line_item_id = excluded.web_order_line_item_id, price = excluded.price,
			currency = excluded.currency, storefront = excluded.storefront,
			signed_date = excluded.signed_date, jws = excluded.jws, jws_chain = excluded.jws_chain, updated_at = now()
		WHERE excluded.signed_date > transactions.signed_date OR (excluded.signed_date = transactions.signed_date
			AND (excluded.jws, excluded.jws_chain) IS DISTINCT FROM (transactions.jws, transactions.jws_chain)
			AND storesync_jws(excluded.jws, excluded.jws_chain) > storesync_jws(transactions.jws, transactions.jws_chain))`,
		p.TransactionID, p.OriginalTransactionID, string(p.Environment), p.ProductID,
		p.SubscriptionGroupIdentifier, p.Type, timeOrNil(p.PurchaseDate), timeOrNil(p.OriginalPurchaseDate),
		timeOrNil(p.ExpiresDate), uuidOrNil(p.AppAccountToken), p.InAppOwnershipType, timeOrNil(p.RevocationDate),
		revReason, p.RevocationType, p.IsUpgraded, int64(p.OfferType), p.OfferIdentifier, p.TransactionReason,
		p.WebOrderLineItemID, int64(p.Price), p.Currency, p.Storefront, int64(p.SignedDate), stored.jws, stored.chainSHA)
}

func queueRenewalInfo(b *pgx.Batch, r SignedRenewalInfo, stored storedJWS) {
	p := r.Payload
	b.Queue(`INSERT INTO renewal_infos (original_transaction_id, environment, auto_renew_status,
			auto_renew_product_id, product_id, expiration_intent, is_in_billing_retry_period,
			grace_period_expires_date, renewal_date, app_account_token, signed_date, jws, jws_chain)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)
		ON CONFLICT (original_transaction_id) DO UPDATE SET
			environment = excluded.environment, auto_renew_status = excluded.auto_renew_status,
			auto_renew_product_id = excluded.auto_renew_product_id, product_id = excluded.product_id,
			expiration_intent = excluded.expiration_intent,
			is_in_billing_retry_period = excluded.is_in_billing_retry_period,
			grace_period_expires_date = excluded.grace_period_expires_date,
			renewal_date = excluded.renewal_date, app_account_token = excluded.app_account_token,
			signed_date = excluded.signed_date, jws = excluded.jws, jws_chain = excluded.jws_chain, updated_at = now()
		WHERE excluded.signed_date > renewal_infos.signed_date OR (excluded.signed_date = renewal_infos.signed_date
			AND (excluded.jws, excluded.jws_chain) IS DISTINCT FROM (renewal_infos.jws, renewal_infos.jws_chain)
			AND storesync_jws(excluded.jws, excluded.jws_chain) > storesync_jws(renewal_infos.jws, renewal_infos.jws_chain))`,
		p.OriginalTransactionID, string(p.Environment), p.AutoRenewStatus == 1, p.AutoRenewProductID,
		p.ProductID, int64(p.ExpirationIntent), p.IsInBillingRetryPeriod, timeOrNil(p.GracePeriodExpiresDate),
		timeOrNil(p.RenewalDate), uuidOrNil(p.AppAccountToken), int64(p.SignedDate), stored.jws, stored.chainSHA)
}

// projectSQL recomputes every derived column of the given subscriptions from
// the stored facts, reading only subscription transactions (type
// 'Auto-Renewable Subscription', or none: see IsSubscriptionTransaction), so
// another product's transaction can never become a subscription's latest.
// The latest transaction is the one purchased last (ties:
// the longer, then greater, transaction id — ids are decimal strings);
// status is Apple's latest statement, or, when Apple never stated one,
// derived from the latest transaction as of the newest signed fact.
//
// The appAccountToken is that of the fact Apple signed last among the
// stored transactions and renewal info that carry one (ties: the greater
// token, so any order ends the same). Why by signedDate and not the latest
// purchase: Set App Account Token changes the token of a subscription
// without a purchase, and only what Apple signs afterwards (renewal info,
// re-signed transactions) shows it. Apple never clears a token, so a fact
// without one (family sharing, renewal info of older API versions) is no
// statement about it.
const projectSQL = `
UPDATE subscriptions s SET
	environment = COALESCE(lt.environment, ri.environment, s.environment),
	product_id = COALESCE(lt.product_id, ri.product_id, ''),
	subscription_group_identifier = COALESCE(lt.subscription_group_identifier, ''),
	expires_date = lt.expires_date,
	purchase_date = lt.purchase_date,
	revocation_date = lt.revocation_date,
	latest_transaction_id = COALESCE(lt.transaction_id, ''),
	transaction_count = agg.n,
	app_account_token = tok.app_account_token,
	auto_renew_status = ri.auto_renew_status,
	auto_renew_product_id = COALESCE(ri.auto_renew_product_id, ''),
	is_in_billing_retry = COALESCE(ri.is_in_billing_retry_period, false),
	grace_period_expires_date = ri.grace_period_expires_date,
	last_signed_date = sig.last,
	status = CASE
		WHEN s.observed_status <> 0 THEN s.observed_status
		WHEN lt.transaction_id IS NULL THEN 0
		WHEN lt.revocation_date IS NOT NULL THEN 5
		WHEN lt.expires_date IS NULL OR lt.expires_date > to_timestamp(sig.last / 1000.0) THEN 1
		ELSE 2 END,
	updated_at = now()
FROM subscriptions s0
LEFT JOIN LATERAL (
	SELECT t.* FROM transactions t WHERE t.original_transaction_id = s0.original_transaction_id
		AND t.type IN ('Auto-Renewable Subscription', '')
	ORDER BY t.purchase_date DESC NULLS LAST, length(t.transaction_id) DESC, t.transaction_id DESC LIMIT 1
) lt ON true
LEFT JOIN LATERAL (
	SELECT count(*)::int AS n, COALESCE(max(t.signed_date), 0) AS max_signed
	FROM transactions t WHERE t.original_transaction_id = s0.original_transaction_id
		AND t.type IN ('Auto-Renewable Subscription', '')
) agg ON true
LEFT JOIN renewal_infos ri ON ri.original_transaction_id = s0.original_transaction_id
LEFT JOIN LATERAL (
	SELECT f.app_account_token FROM (
		SELECT t.app_account_token, t.signed_date FROM transactions t
		WHERE t.original_transaction_id = s0.original_transaction_id AND t.app_account_token IS NOT NULL
			AND t.type IN ('Auto-Renewable Subscription', '')
		UNION ALL
		SELECT ri.app_account_token, ri.signed_date WHERE ri.app_account_token IS NOT NULL
	) f
	ORDER BY f.signed_date DESC, f.app_account_token DESC LIMIT 1
) tok ON true
CROSS JOIN LATERAL (
	SELECT GREATEST(s0.status_signed_date, agg.max_signed, COALESCE(ri.signed_date, 0)) AS last
) sig
WHERE s.original_transaction_id = s0.original_transaction_id
  AND s0.original_transaction_id = ANY($1)`

func timeOrNil(m appstore.Millis) any {
	if m == 0 {
		return nil
	}
	return m.Time()
}

func uuidOrNil(s string) any {
	s = strings.TrimSpace(s)
	if !isUUID(s) {
		return nil
	}
	return s
}

// isUUID reports whether s is a UUID in its canonical textual form.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// IsUUID reports whether s is a UUID (8-4-4-4-12 hex digits).
func IsUUID(s string) bool { return isUUID(s) }
