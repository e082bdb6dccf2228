package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/storesync/storesync/jobs"
	"github.com/storesync/storesync/ledger"
)

// importCommand is `storesync import`; main.go lists it in commands.
func importCommand() *command {
	return &command{
		name:    "import",
		summary: "import subscribers by originalTransactionId: one migration job per subscription",
		usage: `storesync import FILE|- [--wait] [--rejects PATH] [--batch N]

Reads FILE (or standard input for -), CSV with the header
original_transaction_id,app_account_token,customer_id (only the first column
is required) or JSON Lines with the same keys, streaming it whatever its
size. Every valid row becomes an import row with one job that migrates the
subscription from Apple (run by storesync serve); a subscription already
imported, by this file or an earlier one, is skipped, so running the same
file again enqueues nothing new.

Migrating from verifyReceipt: instead of original_transaction_id a row may
give app_receipt (the base64 app receipt the app sent) or
transaction_receipt (a StoreKit 1 transaction receipt), with customer_id and
optionally app_account_token (JSON Lines: appReceipt, transactionReceipt).
The receipt is read locally for a transaction id; a job then asks Apple
(Get Transaction Info) which subscription that is and imports it. Several
receipts of one customer cost one Apple call. A receipt with no in-app
purchase, or that does not parse, is a rejected row.

Rows that fail validation (originalTransactionId: a decimal of at most 20
digits; appAccountToken: a UUID; customer id: at most 255 characters) are
written, with their line number and the reason, to FILE.rejects, or to
import-RUN.rejects in the current directory for standard input; the other
rows are imported all the same.

  --wait         follow the import until every row is done or failed, and
                 so is every other subscription Apple named beside them
                 (the same customers' other subscriptions): a live line
                 with done/total, rate, ETA, 429s and failures, then a
                 summary. Ctrl-C stops following, not the import.
  --rejects PATH where to write rejected rows
  --batch N      rows stored per transaction (default 2000)

Linking customers at Apple:
  --set-app-account-token
                 after the import (waited for, as --wait), set Apple's
                 appAccountToken of each subscription whose Apple token is
                 empty to the row's app_account_token; a row with only a
                 customer_id gets the UUIDv5 of the customer id in namespace
                 jobs.CustomerTokenNamespace (the app can compute it too).
                 Family-shared and sandbox subscriptions are skipped. Each
                 change is a job (storesync serve works it) that checks
                 Apple's current token, records who/when/old/new in the
                 ledger, calls Set App Account Token from the shared budget
                 and re-reads the subscription. Running it again changes
                 nothing.
  --overwrite-app-account-token
                 also replace a different token Apple has (never by default)
  --dry-run      with --set-app-account-token: print what would change,
                 from the ledger, and change nothing (no import, no call)
  --actor NAME   who is recorded with each change (default $USER@host)

Change feed:
  --events MODE  send (default): the change-feed webhooks of this import go
                 out as they happen; hold: they wait for
                 "storesync events release RUN" (the feed has them at once)`,
		run: runImport,
	}
}

