package jobs

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/ledger"
)

// syncStatuses makes one Get All Subscription Statuses call for the Apple
// account of otid (every subscription of that customer comes back), verifies
// every signed item and applies it. env is where the account lives (the
// sandbox when production did not know it and fallback is on).
func (d *Deps) syncStatuses(ctx context.Context, otid string) ([]ledger.Change, appstore.Environment, error) {
	if d.Apple == nil {
		return nil, "", errors.New("jobs: no App Store client configured")
	}
	type answer struct {
		resp *appstore.StatusResponse
		env  appstore.Environment
	}
	a, err := retryTransient(ctx, d, func(ctx context.Context) (answer, error) {
		resp, env, err := d.Apple.GetAllSubscriptionStatuses(ctx, otid)
		d.Metrics.appleCall(appstore.EndpointStatuses, err)
		return answer{resp, env}, err
	})
	if err != nil {
		return nil, a.env, err
	}
	facts, err := d.statusFacts(a.resp, a.env)
	if err != nil {
		return nil, a.env, err
	}
	changes, err := d.Ledger.Apply(ctx, facts)
	return changes, a.env, err
}

// HistoryResult says what one history sync did.
type HistoryResult struct {
	Pages        int
	Transactions int
	Revision     string // the last page's revision, saved for incremental syncs
	Changes      []ledger.Change
}

// errInvalidRevision is Apple's InvalidRequestRevisionError (4000005).
const errCodeInvalidRevision = 4000005

// syncHistory pages Get Transaction History v2 for otid in env, oldest
// change first, filtered to the subscription group when group is set, from
// fromRevision (empty: the whole history). Each page is verified and applied
// in one database transaction together with checkpoint(revision), so a job
// that dies mid-way resumes at the next page and never loses or repeats
// work; a transaction modified while paging comes back on a later page and
// its newer version wins. The last page's revision is saved in the ledger for
// incremental re-syncs. A stored revision Apple no longer accepts restarts
// the sync from the beginning.
func (d *Deps) syncHistory(ctx context.Context, otid string, env appstore.Environment, group, fromRevision string,
	checkpoint func(ctx context.Context, tx pgx.Tx, revision string) error) (HistoryResult, error) {
	var res HistoryResult
	if d.Apple == nil {
		return res, errors.New("jobs: no App Store client configured")
	}
	client, err := d.Apple.InEnvironment(env)
	if err != nil {
		return res, err
	}
	q := appstore.HistoryQuery{Sort: appstore.SortAscending}
	if group != "" {
		q.SubscriptionGroupIdentifiers = []string{group}
	}
	revision := fromRevision
	restarted := false
	for {
		q.Revision = revision
		page, err := retryTransient(ctx, d, func(ctx context.Context) (*appstore.HistoryResponse, error) {
			resp, _, err := client.GetTransactionHistory(ctx, otid, q)
			d.Metrics.appleCall(appstore.EndpointHistory, err)
			return resp, err
		})
		var apiErr *appstore.APIError
		if errors.As(err, &apiErr) && apiErr.Code == errCodeInvalidRevision && revision != "" && !restarted {
			revision, restarted = "", true
			continue
		}
		if err != nil {
			return res, err
		}
		facts, err := d.transactionFacts(page.SignedTransactions, env)
		if err != nil {
			return res, fmt.Errorf("history of %s: %w", otid, err)
		}
		err = pgx.BeginFunc(ctx, d.Ledger.Pool(), func(tx pgx.Tx) error {
			changes, err := d.Ledger.WithTx(tx).Apply(ctx, facts)
			if err != nil {
				return err
			}
			res.Changes = mergeChanges(res.Changes, changes)
			if !page.HasMore {
				if err := d.Ledger.WithTx(tx).SetHistoryRevision(ctx, otid, page.Revision); err != nil {
					return err
				}
			}
			if checkpoint != nil {
				return checkpoint(ctx, tx, page.Revision)
			}
			return nil
		})
		if err != nil {
			return res, fmt.Errorf("history of %s: storing page %d: %w", otid, res.Pages+1, err)
		}
		res.Pages++
		res.Transactions += len(page.SignedTransactions)
		res.Revision = page.Revision
		if !page.HasMore {
			return res, nil
		}
		if page.Revision == "" || page.Revision == revision {
			return res, fmt.Errorf("history of %s: Apple said hasMore without a new revision", otid)
		}
		revision = page.Revision
	}
}

// mergeChanges folds later changes of the same subscriptions into earlier
// ones, keeping the first Before and the last After.
func mergeChanges(into, more []ledger.Change) []ledger.Change {
	for _, c := range more {
		found := false
		for i := range into {
			if into[i].After != nil && c.After != nil && into[i].After.OriginalTransactionID == c.After.OriginalTransactionID {
				into[i].After = c.After
				found = true
				break
			}
		}
		if !found {
			into = append(into, c)
		}
	}
	return into
}
