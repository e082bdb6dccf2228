package jobs_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/jobs"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/ledger/budget"
)

// Every process of an app shares one Apple budget through the database:
// build a budget.Postgres with the app's limits and give it to the App Store
// client; then import a file of subscribers as unique jobs, which the
// workers of `storesync serve` migrate.
func Example_import() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL")) // migrated with storesync migrate
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	shared, err := budget.NewPostgres(budget.PostgresOptions{
		Pool: pool, App: "com.example.app",
		Limits: map[appstore.Environment]map[appstore.Endpoint]float64{
			appstore.Production: appstore.DefaultRateLimits(appstore.Production, 1, nil),
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = appstore.ClientOptions{Budget: shared} // with the key, bundle id and environment

	deps := &jobs.Deps{Ledger: ledger.New(pool)}
	client, err := jobs.NewRiverClient(deps, jobs.ClientOptions{}) // insert-only
	if err != nil {
		log.Fatal(err)
	}
	file, err := os.Open("subscribers.csv")
	if err != nil {
		log.Fatal(err)
	}
	defer file.Close()
	importer, err := jobs.NewImporter(jobs.ImporterOptions{Ledger: deps.Ledger, River: client, Rejects: os.Stderr})
	if err != nil {
		log.Fatal(err)
	}
	// One run: recorded, every row stored with its job, then finished.
	_, counts, err := importer.Run(ctx, "subscribers.csv", file)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d rows: %d enqueued, %d already imported, %d rejected\n",
		counts.Rows, counts.Enqueued, counts.Duplicates, counts.Rejected)
}
