package jobs_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/jobs"
	"github.com/storesync/storesync/ledger"
)

// ExampleNewHTTPHandler serves the webhook, /healthz, /metrics and the
// admin API next to the workers, as `storesync serve` does.
func ExampleNewHTTPHandler() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://127.0.0.1:5432/storesync")
	if err != nil {
		log.Fatal(err)
	}
	verifier, err := appstore.NewVerifier(appstore.VerifierOptions{
		Environment: appstore.Production, BundleID: "com.example.app", AppAppleID: 1234567890,
	})
	if err != nil {
		log.Fatal(err)
	}
	deps := &jobs.Deps{Pool: pool, Ledger: ledger.New(pool), Verifier: verifier, Metrics: jobs.NewMetrics()}
	client, err := jobs.NewRiverClient(deps, jobs.ClientOptions{Work: true, BackfillCron: "0 * * * *"})
	if err != nil {
		log.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		log.Fatal(err)
	}
	h := jobs.NewHTTPHandler(deps, client, jobs.HTTPOptions{AdminToken: "a-long-random-admin-token"})
	log.Fatal(http.ListenAndServe(":8080", h))
}

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
