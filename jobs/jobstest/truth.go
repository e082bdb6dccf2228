// Package jobstest holds test helpers shared by the tests of jobs and of
// the commands built on them: comparing the ledger with the App Store
// simulator's truth.
package jobstest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore/appstoretest"
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

// Compare returns every difference between the ledger and truths (from
// Simulator.Truth or TruthOf) in the fields a migration must get right:
// environment, product, subscription group, status, expiresDate,
// autoRenewStatus, autoRenewProductId, latest transaction, transaction
// count and appAccountToken. Customer ids are not compared: the simulator
// does not know them.
func Compare(ctx context.Context, l *ledger.Ledger, truths []appstoretest.SubscriptionTruth) ([]Mismatch, error) {
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

// RequireLedgerEqualsTruth fails t, listing the first differences, unless
// the ledger holds exactly truths' state for every subscription in truths.
func RequireLedgerEqualsTruth(t testing.TB, l *ledger.Ledger, truths []appstoretest.SubscriptionTruth) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	diffs, err := Compare(ctx, l, truths)
	if err != nil {
		t.Fatalf("comparing the ledger with the simulator's truth: %v", err)
	}
	if len(diffs) == 0 {
		return
	}
	var b strings.Builder
	for i, d := range diffs {
		if i == 20 {
			fmt.Fprintf(&b, "\n  … and %d more", len(diffs)-i)
			break
		}
		b.WriteString("\n  " + d.String())
	}
	t.Fatalf("the ledger differs from the simulator's truth in %d fields of %d subscriptions:%s", len(diffs), len(truths), b.String())
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
