package jobs_test

import (
	"fmt"
	"log"
	"time"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/jobs"
)

// ExampleBackfillRequest_Windows shows how `storesync backfill` splits a
// span into one-day windows and clamps it to Apple's look-back.
func ExampleBackfillRequest_Windows() {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	windows, notes, err := jobs.BackfillRequest{
		Environments: []appstore.Environment{appstore.Sandbox},
		Since:        now.Add(-32 * 24 * time.Hour),
		Until:        now.Add(-27 * 24 * time.Hour),
		Now:          now,
	}.Windows()
	if err != nil {
		log.Fatal(err)
	}
	for _, n := range notes {
		fmt.Println("note:", n)
	}
	for _, w := range windows {
		fmt.Println(w.Environment, w.Start.Format(time.RFC3339), "→", w.End.Format(time.RFC3339))
	}
	// Output:
	// note: Sandbox: starts at 2026-10-23T13:00:00Z, the limit of Apple's 30-day look-back
	// Sandbox 2026-10-23T13:00:00Z → 2026-10-24T13:00:00Z
	// Sandbox 2026-10-24T13:00:00Z → 2026-10-25T13:00:00Z
	// Sandbox 2026-10-25T13:00:00Z → 2026-10-26T12:00:00Z
}
