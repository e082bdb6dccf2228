package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/ledger"
)

// Import rows may carry, instead of an original_transaction_id, what
// companies that used verifyReceipt kept: an app receipt (app_receipt,
// appReceipt) or a legacy StoreKit 1 transaction receipt
// (transaction_receipt, transactionReceipt). The Importer parses the
// receipt locally (appstore.ExtractTransactionIDFromAppReceipt, Apple's
// ReceiptUtility rules, nothing verified) and enqueues a ResolveReceiptArgs
// job with the transaction id it names; a receipt that names none, or does
// not parse, is a rejected row with its line and reason. The job asks Apple
// which subscription that is and then imports it the usual way (ImportArgs).

// ResolveReceiptArgs is the job turning the transaction id read from an
// import row's receipt into an import row of its subscription. It is unique
// by TransactionID: the same receipt imported twice (or by two runs, while
// the first job is kept) is resolved once.
type ResolveReceiptArgs struct {
	TransactionID string `json:"transaction_id" river:"unique"`
	// AppAccountToken and CustomerID come from the import row; they go
	// into the subscription's import row once Apple names it. (Unlike
	// ImportArgs they must ride in the args: there is no row to hold them
	// before Apple answers.)
	AppAccountToken string `json:"app_account_token,omitempty"`
	CustomerID      string `json:"customer_id,omitempty"`
	RunID           int64  `json:"run_id"`
}

// Kind is the River job kind.
func (ResolveReceiptArgs) Kind() string { return "import_receipt" }

// InsertOpts puts the job on its own queue: on the bulk queue, a migration's
// receipts waiting for the transaction endpoint's budget held every slot,
// and the statuses of the receipts already resolved waited for all of them.
func (ResolveReceiptArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:      QueueBulkReceipts,
		Priority:   PriorityBulk,
		UniqueOpts: river.UniqueOpts{ByArgs: true},
	}
}

// resolveReceiptWorker runs ResolveReceiptArgs:
//
//  1. Under the account's import lease (customer id, else appAccountToken,
//     as ImportWorker's statuses step), it asks the ledger whether a row
//     of the same account is already imported: if so, that row's job
//     brings in every subscription of the account (its statuses answer
//     names them all) and Apple is not asked at all. So several receipts
//     of one customer cost Apple one call.
//  2. Get Transaction Info on the transaction id (spending from the shared
//     budget, sandbox fallback as configured), verified, gives the
//     originalTransactionId.
//  3. In one database transaction: the import row of that subscription
//     (ON CONFLICT DO NOTHING, so a subscription listed twice is imported
//     once) and, when it is new, its ImportArgs job.
//
// An id Apple does not know, or any other permanent error, cancels the job
// with the reason (River keeps it; the log line names the transaction id).
type resolveReceiptWorker struct {
	river.WorkerDefaults[ResolveReceiptArgs]
	d *Deps
}

// Work resolves one receipt's transaction id.
func (w *resolveReceiptWorker) Work(ctx context.Context, job *river.Job[ResolveReceiptArgs]) error {
	var outcome error
	defer func() {
		_ = w.d.jobDone(ctx, job.JobRow, outcome, slog.String("transaction_id", job.Args.TransactionID))
	}()
	outcome = w.resolve(ctx, job)
	return outcome
}

func (w *resolveReceiptWorker) resolve(ctx context.Context, job *river.Job[ResolveReceiptArgs]) error {
	d := w.d
	a := job.Args
	if keys := importAccountKeys(a.AppAccountToken, a.CustomerID); len(keys) > 0 {
		release, err := d.acquireAccountLeases(ctx, keys, "receipt:"+strconv.FormatInt(job.ID, 10))
		if err != nil {
			return err
		}
		defer release()
		otid, err := d.Ledger.ImportedAccount(ctx, a.AppAccountToken, a.CustomerID)
		if err != nil {
			return err
		}
		if otid != "" {
			return nil // imported by another row of the account
		}
	}
	if d.Apple == nil {
		return errors.New("jobs: no App Store client configured")
	}
	type answer struct {
		resp *appstore.TransactionInfoResponse
		env  appstore.Environment
	}
	ans, err := retryTransient(ctx, d, func(ctx context.Context) (answer, error) {
		resp, env, err := d.Apple.GetTransactionInfo(ctx, a.TransactionID)
		d.Metrics.appleCall(appstore.EndpointTransaction, err)
		return answer{resp, env}, err
	})
	if err == nil {
		var v *appstore.Verifier
		if v, err = d.verifierFor(ans.env); err == nil {
			var tx *appstore.TransactionPayload
			if tx, err = v.VerifyTransaction(ans.resp.SignedTransactionInfo); err == nil {
				return w.enqueue(ctx, job, tx.OriginalTransactionID)
			}
		}
	}
	var apiErr *appstore.APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.Unauthorized():
		d.logger().Error("storesync: Apple refused the API key; receipt import jobs wait until it is fixed", "error", err)
		return river.JobSnooze(time.Minute)
	case isPermanentAppleError(err):
		return river.JobCancel(fmt.Errorf("transaction id %s from the receipt: %s", a.TransactionID, reasonOf(err)))
	case ctx.Err() != nil:
		return river.JobSnooze(0)
	}
	return appleOutcome(err)
}

