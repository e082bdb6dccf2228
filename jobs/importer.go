package jobs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/riverqueue/river"

	"github.com/storesync/storesync/ledger"
)

// Limits of an import row (the design's validation rules).
const (
	maxOriginalTransactionIDDigits = 20
	maxCustomerIDChars             = 255
	// maxImportLine bounds one line of a JSON Lines file: a row is far
	// smaller, so a longer line means the file is not an import file.
	maxImportLine = 1 << 20
)

// ImporterOptions configures an Importer.
type ImporterOptions struct {
	// Ledger stores the import rows, in transactions begun on its Pool;
	// River (an insert-only client is enough) inserts their jobs in the
	// same transactions.
	Ledger *ledger.Ledger
	River  *river.Client[pgx.Tx]
	// BatchSize is how many valid rows go into one transaction; zero means
	// 2000.
	BatchSize int
	// Writers is how many batches are stored concurrently; zero means 2
	// (Postgres works on one while the file is parsed and another stored).
	Writers int
	// Rejects receives every rejected row as CSV: line,reason, then the
	// row's fields (a JSON line as one field). Nil discards them (they are
	// still counted).
	Rejects io.Writer
	// Progress, when set, is called after every stored batch with the
	// totals so far (from one goroutine at a time).
	Progress func(ledger.ImportCounts)
	// Started, when set, is called by Run with the id of the run it has
	// just recorded, before any row is read (and so before Rejects or
	// Progress is used). Import does not call it.
	Started func(runID int64)
	// HoldEvents makes Run hold the webhooks of the change-feed events the
	// run causes (import --events=hold) until `storesync events release`.
	HoldEvents bool
}

func (o *ImporterOptions) validate() error {
	var errs []error
	if o.Ledger == nil {
		errs = append(errs, errors.New("jobs: ImporterOptions.Ledger is nil: pass ledger.New(pool)"))
	} else if o.Ledger.Pool() == nil {
		errs = append(errs, errors.New("jobs: ImporterOptions.Ledger has no pool: pass ledger.New(pool)"))
	}
	if o.River == nil {
		errs = append(errs, errors.New("jobs: ImporterOptions.River is nil: pass a River client (NewRiverClient with Work false is enough)"))
	}
	if o.BatchSize < 0 || o.BatchSize > 50_000 {
		errs = append(errs, fmt.Errorf("jobs: ImporterOptions.BatchSize = %d: use 0 for the default or 1..50000", o.BatchSize))
	}
	if o.Writers < 0 || o.Writers > 16 {
		errs = append(errs, fmt.Errorf("jobs: ImporterOptions.Writers = %d: use 0 for the default or 1..16", o.Writers))
	}
	return errors.Join(errs...)
}

// Importer reads an import file and enqueues one ImportArgs job per new
// originalTransactionId. The file is CSV (header
// original_transaction_id,app_account_token,customer_id; only the first
// column is required; without a header the columns are taken in that order)
// or JSON Lines with the same keys (camelCase accepted too); the format is
// detected from the first character. A row may give, instead of the id, an
// app receipt (app_receipt) or a legacy transaction receipt
// (transaction_receipt) as kept by companies that used verifyReceipt: it is
// parsed here, and a job resolves it at Apple (see ResolveReceiptArgs). It is streamed: memory stays constant
// whatever the file's size.
//
// Each batch of valid rows is stored as import rows (ON CONFLICT DO NOTHING)
// and the jobs of the rows that were new are inserted in the same
// transaction, so a crash never leaves a row without its job, and importing
// a file again (or a file overlapping an earlier one) enqueues nothing for
// rows already imported.
type Importer struct {
	opts ImporterOptions
}

// NewImporter validates opts and returns an Importer.
func NewImporter(opts ImporterOptions) (*Importer, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if opts.BatchSize == 0 {
		opts.BatchSize = 2000
	}
	if opts.Writers == 0 {
		opts.Writers = 2
	}
	return &Importer{opts: opts}, nil
}

// rawRow is one data row as read, before validation.
type rawRow struct {
	line                  int64
	otid, token, customer string
	receipt, txReceipt    string   // app receipt, legacy transaction receipt (import_receipt.go)
	fields                []string // for the rejects file
	problem               string   // why the row could not even be read; "" when it could
}

