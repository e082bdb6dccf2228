package jobs_test

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/robfig/cron/v3"

	"github.com/storesync/storesync/jobs"
)

// A run is named by the scheduled tick it stands for: a process started
// before tonight's 03:00 names last night's run (already done, so nothing
// runs twice), one started after it names tonight's.
func ExampleNightlyRunKey() {
	sched, _ := cron.ParseStandard("CRON_TZ=UTC 0 3 * * *")
	fmt.Println(jobs.NightlyRunKey(sched, time.Date(2026, 11, 2, 2, 59, 0, 0, time.UTC)))
	fmt.Println(jobs.NightlyRunKey(sched, time.Date(2026, 11, 2, 3, 0, 0, 0, time.UTC)))
	// Output:
	// nightly 2026-11-01T03:00:00Z
	// nightly 2026-11-02T03:00:00Z
}

// The default cap: 25% of a day of Apple's production statuses limit.
func ExampleReconcileCallCap() {
	fmt.Println(jobs.ReconcileCallCap(50, 0.25, 0))
	fmt.Println(jobs.ReconcileCallCap(50, 0.25, 20_000)) // STORESYNC_RECONCILE_BUDGET=20000
	// Output:
	// 1080000
	// 20000
}

// Asking for a reconciliation now, as `storesync reconcile` does: a
// running `storesync serve` works it; asking again within the minute
// returns the same job.
func ExampleReconcileArgs() {
	var client *river.Client[pgx.Tx] // jobs.NewRiverClient(deps, jobs.ClientOptions{})
	if client == nil {
		return
	}
	res, err := client.Insert(context.Background(), jobs.ReconcileArgs{
		RunKey:    jobs.ManualRunKey(time.Now()),
		CallCap:   jobs.ReconcileCallCap(50, 0.25, 0),
		FullCycle: 7 * 24 * time.Hour,
	}, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println("job", res.Job.ID, "duplicate:", res.UniqueSkippedAsDuplicate)
}
