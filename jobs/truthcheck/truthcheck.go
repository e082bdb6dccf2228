// Package truthcheck compares the ledger with the App Store simulator's
// truth: the demo's final check and the end-to-end tests' assertion. It
// ships in the binary (the demo uses it), so it never imports testing.
package truthcheck

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/ledger"
)

// Mismatch is one field where the ledger differs from the simulator's
// truth. Field "subscription" with Ledger "missing" means the ledger does
// not know the subscription at all.
type Mismatch struct {
	OriginalTransactionID string
	Field                 string
	Ledger                string
	Truth                 string
}

func (m Mismatch) String() string {
	return fmt.Sprintf("%s %s: ledger %q, truth %q", m.OriginalTransactionID, m.Field, m.Ledger, m.Truth)
}

// Describe lists the first 20 of diffs, one per line (each indented), for a
// report or a test failure; "" when there are none.
func Describe(diffs []Mismatch) string {
	var b strings.Builder
	for i, d := range diffs {
		if i == 20 {
			fmt.Fprintf(&b, "\n  … and %d more", len(diffs)-i)
			break
		}
		b.WriteString("\n  " + d.String())
	}
	return b.String()
}

// Compare returns every difference between the ledger and truths (from
// Simulator.Truth or TruthOf) in the fields a migration must get right:
// environment, product, subscription group, status, expiresDate,
// autoRenewStatus, autoRenewProductId, latest transaction, transaction
// count and appAccountToken. Customer ids are not compared: the simulator
// does not know them.
func Compare(ctx context.Context, l *ledger.Ledger, truths []sim.SubscriptionTruth) ([]Mismatch, error) {
	var out []Mismatch
	for _, tr := range truths {
		sub, err := l.Subscription(ctx, tr.OriginalTransactionID)
		if errors.Is(err, ledger.ErrNotFound) {
			out = append(out, Mismatch{tr.OriginalTransactionID, "subscription", "missing", "present"})
			continue
		}
		if err != nil {
			return nil, err
		}
		add := func(field, got, want string) {
			if got != want {
				out = append(out, Mismatch{tr.OriginalTransactionID, field, got, want})
			}
		}
		add("environment", sub.Environment, string(tr.Environment))
		add("productId", sub.ProductID, tr.ProductID)
		add("subscriptionGroupIdentifier", sub.SubscriptionGroupIdentifier, tr.SubscriptionGroupIdentifier)
		add("status", sub.Status, tr.Status)
		add("expiresDate", timeText(sub.ExpiresDate), timeText(&tr.ExpiresDate))
		add("autoRenewStatus", boolText(sub.AutoRenewStatus), strconv.FormatBool(tr.AutoRenewStatus))
		add("autoRenewProductId", sub.AutoRenewProductID, tr.AutoRenewProductID)
		add("latestTransactionId", sub.LatestTransactionID, tr.LatestTransactionID)
		add("transactionCount", strconv.Itoa(sub.TransactionCount), strconv.Itoa(tr.TransactionCount))
		add("appAccountToken", strings.ToLower(sub.AppAccountToken), strings.ToLower(tr.AppAccountToken))
	}
	return out, nil
}

func timeText(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.UTC().Truncate(time.Millisecond).Format(time.RFC3339Nano)
}

func boolText(b *bool) string {
	if b == nil {
		return "unknown"
	}
	return strconv.FormatBool(*b)
}