// Import reads r to the end as rows of run runID (ledger.CreateImportRun)
// and returns the counts. It stops at the first database error or when ctx
// ends; batches already stored stay stored (importing the file again
// finishes the job). It does not record the counts in the run: Run does
// the whole sequence (record the run, import, finish it); Import is for
// callers that manage the run themselves.
func (im *Importer) Import(ctx context.Context, runID int64, r io.Reader) (ledger.ImportCounts, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	var (
		mu     sync.Mutex
		counts ledger.ImportCounts
	)
	batches := make(chan []ledger.ImportRow, im.opts.Writers)
	var wg sync.WaitGroup
	for range im.opts.Writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for batch := range batches {
				fresh, err := im.store(ctx, runID, batch)
				if err != nil {
					cancel(err)
					for range batches { // let the reader finish
					}
					return
				}
				mu.Lock()
				counts.Enqueued += int64(fresh)
				counts.Duplicates += int64(len(batch) - fresh)
				c := counts
				if im.opts.Progress != nil {
					im.opts.Progress(c)
				}
				mu.Unlock()
			}
		}()
	}

	var rejects *csv.Writer
	if im.opts.Rejects != nil {
		rejects = csv.NewWriter(im.opts.Rejects)
	}
	var read, rejected int64
	batch := make([]ledger.ImportRow, 0, im.opts.BatchSize)
	var receipts []receiptRow
	storeReceipts := func() error {
		fresh, err := im.storeReceipts(ctx, runID, receipts)
		if err != nil {
			return err
		}
		mu.Lock()
		counts.Enqueued += int64(fresh)
		counts.Duplicates += int64(len(receipts) - fresh)
		mu.Unlock()
		receipts = receipts[:0]
		return nil
	}
	readErr := readImportRows(r, func(row rawRow) error {
		read++
		var valid ledger.ImportRow
		var reason string
		if isReceiptRow(row) {
			var rr receiptRow
			if rr, reason = validateReceiptRow(row); reason == "" {
				receipts = append(receipts, rr)
				if len(receipts) == im.opts.BatchSize {
					return storeReceipts()
				}
				return nil
			}
		} else {
			valid, reason = validateImportRow(row)
		}
		if reason != "" {
			rejected++
			if rejects != nil {
				if err := rejects.Write(append([]string{strconv.FormatInt(row.line, 10), reason}, row.fields...)); err != nil {
					return fmt.Errorf("writing the rejects file: %w", err)
				}
			}
			return ctx.Err()
		}
		batch = append(batch, valid)
		if len(batch) == cap(batch) {
			select {
			case batches <- batch:
			case <-ctx.Done():
				return context.Cause(ctx)
			}
			batch = make([]ledger.ImportRow, 0, im.opts.BatchSize)
		}
		return nil
	})
	if readErr == nil && len(receipts) > 0 {
		readErr = storeReceipts()
	}
	if readErr == nil && len(batch) > 0 {
		select {
		case batches <- batch:
		case <-ctx.Done():
		}
	}
	close(batches)
	wg.Wait()
	if rejects != nil {
		rejects.Flush()
		if err := rejects.Error(); err != nil && readErr == nil {
			readErr = fmt.Errorf("writing the rejects file: %w", err)
		}
	}
	counts.Rows, counts.Rejected = read, rejected
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return counts, err // a writer's error is the cause
	}
	if readErr != nil {
		return counts, readErr
	}
	return counts, ctx.Err()
}

// store inserts one batch's rows and the jobs of the new ones in one
// transaction and returns how many were new.
func (im *Importer) store(ctx context.Context, runID int64, batch []ledger.ImportRow) (int, error) {
	var fresh int
	err := pgx.BeginFunc(ctx, im.opts.Ledger.Pool(), func(tx pgx.Tx) error {
		rows, err := im.opts.Ledger.WithTx(tx).InsertImportRows(ctx, runID, batch)
		if err != nil {
			return err
		}
		fresh = len(rows)
		if fresh == 0 {
			return nil
		}
		params := make([]river.InsertManyParams, len(rows))
		for i, r := range rows {
			// The row keeps the token and customer id; see ImportArgs.
			params[i] = river.InsertManyParams{Args: ImportArgs{OriginalTransactionID: r.OriginalTransactionID, RunID: runID}}
		}
		return im.insertJobs(ctx, tx, params)
	})
	return fresh, err
}

