package jobs_test

import (
	"net/http"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/storesync/storesync/jobs"
	"github.com/storesync/storesync/jobs/httpapi"
)

// TestMain gives the tests of package jobs storesync's real HTTP API:
// they deliver notifications through the webhook and re-sync through the
// admin API as Apple and ops do. Only this external test package may import
// jobs/httpapi (which imports jobs).
func TestMain(m *testing.M) {
	jobs.NewTestHTTPHandler = func(d *jobs.Deps, client *river.Client[pgx.Tx], adminToken string) http.Handler {
		return httpapi.NewHandler(d, client, httpapi.Options{AdminToken: adminToken})
	}
	os.Exit(m.Run())
}
