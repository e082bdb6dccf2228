package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/storesync/storesync/ledger"
)

// writeCompactionStatus prints one line on the certificate compaction
// (migration 011): whether rows stored with their full certificate chain
// are still being rewritten compact, and how far the pass is.
func writeCompactionStatus(ctx context.Context, s *statusContext, w io.Writer) error {
	p, err := s.Ledger.CompactionProgress(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, compactionLine(p))
	return nil
}

// compactionLine is the progress in one line, as `status` and `compact
// --wait` print it.
func compactionLine(p ledger.Compaction) string {
	if len(p) == 0 {
		return "no compaction recorded"
	}
	scanned, compacted, kept := p.Totals()
	counts := fmt.Sprintf("%s rows walked, %s compacted, %s kept whole", withCommas(scanned), withCommas(compacted), withCommas(kept))
	if p.Done() {
		var last time.Time
		for _, t := range p {
			if t.FinishedAt != nil && t.FinishedAt.After(last) {
				last = *t.FinishedAt
			}
		}
		return fmt.Sprintf("pass %d done %s: %s", p[0].Pass, last.UTC().Format(time.RFC3339), counts)
	}
	done := 0
	current := ""
	for _, t := range p {
		if t.FinishedAt != nil {
			done++
		} else if current == "" {
			current = t.Table
		}
	}
	return fmt.Sprintf("pass %d running (%d of %d tables done, now %s): %s so far; `storesync serve` works it",
		p[0].Pass, done, len(p), current, counts)
}