func runImport(ctx context.Context, c *cli, args []string) error {
	fset := flag.NewFlagSet("import", flag.ContinueOnError)
	wait := fset.Bool("wait", false, "")
	rejectsPath := fset.String("rejects", "", "")
	batch := fset.Int("batch", 2000, "")
	tok := tokenFlags(fset)
	events := fset.String("events", "send", "")
	rest, err := parseFlags(fset, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usagef("give one FILE to import, or - for standard input")
	}
	if *events != "send" && *events != "hold" {
		return usagef("--events %q: use send or hold", *events)
	}
	if *batch < 1 || *batch > 50_000 {
		return usagef("--batch %d: use 1..50000 rows per transaction", *batch)
	}
	source := rest[0]
	if err := tok.validate(source); err != nil {
		return err
	}
	// The file first: a wrong path fails without a database.
	var in io.Reader = c.stdin
	if source != "-" {
		f, err := os.Open(source)
		if err != nil {
			return fmt.Errorf("opening the import file: %w", err)
		}
		defer f.Close()
		in = f
	}
	s, err := openSession(ctx, c)
	if err != nil {
		return err
	}
	defer s.Close()
	if *tok.dryRun {
		return setAppAccountTokens(ctx, c, s, source, tok) // reads the ledger only: no import, no Apple call
	}

	defaultRejects := *rejectsPath == ""
	if defaultRejects && source != "-" {
		*rejectsPath = source + ".rejects"
	}
	rejects := &lazyFile{path: *rejectsPath}
	defer rejects.Close()

	var run int64
	progress := newLiveLine(c.stdout)
	started := time.Now()
	im, err := jobs.NewImporter(jobs.ImporterOptions{
		Ledger: s.ledger, River: s.river, BatchSize: *batch, Rejects: rejects, HoldEvents: *events == "hold",
		Started: func(id int64) {
			run = id
			if *rejectsPath == "" { // standard input: named after the run
				*rejectsPath = fmt.Sprintf("import-%d.rejects", id)
				rejects.path = *rejectsPath
			}
		},
		Progress: func(n ledger.ImportCounts) {
			progress.update(fmt.Sprintf("import run %d: %s rows enqueued, %s already imported", run,
				withCommas(n.Enqueued), withCommas(n.Duplicates)))
		},
	})
	if err != nil {
		return err
	}
	run, counts, err := im.Run(ctx, source, in)
	progress.clear()
	switch {
	case err != nil && run == 0:
		return err
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("import run %d interrupted after %s rows (%s enqueued): run the same import again to finish it", run, withCommas(counts.Rows), withCommas(counts.Enqueued))
	case err != nil:
		return fmt.Errorf("import run %d: %w (rows stored so far stay imported; run the same import again to finish it)", run, err)
	}
	if err := rejects.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", *rejectsPath, err)
	}
	elapsed := time.Since(started)
	fmt.Fprintf(c.stdout, "import run %d (%s): %s rows read in %s (%s rows/s): %s enqueued, %s duplicates or already imported, %s rejected\n",
		run, source, withCommas(counts.Rows), elapsed.Round(time.Millisecond), withCommas(int64(float64(counts.Rows)/max(elapsed.Seconds(), 1e-3))),
		withCommas(counts.Enqueued), withCommas(counts.Duplicates), withCommas(counts.Rejected))
	if counts.Rejected > 0 {
		fmt.Fprintf(c.stdout, "rejected rows (line, reason, row) are in %s\n", *rejectsPath)
	} else if defaultRejects && source != "-" {
		// A rejects file of an earlier run of this file would mislead.
		if err := os.Remove(*rejectsPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(c.stderr, "storesync import: removing the stale %s: %v\n", *rejectsPath, err)
		}
	}
	if *tok.set {
		// The tokens are set on subscriptions the ledger knows: wait for them.
		if err := followImport(ctx, c, s.ledger, run, started); err != nil || ctx.Err() != nil {
			return err
		}
		return setAppAccountTokens(ctx, c, s, source, tok)
	}
	if !*wait {
		if counts.Enqueued > 0 {
			fmt.Fprintf(c.stdout, "storesync serve works the jobs; follow them with storesync status\n")
		}
		return nil
	}
	return followImport(ctx, c, s.ledger, run, started)
}