// pgUniqueViolation is Postgres's SQLSTATE unique_violation.
const pgUniqueViolation = "23505"

// insertJobs inserts the jobs of new import rows. Every row is new, so no
// job can exist for it unless one was inserted without its row (by hand,
// or after import rows were deleted): the fast COPY insert is tried first,
// inside a savepoint, and only when it hits such a unique conflict (COPY
// fails the whole batch then) is the batch inserted again with
// InsertManyTx, which skips the duplicates.
func (im *Importer) insertJobs(ctx context.Context, tx pgx.Tx, params []river.InsertManyParams) error {
	err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
		_, err := im.opts.River.InsertManyFastTx(ctx, sp, params)
		return err
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == pgUniqueViolation {
		_, err = im.opts.River.InsertManyTx(ctx, tx, params)
	}
	if err != nil {
		return fmt.Errorf("inserting import jobs: %w", err)
	}
	return nil
}

// validateImportRow checks one row; reason is empty when it is valid.
func validateImportRow(r rawRow) (ledger.ImportRow, string) {
	if r.problem != "" {
		return ledger.ImportRow{}, r.problem
	}
	otid := strings.TrimSpace(r.otid)
	token := strings.ToLower(strings.TrimSpace(r.token))
	customer := strings.TrimSpace(r.customer)
	switch {
	case otid == "":
		return ledger.ImportRow{}, "original_transaction_id is empty"
	case !isDecimal(otid):
		return ledger.ImportRow{}, fmt.Sprintf("original_transaction_id %q is not a decimal number", clip(otid))
	case len(otid) > maxOriginalTransactionIDDigits:
		return ledger.ImportRow{}, fmt.Sprintf("original_transaction_id %s has %d digits, more than %d", clip(otid), len(otid), maxOriginalTransactionIDDigits)
	case token != "" && !ledger.IsUUID(token):
		return ledger.ImportRow{}, fmt.Sprintf("app_account_token %q is not a UUID", clip(token))
	case !utf8.ValidString(customer) || strings.ContainsRune(customer, 0):
		return ledger.ImportRow{}, "customer_id is not valid UTF-8 text"
	case utf8.RuneCountInString(customer) > maxCustomerIDChars:
		return ledger.ImportRow{}, fmt.Sprintf("customer_id has %d characters, more than %d", utf8.RuneCountInString(customer), maxCustomerIDChars)
	}
	return ledger.ImportRow{OriginalTransactionID: otid, AppAccountToken: token, CustomerID: customer}, ""
}

func isDecimal(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// clip shortens a value quoted in a reason.
func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	cut := 64
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// readImportRows detects the format of r and calls row for each data row,
// stopping at the first error row returns.
func readImportRows(r io.Reader, row func(rawRow) error) error {
	br := bufio.NewReaderSize(r, 256<<10)
	// Skip a UTF-8 byte-order mark and leading blank space.
	if b, err := br.Peek(3); err == nil && bytes.Equal(b, []byte{0xEF, 0xBB, 0xBF}) {
		_, _ = br.Discard(3)
	}
	lineOffset := int64(0)
	for {
		b, err := br.Peek(1)
		if err == io.EOF {
			return nil // empty file
		}
		if err != nil {
			return err
		}
		if b[0] == '\n' {
			lineOffset++
		}
		if b[0] != ' ' && b[0] != '\t' && b[0] != '\r' && b[0] != '\n' {
			if b[0] == '{' {
				return readJSONLines(br, lineOffset, row)
			}
			return readCSV(br, lineOffset, row)
		}
		_, _ = br.Discard(1)
	}
}

// importColumns maps header names (lower-cased, without '_') to fields.
var importColumns = map[string]int{
	"originaltransactionid": 0,
	"appaccounttoken":       1,
	"customerid":            2,
	"appreceipt":            3,
	"transactionreceipt":    4,
}

func readCSV(r io.Reader, lineOffset int64, row func(rawRow) error) error {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	cr.ReuseRecord = true
	cols := [5]int{0, 1, 2, -1, -1} // field index of otid, token, customer, receipts; -1 absent
	first := true
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		var perr *csv.ParseError
		if errors.As(err, &perr) {
			if err := row(rawRow{line: int64(perr.StartLine) + lineOffset, problem: "unreadable CSV: " + perr.Err.Error()}); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("reading CSV: %w", err)
		}
		line, _ := cr.FieldPos(0)
		if first {
			first = false
			if len(rec) > 0 && !isDecimal(strings.TrimSpace(rec[0])) {
				cols = [5]int{-1, -1, -1, -1, -1}
				for i, name := range rec {
					key := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(name)), "_", "")
					if c, ok := importColumns[key]; ok && cols[c] < 0 {
						cols[c] = i
					}
				}
				if cols[0] < 0 && cols[3] < 0 && cols[4] < 0 {
					return fmt.Errorf("line %d: the CSV header %q has no original_transaction_id column (nor app_receipt or transaction_receipt): start the file with original_transaction_id,app_account_token,customer_id (or app_receipt,customer_id,app_account_token)", line+int(lineOffset), strings.Join(rec, ","))
				}
				continue
			}
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue // a blank line inside quotes-free CSV
		}
		field := func(c int) string {
			if i := cols[c]; i >= 0 && i < len(rec) {
				return rec[i]
			}
			return ""
		}
		rr := rawRow{line: int64(line) + lineOffset, otid: field(0), token: field(1), customer: field(2), receipt: field(3), txReceipt: field(4)}
		rr.fields = append([]string(nil), rec...)
		if err := row(rr); err != nil {
			return err
		}
	}
}

