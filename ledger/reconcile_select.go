package ledger

import (
	"context"
	"fmt"
	"math"
	"time"
)

// CheckReason says why reconciliation checks a subscription with Apple.
type CheckReason string

// Reasons, in the order reconciliation works them. The targeted ones are
// subscriptions whose state is due to change or uncertain; ReasonRolling is
// everything else, least recently checked first, as far as the call cap
// allows (at least a 1/full-cycle slice when the cap can afford it).
const (
	// ReasonDue: the ledger says active but expiresDate has passed, with
	// no renewal or expiry seen.
	ReasonDue CheckReason = "due"
	// ReasonBillingRetry and ReasonGracePeriod: Apple is still trying to
	// bill; the outcome comes without a guarantee that we hear of it.
	ReasonBillingRetry CheckReason = "billing_retry"
	ReasonGracePeriod  CheckReason = "grace_period"
	// ReasonRefunded: revoked lately; a refund may be reversed.
	ReasonRefunded CheckReason = "refunded"
	// ReasonConflict: an import row disagreed with Apple lately.
	ReasonConflict CheckReason = "conflict"
	// ReasonRolling: the least recently checked of all the others.
	ReasonRolling CheckReason = "rolling"
)

// TargetedReasons lists the targeted reasons in the order they are worked.
var TargetedReasons = []CheckReason{ReasonDue, ReasonBillingRetry, ReasonGracePeriod, ReasonRefunded, ReasonConflict}

// CheckReasons lists every reason, targeted first.
var CheckReasons = append(append([]CheckReason(nil), TargetedReasons...), ReasonRolling)

// CheckCandidate is one subscription chosen for a check.
type CheckCandidate struct {
	OriginalTransactionID string
	// Environment is where the ledger last saw the subscription ("" when
	// never synced): the check asks that environment first.
	Environment string
	// Account groups candidates the ledger links to one customer (Apple's
	// appAccountToken, else the company's customer id; "" when neither is
	// known): one statuses answer covers an Apple account, so checking them
	// one after the other saves the calls a sibling's answer makes moot.
	Account string
	Reason  CheckReason
}

// SelectCursor is where a selection stopped. The zero value starts at the
// beginning. It is JSON so a run can keep it in reconcile_runs between
// slices.
//
// Every selection walks an index in (key, originalTransactionId) order, key
// being a nullable timestamp taken NULLS FIRST: PastNulls false means the
// walk is still among rows whose key is NULL (ordered by ID alone).
type SelectCursor struct {
	Reason    CheckReason `json:"reason,omitempty"`
	PastNulls bool        `json:"pastNulls,omitempty"`
	Key       *time.Time  `json:"key,omitempty"`
	ID        string      `json:"id,omitempty"`
}

// SelectWindow fixes the times a run's selection depends on.
type SelectWindow struct {
	// AsOf is Apple's now at the run's start: an active subscription whose
	// expiresDate is before AsOf is due.
	AsOf time.Time
	// RunStart is the run's start on the database clock: a subscription
	// whose last_checked_at is at or after it was already checked by this
	// run and is skipped.
	RunStart time.Time
	// RefundsSince and ConflictsSince bound "recent" refunds and conflicts.
	RefundsSince   time.Time
	ConflictsSince time.Time
}

// keyedSource is one index walk: rows of subscriptions s matching where,
// ordered by (key NULLS FIRST, original_transaction_id).
type keyedSource struct {
	where string // uses $1 = AsOf, $2 = RunStart, $3 = the reason's "since"
	key   string // a nullable timestamptz column of s
	// keyNeverNull skips the NULL phase (where excludes NULL keys).
	keyNeverNull bool
	// bound is an extra condition of the non-NULL phase that ends the index
	// range (rather than filtering rows after it).
	bound string
	// nullsFirst says the key's index keeps NULLs first, so ORDER BY must
	// say so to walk the index rather than sort.
	nullsFirst bool
}

// notCheckedThisRun is part of every selection: a subscription another
// check of the same run already covered (one statuses call answers for
// every subscription of an account) is not checked again.
const notCheckedThisRun = `(s.last_checked_at IS NULL OR s.last_checked_at < $2)`

// accountKey is CheckCandidate.Account.
const accountKey = `COALESCE(s.app_account_token::text, 'customer:' || s.customer_id, '')`

// typedParams names the types of $1..$3, which not every source's
// condition uses (Postgres must know every parameter's type). A constant
// condition, it does not change the plan.
const typedParams = `$1::timestamptz IS NOT NULL AND $2::timestamptz IS NOT NULL AND $3::timestamptz IS NOT NULL`