// followImport prints the progress of run until every row is done or
// failed, then a summary. The end of ctx (Ctrl-C) stops following only.
func followImport(ctx context.Context, c *cli, l *ledger.Ledger, run int64, since time.Time) error {
	progress := newLiveLine(c.stdout)
	f, err := jobs.FollowImport(ctx, l, run, jobs.FollowImportOptions{Since: since, Progress: func(f jobs.ImportFollow) {
		p := f.Progress
		eta := "unknown"
		if d, ok := f.ETA(); ok {
			eta = d.String()
		}
		currentETA := "unknown"
		if d, ok := f.CurrentETA(); ok {
			currentETA = d.String()
		}
		// Two phases: current state (statuses) runs ahead of full history.
		line := fmt.Sprintf("import run %d: current state %s/%s (%.0f rows/s, ETA %s); full history %s/%s done (%.1f%%), %s failed, %.0f rows/s, ETA %s; 429s %s",
			run, withCommas(p.Total-p.CurrentWaiting), withCommas(p.Total), f.CurrentPerSecond, currentETA,
			withCommas(p.Done), withCommas(p.Total), 100*float64(p.Done+p.Failed)/float64(max(p.Total, 1)),
			withCommas(p.Failed), f.RowsPerSecond, eta, withCommas(f.Throttled))
		if f.SiblingsImporting > 0 {
			line += fmt.Sprintf("; %s jobs still importing subscriptions not in the file that Apple named beside its rows", withCommas(f.SiblingsImporting))
		}
		progress.update(line)
	}})
	progress.clear()
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		fmt.Fprintf(c.stdout, "stopped following import run %d (%s of %s rows finished); the import goes on: storesync status shows its progress\n",
			run, withCommas(f.Progress.Done+f.Progress.Failed), withCommas(f.Progress.Total))
		return nil
	}
	if err != nil {
		return err
	}
	printImportSummary(c.stdout, f)
	return nil
}

// printImportSummary prints a finished run: rows migrated and failed, time
// and 429s, then the most common failure reasons.
func printImportSummary(w io.Writer, f jobs.ImportFollow) {
	p := f.Progress
	if p.Total == 0 {
		fmt.Fprintf(w, "import run %d: nothing new to import\n", f.RunID)
		return
	}
	beside := ""
	if f.Siblings > 0 {
		beside = fmt.Sprintf(" (and %s more that Apple named beside them: the same customers' other subscriptions)", withCommas(f.Siblings))
	}
	fmt.Fprintf(w, "import run %d finished: %s subscriptions migrated%s, %s failed, in %s; Apple answered 429 %s times\n",
		f.RunID, withCommas(p.Done), beside, withCommas(p.Failed), f.Elapsed.Round(time.Second), withCommas(f.Throttled))
	if p.Failed == 0 {
		return
	}
	fmt.Fprintln(w, "failures by reason:")
	for _, r := range f.Failures {
		fmt.Fprintf(w, "  %8s  %s\n", withCommas(r.Rows), r.Reason)
	}
}

// lazyFile creates its file at the first Write, so a clean import leaves
// no empty rejects file behind.
type lazyFile struct {
	path string
	f    *os.File
	err  error
}

func (l *lazyFile) Write(p []byte) (int, error) {
	if l.f == nil && l.err == nil {
		l.f, l.err = os.Create(l.path)
	}
	if l.err != nil {
		return 0, l.err
	}
	return l.f.Write(p)
}

// Close closes the file if it was created; closing twice is harmless.
func (l *lazyFile) Close() error {
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	if err != nil && !errors.Is(err, os.ErrClosed) {
		l.err = err
		return err
	}
	l.err = errors.New("closed")
	return nil
}

// liveLine rewrites one line in place on a terminal; elsewhere (a log,
// a pipe) it prints a line every 10 s, so logs do not fill with updates.
type liveLine struct {
	w        io.Writer
	terminal bool
	shown    bool
	last     time.Time
}

func newLiveLine(w io.Writer) *liveLine {
	p := &liveLine{w: w}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.terminal = true
		}
	}
	return p
}

func (p *liveLine) update(s string) {
	now := time.Now()
	switch {
	case p.terminal:
		if now.Sub(p.last) < 200*time.Millisecond {
			return
		}
		fmt.Fprintf(p.w, "\r\033[K%s", s)
		p.shown = true
	case now.Sub(p.last) >= 10*time.Second:
		fmt.Fprintln(p.w, s)
	default:
		return
	}
	p.last = now
}

func (p *liveLine) clear() {
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
	}
}

// withCommas formats n with thousands separators (1,000,000), as the ops
// console does.
func withCommas(n int64) string { return jobs.Commas(n) }