// jsonImportRow accepts the CSV's keys and their camelCase forms, each a
// string (or a number for the ids).
type jsonImportRow struct {
	OTID          json.RawMessage `json:"original_transaction_id"`
	OTIDCamel     json.RawMessage `json:"originalTransactionId"`
	Token         json.RawMessage `json:"app_account_token"`
	TokenCamel    json.RawMessage `json:"appAccountToken"`
	Customer      json.RawMessage `json:"customer_id"`
	CustomerCamel json.RawMessage `json:"customerId"`
	// Receipts (import_receipt.go), used when there is no original id.
	Receipt        json.RawMessage `json:"app_receipt"`
	ReceiptCamel   json.RawMessage `json:"appReceipt"`
	TxReceipt      json.RawMessage `json:"transaction_receipt"`
	TxReceiptCamel json.RawMessage `json:"transactionReceipt"`
}

func readJSONLines(r io.Reader, lineOffset int64, row func(rawRow) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxImportLine)
	line := lineOffset
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		rr := rawRow{line: line, fields: []string{string(text)}}
		var j jsonImportRow
		if err := json.Unmarshal(text, &j); err != nil {
			rr.problem = "not a JSON object: " + err.Error()
		} else {
			rr.otid, rr.problem = jsonScalar("original_transaction_id", first(j.OTID, j.OTIDCamel), true)
			if rr.problem == "" {
				rr.token, rr.problem = jsonScalar("app_account_token", first(j.Token, j.TokenCamel), false)
			}
			if rr.problem == "" {
				rr.customer, rr.problem = jsonScalar("customer_id", first(j.Customer, j.CustomerCamel), true)
			}
			if rr.problem == "" {
				rr.receipt, rr.problem = jsonScalar("app_receipt", first(j.Receipt, j.ReceiptCamel), false)
			}
			if rr.problem == "" {
				rr.txReceipt, rr.problem = jsonScalar("transaction_receipt", first(j.TxReceipt, j.TxReceiptCamel), false)
			}
		}
		if err := row(rr); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("line %d is longer than %d bytes: this is not an import file", line+1, maxImportLine)
		}
		return fmt.Errorf("reading JSON Lines: %w", err)
	}
	return nil
}

func first(a, b json.RawMessage) json.RawMessage {
	if len(a) > 0 {
		return a
	}
	return b
}

// jsonScalar reads the JSON value of key as text: a string or, when
// numberOK, a number; null or absent is "". Anything else is a problem.
func jsonScalar(key string, raw json.RawMessage, numberOK bool) (string, string) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return "", ""
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", key + " is not JSON text: " + err.Error()
		}
		return s, ""
	case numberOK && (raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9'):
		return string(raw), ""
	}
	return "", fmt.Sprintf("%s is %s, not a string", key, clip(string(raw)))
}
