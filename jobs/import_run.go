package jobs

import (
	"context"
	"fmt"
	"io"

	"github.com/storesync/storesync/ledger"
)

// Run is one whole import: it records a new import run of source (a file
// name, or "-" for standard input; `storesync status` lists it), imports r
// as that run's rows (see Import) and records the counts, marking the file
// as read completely. It returns the run's id and counts.
//
// ImporterOptions.Started, when set, is given the run's id before the
// first row is read, so that the rejects file and progress can be named
// after it.
//
// When reading stops early (ctx ends, or a database or read error), the run
// is left unfinished ("file not read completely" in status) and the id and
// the counts so far are returned with the error: rows already stored stay
// imported, so importing the same file again finishes the job. runID is 0
// only when the run could not be recorded at all.
func (im *Importer) Run(ctx context.Context, source string, r io.Reader) (runID int64, counts ledger.ImportCounts, err error) {
	runID, err = im.opts.Ledger.CreateImportRun(ctx, source)
	if err != nil {
		return 0, counts, err
	}
	if im.opts.HoldEvents { // before any job of the run can change the ledger
		if err := im.opts.Ledger.HoldImportEvents(ctx, runID); err != nil {
			return runID, counts, fmt.Errorf("holding the run's events: %w", err)
		}
	}
	if im.opts.Started != nil {
		im.opts.Started(runID)
	}
	if counts, err = im.Import(ctx, runID, r); err != nil {
		return runID, counts, err
	}
	return runID, counts, im.opts.Ledger.FinishImportRun(ctx, runID, counts)
}