var keyedSources = map[CheckReason]keyedSource{
	// subscriptions_status_expires (status, expires_date).
	ReasonDue:          {where: `s.status = 1 AND s.expires_date < $1`, key: "s.expires_date", keyNeverNull: true},
	ReasonBillingRetry: {where: `s.status = 3`, key: "s.expires_date"},
	ReasonGracePeriod:  {where: `s.status = 4`, key: "s.expires_date"},
	// subscriptions_revoked (revocation_date, id) WHERE revocation_date IS NOT NULL.
	ReasonRefunded: {where: `s.revocation_date IS NOT NULL AND s.revocation_date >= $3`, key: "s.revocation_date", keyNeverNull: true},
	// subscriptions_last_checked (last_checked_at NULLS FIRST, id).
	// The rolling walk ends where this run's own checks begin.
	ReasonRolling: {where: `true`, key: "s.last_checked_at", bound: `s.last_checked_at < $2`, nullsFirst: true},
}

func (s keyedSource) order() string {
	if s.nullsFirst {
		return s.key + " NULLS FIRST"
	}
	return s.key
}

func (w SelectWindow) since(r CheckReason) time.Time {
	if r == ReasonConflict {
		return w.ConflictsSince
	}
	return w.RefundsSince
}

// SelectTargeted returns up to limit subscriptions due a targeted check,
// reason by reason in TargetedReasons order, after cursor, and the cursor to
// continue from. done reports that every targeted reason is exhausted.
// Subscriptions already checked since w.RunStart are skipped. Each reason is
// one index range scan; nothing is scanned in Go.
func (l *Ledger) SelectTargeted(ctx context.Context, w SelectWindow, cursor SelectCursor, limit int) ([]CheckCandidate, SelectCursor, bool, error) {
	if limit <= 0 {
		return nil, cursor, false, fmt.Errorf("ledger: SelectTargeted: limit %d must be positive", limit)
	}
	i := 0
	if cursor.Reason != "" {
		i = reasonIndex(cursor.Reason)
		if i < 0 {
			return nil, cursor, false, fmt.Errorf("ledger: SelectTargeted: cursor reason %q is not a targeted reason", cursor.Reason)
		}
	} else {
		cursor.Reason = TargetedReasons[0]
	}
	var out []CheckCandidate
	for len(out) < limit {
		var page []CheckCandidate
		var next SelectCursor
		var exhausted bool
		var err error
		if cursor.Reason == ReasonConflict {
			page, next, exhausted, err = selectConflicts(ctx, l.db, w, cursor, limit-len(out))
		} else {
			page, next, exhausted, err = selectKeyed(ctx, l.db, w, keyedSources[cursor.Reason], cursor, limit-len(out))
		}
		if err != nil {
			return nil, cursor, false, fmt.Errorf("ledger: selecting %s subscriptions: %w", cursor.Reason, err)
		}
		out = append(out, page...)
		cursor = next
		if !exhausted {
			continue
		}
		i++
		if i >= len(TargetedReasons) {
			return out, cursor, true, nil
		}
		cursor = SelectCursor{Reason: TargetedReasons[i]}
	}
	return out, cursor, false, nil
}

// SelectRolling returns up to limit subscriptions in least-recently-checked
// order (never checked first) after cursor, skipping those already checked
// since w.RunStart, and the cursor to continue from; done reports that the
// walk reached the subscriptions this run checked. One range scan of
// subscriptions_last_checked.
func (l *Ledger) SelectRolling(ctx context.Context, w SelectWindow, cursor SelectCursor, limit int) ([]CheckCandidate, SelectCursor, bool, error) {
	if limit <= 0 {
		return nil, cursor, false, fmt.Errorf("ledger: SelectRolling: limit %d must be positive", limit)
	}
	cursor.Reason = ReasonRolling
	page, next, done, err := selectKeyed(ctx, l.db, w, keyedSources[ReasonRolling], cursor, limit)
	if err != nil {
		return nil, cursor, false, fmt.Errorf("ledger: selecting the rolling slice: %w", err)
	}
	return page, next, done, nil
}