// enqueue stores the import row of otid and, when new, its import job.
func (w *resolveReceiptWorker) enqueue(ctx context.Context, job *river.Job[ResolveReceiptArgs], otid string) error {
	if otid == "" {
		return river.JobCancel(fmt.Errorf("transaction id %s: Apple's transaction has no originalTransactionId", job.Args.TransactionID))
	}
	client := river.ClientFromContext[pgx.Tx](ctx)
	a := job.Args
	return pgx.BeginFunc(ctx, w.d.Ledger.Pool(), func(tx pgx.Tx) error {
		fresh, err := w.d.Ledger.WithTx(tx).InsertImportRows(ctx, a.RunID,
			[]ledger.ImportRow{{OriginalTransactionID: otid, AppAccountToken: a.AppAccountToken, CustomerID: a.CustomerID}})
		if err != nil || len(fresh) == 0 {
			return err
		}
		_, err = client.InsertTx(ctx, tx, ImportArgs{OriginalTransactionID: otid, RunID: a.RunID}, nil)
		return err
	})
}

// receiptRow is a validated import row naming a receipt.
type receiptRow struct {
	transactionID, token, customer string
}

// validateReceiptRow parses the row's receipt and checks its other
// columns; reason is empty when it is valid.
func validateReceiptRow(r rawRow) (receiptRow, string) {
	token := strings.ToLower(strings.TrimSpace(r.token))
	customer := strings.TrimSpace(r.customer)
	switch {
	case token != "" && !ledger.IsUUID(token):
		return receiptRow{}, fmt.Sprintf("app_account_token %q is not a UUID", clip(token))
	case !utf8.ValidString(customer) || strings.ContainsRune(customer, 0):
		return receiptRow{}, "customer_id is not valid UTF-8 text"
	case utf8.RuneCountInString(customer) > maxCustomerIDChars:
		return receiptRow{}, fmt.Sprintf("customer_id has %d characters, more than %d", utf8.RuneCountInString(customer), maxCustomerIDChars)
	}
	var id string
	var err error
	if strings.TrimSpace(r.receipt) != "" {
		id, err = appstore.ExtractTransactionIDFromAppReceipt(r.receipt)
	} else {
		id, err = appstore.ExtractTransactionIDFromTransactionReceipt(r.txReceipt)
	}
	switch {
	case errors.Is(err, appstore.ErrReceiptWithoutTransaction):
		return receiptRow{}, "the receipt holds no in-app purchase: nothing to import for this customer"
	case err != nil:
		return receiptRow{}, "unreadable receipt: " + err.Error()
	case !isDecimal(id) || len(id) > maxOriginalTransactionIDDigits:
		return receiptRow{}, fmt.Sprintf("the receipt's transaction id %q is not an App Store transaction id", clip(id))
	}
	return receiptRow{transactionID: id, token: token, customer: customer}, ""
}

// isReceiptRow reports whether a row is to be imported from its receipt:
// it has one and no original_transaction_id (which, when given, wins).
func isReceiptRow(r rawRow) bool {
	return r.problem == "" && strings.TrimSpace(r.otid) == "" &&
		(strings.TrimSpace(r.receipt) != "" || strings.TrimSpace(r.txReceipt) != "")
}

// storeReceipts inserts the ResolveReceiptArgs jobs of a batch of receipt
// rows in one transaction and returns how many were new (a transaction id
// already queued is skipped by River's uniqueness).
func (im *Importer) storeReceipts(ctx context.Context, runID int64, batch []receiptRow) (int, error) {
	// One job per transaction id: several receipts of a customer usually
	// name the same first transaction, and Postgres refuses one INSERT that
	// hits the same unique key twice.
	params := make([]river.InsertManyParams, 0, len(batch))
	seen := make(map[string]bool, len(batch))
	for _, r := range batch {
		if seen[r.transactionID] {
			continue
		}
		seen[r.transactionID] = true
		params = append(params, river.InsertManyParams{Args: ResolveReceiptArgs{TransactionID: r.transactionID,
			AppAccountToken: r.token, CustomerID: r.customer, RunID: runID}})
	}
	fresh := 0
	err := pgx.BeginFunc(ctx, im.opts.Ledger.Pool(), func(tx pgx.Tx) error {
		res, err := im.opts.River.InsertManyTx(ctx, tx, params)
		if err != nil {
			return fmt.Errorf("inserting receipt import jobs: %w", err)
		}
		for _, r := range res {
			if !r.UniqueSkippedAsDuplicate {
				fresh++
			}
		}
		return nil
	})
	return fresh, err
}

// unresolvedReceipts counts run's receipt jobs still to work: FollowImport
// waits for them, since each becomes an import row only when it finishes.
func unresolvedReceipts(ctx context.Context, l *ledger.Ledger, runID int64) (int64, error) {
	return unfinishedRunJobs(ctx, l, runID, ResolveReceiptArgs{}.Kind())
}
