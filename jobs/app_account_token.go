package jobs

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/ledger"
)

// CustomerTokenNamespace is the UUID namespace of DeriveAppAccountToken
// (6ba7b811-9dad-11d1-80b4-00c04fd430c8, RFC 4122's URL namespace, hashed
// with the name "storesync:customer-id"). Apps that adopt derived tokens
// compute the same UUIDv5 on the device (any UUIDv5 library), so new
// purchases carry the token the migration set.
var CustomerTokenNamespace = uuidV5([16]byte{0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8},
	"storesync:customer-id")

// DeriveAppAccountToken is the appAccountToken --set-app-account-token
// gives a row that has a customer_id but no app_account_token: the UUIDv5
// of the customer id in CustomerTokenNamespace, lower case. The same
// customer id always gives the same token; "" gives "".
func DeriveAppAccountToken(customerID string) string {
	if customerID == "" {
		return ""
	}
	b, _ := parseUUID(CustomerTokenNamespace)
	return uuidV5(b, customerID)
}

func uuidV5(ns [16]byte, name string) string {
	h := sha1.New()
	h.Write(ns[:])
	h.Write([]byte(name))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

func parseUUID(s string) ([16]byte, bool) {
	var u [16]byte
	h := strings.ReplaceAll(s, "-", "")
	if len(h) != 32 {
		return u, false
	}
	for i := range 16 {
		var v byte
		if _, err := fmt.Sscanf(h[2*i:2*i+2], "%02x", &v); err != nil {
			return u, false
		}
		u[i] = v
	}
	return u, true
}

// Token plan actions.
const (
	TokenSet       = "set"       // Apple has no token: set it
	TokenOverwrite = "overwrite" // Apple has another token; --overwrite-app-account-token replaces it
	TokenUnchanged = "unchanged" // Apple already has this token
	TokenSkipped   = "skipped"   // nothing to do; Reason says why
)

// TokenPlan is what --set-app-account-token does for one subscription of
// one import row, judged from the ledger (Apple's state as last read).
type TokenPlan struct {
	Line                  int64  `json:"line"`
	OriginalTransactionID string `json:"originalTransactionId,omitempty"`
	CustomerID            string `json:"customerId,omitempty"`
	Current               string `json:"current,omitempty"` // Apple's token in the ledger
	Token                 string `json:"token,omitempty"`   // the row's (or derived) token
	Action                string `json:"action"`
	Reason                string `json:"reason,omitempty"`
}

// PlanAppAccountTokens reads an import file (the formats Importer reads)
// and returns, for every subscription its rows name, what setting Apple's
// appAccountToken would do: set where Apple has none, overwrite where it has
// another only when overwrite is true, else skip with a reason. A row's
// token is its app_account_token, else DeriveAppAccountToken(customer_id);
// a row naming a subscription by receipt or customer id covers every
// subscription the ledger links to that customer. It reads only the
// ledger: subscriptions not imported yet are skipped with that reason, and
// nothing calls Apple (this is --dry-run's output, too). Rows the importer
// would reject are skipped.
func PlanAppAccountTokens(ctx context.Context, l *ledger.Ledger, r io.Reader, overwrite bool) ([]TokenPlan, error) {
	var plans []TokenPlan
	err := readImportRows(r, func(row rawRow) error {
		var otid, token, customer string
		if isReceiptRow(row) {
			rr, reason := validateReceiptRow(row)
			if reason != "" {
				plans = append(plans, TokenPlan{Line: row.line, Action: TokenSkipped, Reason: reason})
				return nil
			}
			token, customer = rr.token, rr.customer
		} else {
			v, reason := validateImportRow(row)
			if reason != "" {
				plans = append(plans, TokenPlan{Line: row.line, Action: TokenSkipped, Reason: reason})
				return nil
			}
			otid, token, customer = v.OriginalTransactionID, v.AppAccountToken, v.CustomerID
		}
		if token == "" {
			token = DeriveAppAccountToken(customer)
		}
		if token == "" {
			plans = append(plans, TokenPlan{Line: row.line, OriginalTransactionID: otid, Action: TokenSkipped,
				Reason: "neither app_account_token nor customer_id: no token to set"})
			return nil
		}
		var subs []*ledger.Subscription
		if otid != "" {
			s, err := l.Subscription(ctx, otid)
			if errors.Is(err, ledger.ErrNotFound) {
				plans = append(plans, TokenPlan{Line: row.line, OriginalTransactionID: otid, CustomerID: customer, Token: token,
					Action: TokenSkipped, Reason: "not in the ledger yet: import the file first"})
				return nil
			}
			if err != nil {
				return err
			}
			subs = []*ledger.Subscription{s}
		} else {
			var err error
			if subs, err = l.SubscriptionsByCustomerID(ctx, customer); err != nil && !errors.Is(err, ledger.ErrNotFound) {
				return err
			}
			if len(subs) == 0 {
				plans = append(plans, TokenPlan{Line: row.line, CustomerID: customer, Token: token,
					Action: TokenSkipped, Reason: "no subscription of this customer in the ledger yet: import the file first"})
				return nil
			}
		}
		for _, s := range subs {
			p := TokenPlan{Line: row.line, OriginalTransactionID: s.OriginalTransactionID, CustomerID: customer,
				Current: strings.ToLower(s.AppAccountToken), Token: token}
			own, err := l.OwnershipType(ctx, s.OriginalTransactionID)
			if err != nil {
				return err
			}
			switch {
			case p.Current == token:
				p.Action = TokenUnchanged
			case own == "FAMILY_SHARED":
				p.Action, p.Reason = TokenSkipped, "family-shared: Apple sets tokens only on the purchaser's subscription"
			case s.Environment != string(appstore.Production):
				p.Action, p.Reason = TokenSkipped, "a "+s.Environment+" subscription: storesync sets tokens in production only"
			case p.Current == "":
				p.Action = TokenSet
			case overwrite:
				p.Action = TokenOverwrite
			default:
				p.Action, p.Reason = TokenSkipped, "Apple has another token: pass --overwrite-app-account-token to replace it"
			}
			plans = append(plans, p)
		}
		return nil
	})
	return plans, err
}

// SetAppAccountTokenArgs sets one subscription's appAccountToken at Apple
// (Set App Account Token, from the shared budget under Apple's limit for
// that endpoint), records the change in the ledger and re-reads the
// subscription so the ledger carries the token. Unique by subscription and
// token while pending.
type SetAppAccountTokenArgs struct {
	OriginalTransactionID string `json:"original_transaction_id" river:"unique"`
	Token                 string `json:"token" river:"unique"`
	// Overwrite allows replacing another token Apple has; without it the
	// job changes only a subscription whose Apple token is empty.
	Overwrite bool `json:"overwrite,omitempty"`
	// Actor is who asked (recorded with the change).
	Actor string `json:"actor"`
}

// Kind is the River job kind.
func (SetAppAccountTokenArgs) Kind() string { return "set_app_account_token" }

// InsertOpts: a queue of its own, so that tokens waiting for their
// endpoint's budget (20/s) never hold the imports' slots.
func (SetAppAccountTokenArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueBulkTokens, Priority: PriorityBulk, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// EnqueueAppAccountTokens enqueues a SetAppAccountTokenArgs job for every
// plan whose action is set or overwrite, and returns how many were new.
func EnqueueAppAccountTokens(ctx context.Context, client *river.Client[pgx.Tx], plans []TokenPlan, actor string) (int, error) {
	var params []river.InsertManyParams
	seen := map[string]bool{}
	for _, p := range plans {
		if (p.Action != TokenSet && p.Action != TokenOverwrite) || seen[p.OriginalTransactionID] {
			continue
		}
		seen[p.OriginalTransactionID] = true
		params = append(params, river.InsertManyParams{Args: SetAppAccountTokenArgs{
			OriginalTransactionID: p.OriginalTransactionID, Token: p.Token, Overwrite: p.Action == TokenOverwrite, Actor: actor}})
	}
	if len(params) == 0 {
		return 0, nil
	}
	res, err := client.InsertMany(ctx, params)
	if err != nil {
		return 0, fmt.Errorf("enqueueing appAccountToken changes: %w", err)
	}
	n := 0
	for _, r := range res {
		if !r.UniqueSkippedAsDuplicate {
			n++
		}
	}
	return n, nil
}

type setAppAccountTokenWorker struct {
	river.WorkerDefaults[SetAppAccountTokenArgs]
	d *Deps
}

// Work asks Apple for the subscription's current token first (the ledger
// may be stale: the decision is made on Apple's answer, which is not
// applied, so that the re-read after the change is the newer signed data),
// then records the change, calls Apple, completes the record and re-reads
// the statuses into the ledger.
func (w *setAppAccountTokenWorker) Work(ctx context.Context, job *river.Job[SetAppAccountTokenArgs]) error {
	err := w.set(ctx, job)
	return w.d.jobDone(ctx, job.JobRow, err, slog.String("original_transaction_id", job.Args.OriginalTransactionID))
}

func (w *setAppAccountTokenWorker) set(ctx context.Context, job *river.Job[SetAppAccountTokenArgs]) error {
	d, a := w.d, job.Args
	if !ledger.IsUUID(a.Token) {
		return river.JobCancel(fmt.Errorf("token %q is not a UUID", a.Token))
	}
	token := strings.ToLower(a.Token)
	current, env, err := w.appleToken(ctx, a.OriginalTransactionID)
	if err != nil {
		return w.appleError(ctx, job, err)
	}
	switch {
	case current == token:
		return d.Ledger.FinishAppAccountTokenChange(ctx, job.ID, "") // done (perhaps by an earlier run)
	case current != "" && !a.Overwrite:
		return river.JobCancel(fmt.Errorf("Apple has another token %s: not overwritten (--overwrite-app-account-token replaces it)", current))
	case env != d.Apple.Environment():
		return river.JobCancel(fmt.Errorf("a %s subscription: Set App Account Token is sent to %s only", env, d.Apple.Environment()))
	}
	if err := d.Ledger.RequestAppAccountTokenChange(ctx, job.ID, a.OriginalTransactionID, current, token, a.Actor); err != nil {
		return err
	}
	if _, err := retryTransient(ctx, d, func(ctx context.Context) (struct{}, error) {
		err := d.Apple.SetAppAccountToken(ctx, a.OriginalTransactionID, token)
		d.Metrics.appleCall(appstore.EndpointAppAccountToken, err)
		return struct{}{}, err
	}); err != nil {
		return w.appleError(ctx, job, err)
	}
	if err := d.Ledger.FinishAppAccountTokenChange(ctx, job.ID, ""); err != nil {
		return err
	}
	// Apple's answers now carry the token: the ledger learns it from them.
	if _, _, err := d.syncStatuses(ctx, a.OriginalTransactionID); err != nil {
		return w.appleError(ctx, job, err)
	}
	return nil
}

func (w *setAppAccountTokenWorker) appleError(ctx context.Context, job *river.Job[SetAppAccountTokenArgs], err error) error {
	if isPermanentAppleError(err) {
		reason := reasonOf(err)
		if ferr := w.d.Ledger.FinishAppAccountTokenChange(context.WithoutCancel(ctx), job.ID, reason); ferr != nil {
			return ferr
		}
		return river.JobCancel(errors.New(reason))
	}
	if ctx.Err() != nil {
		return river.JobSnooze(0)
	}
	return appleOutcome(err)
}

// appleToken returns Apple's current appAccountToken of otid (lower case,
// "" for none) from Get All Subscription Statuses, verified, and the
// environment that answered.
func (w *setAppAccountTokenWorker) appleToken(ctx context.Context, otid string) (string, appstore.Environment, error) {
	d := w.d
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
		return "", "", err
	}
	v, err := d.verifierFor(a.env)
	if err != nil {
		return "", "", err
	}
	for _, g := range a.resp.Data {
		for _, lt := range g.LastTransactions {
			if lt.OriginalTransactionID != otid {
				continue
			}
			tx, err := v.VerifyTransaction(lt.SignedTransactionInfo)
			if err != nil {
				return "", "", err
			}
			return strings.ToLower(tx.AppAccountToken), a.env, nil
		}
	}
	return "", "", river.JobCancel(fmt.Errorf("Apple's statuses do not list %s", otid))
}