// selectKeyed walks src after cursor: first the rows whose key is NULL (by
// id), then the others by (key, id). exhausted reports that fewer than limit
// rows were left.
func selectKeyed(ctx context.Context, q Querier, w SelectWindow, src keyedSource, cursor SelectCursor, limit int) ([]CheckCandidate, SelectCursor, bool, error) {
	var out []CheckCandidate
	if !cursor.PastNulls && !src.keyNeverNull {
		sql := `SELECT s.original_transaction_id, s.environment, ` + accountKey + `, NULL::timestamptz FROM subscriptions s
			WHERE (` + src.where + `) AND ` + src.key + ` IS NULL AND s.original_transaction_id > $4
			AND ` + notCheckedThisRun + ` AND ` + typedParams + `
			ORDER BY ` + src.order() + `, s.original_transaction_id LIMIT $5`
		page, last, err := queryCandidates(ctx, q, sql, cursor.Reason, w.AsOf, w.RunStart, w.since(cursor.Reason), cursor.ID, limit)
		if err != nil {
			return nil, cursor, false, err
		}
		out = append(out, page...)
		if len(page) > 0 {
			cursor.ID = last.ID
		}
		if len(out) >= limit {
			return out, cursor, false, nil
		}
	}
	if !cursor.PastNulls {
		cursor = SelectCursor{Reason: cursor.Reason, PastNulls: true}
	}
	args := []any{w.AsOf, w.RunStart, w.since(cursor.Reason), limit - len(out)}
	after := ""
	if src.bound != "" {
		after = " AND " + src.bound
	}
	if cursor.Key != nil {
		after += ` AND (` + src.key + `, s.original_transaction_id) > ($5, $6)`
		args = append(args, *cursor.Key, cursor.ID)
	}
	sql := `SELECT s.original_transaction_id, s.environment, ` + accountKey + `, ` + src.key + ` FROM subscriptions s
		WHERE (` + src.where + `) AND ` + src.key + ` IS NOT NULL` + after + `
		AND ` + notCheckedThisRun + ` AND ` + typedParams + `
		ORDER BY ` + src.order() + `, s.original_transaction_id LIMIT $4`
	page, last, err := queryCandidates(ctx, q, sql, cursor.Reason, args...)
	if err != nil {
		return nil, cursor, false, err
	}
	out = append(out, page...)
	if len(page) > 0 {
		cursor.Key, cursor.ID = last.Key, last.ID
	}
	return out, cursor, len(out) < limit, nil
}

// selectConflicts walks the subscriptions with a conflict found since
// w.ConflictsSince, by id.
func selectConflicts(ctx context.Context, q Querier, w SelectWindow, cursor SelectCursor, limit int) ([]CheckCandidate, SelectCursor, bool, error) {
	sql := `SELECT s.original_transaction_id, s.environment, ` + accountKey + `, NULL::timestamptz FROM subscriptions s
		WHERE s.original_transaction_id IN (
			SELECT DISTINCT c.original_transaction_id FROM conflicts c
			WHERE c.found_at >= $3 AND c.original_transaction_id > $4)
		AND ` + notCheckedThisRun + ` AND ` + typedParams + `
		ORDER BY s.original_transaction_id LIMIT $5`
	page, last, err := queryCandidates(ctx, q, sql, ReasonConflict, w.AsOf, w.RunStart, w.ConflictsSince, cursor.ID, limit)
	if err != nil {
		return nil, cursor, false, err
	}
	if len(page) > 0 {
		cursor.ID = last.ID
	}
	cursor.PastNulls = true
	return page, cursor, len(page) < limit, nil
}

func queryCandidates(ctx context.Context, q Querier, sql string, reason CheckReason, args ...any) ([]CheckCandidate, SelectCursor, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, SelectCursor{}, err
	}
	defer rows.Close()
	var out []CheckCandidate
	var last SelectCursor
	for rows.Next() {
		var c CheckCandidate
		var key *time.Time
		if err := rows.Scan(&c.OriginalTransactionID, &c.Environment, &c.Account, &key); err != nil {
			return nil, SelectCursor{}, err
		}
		c.Reason = reason
		out = append(out, c)
		last.ID, last.Key = c.OriginalTransactionID, key
	}
	return out, last, rows.Err()
}

func reasonIndex(r CheckReason) int {
	for i, t := range TargetedReasons {
		if t == r {
			return i
		}
	}
	return -1
}

// RollingSliceSize is the least one daily run must check from the rolling
// walk so that each of total is checked at least once per cycle when the
// call cap binds (a run checks more when the cap allows): ceil(total / (cycle / 24h)), and all of them when the cycle is a
// day or shorter. cycle <= 0 means one day.
func RollingSliceSize(total int64, cycle time.Duration) int64 {
	if total <= 0 {
		return 0
	}
	days := cycle.Hours() / 24
	if days <= 1 {
		return total
	}
	return int64(math.Ceil(float64(total) / days))
}

// CountSubscriptions returns how many subscriptions the ledger holds (an
// index-only count of the primary key).
func (l *Ledger) CountSubscriptions(ctx context.Context) (int64, error) {
	var n int64
	err := l.db.QueryRow(ctx, "SELECT count(*) FROM subscriptions").Scan(&n)
	return n, err
}

// MarkProductForReconcile makes the next reconciliation check first the
// live subscriptions (active, billing retry, grace period) of productID,
// by forgetting when they were last checked: a mass renewal-date extension
// moved their dates, its summary names no subscription, and re-reading
// them all at once would spend the budget of a whole hour. An empty
// productID changes nothing.
func (l *Ledger) MarkProductForReconcile(ctx context.Context, productID string) error {
	if productID == "" {
		return nil
	}
	if _, err := l.db.Exec(ctx, `UPDATE subscriptions SET last_checked_at = NULL
		WHERE product_id = $1 AND status IN (1, 3, 4)`, productID); err != nil {
		return fmt.Errorf("ledger: marking product %s for reconciliation: %w", productID, err)
	}
	return nil
}
