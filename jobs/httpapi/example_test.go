package httpapi_test

import (
	"context"
	"log"
	"net/http"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/jobs"
	"github.com/storesync/storesync/jobs/httpapi"
	"github.com/storesync/storesync/ledger"
)

// ExampleNewHandler serves the webhook, /healthz, /metrics and the admin
// API next to the workers, as `storesync serve` does.
func ExampleNewHandler() {
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
	deps := &jobs.Deps{Ledger: ledger.New(pool), Verifier: verifier, Metrics: jobs.NewMetrics()}
	client, err := jobs.NewRiverClient(deps, jobs.ClientOptions{Work: true, BackfillCron: "0 * * * *"})
	if err != nil {
		log.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		log.Fatal(err)
	}
	h := httpapi.NewHandler(deps, client, httpapi.Options{AdminToken: "a-long-random-admin-token"})
	log.Fatal(http.ListenAndServe(":8080", h))
}
