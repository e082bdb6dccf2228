package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/jobs"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

// hookEnv is a migrated database, an insert-only River client, the HTTP
// API on an httptest server, and a CA to sign notifications with. (Package
// jobs has its own, with a simulator and workers, for the tests that
// deliver notifications to be processed.)
type hookEnv struct {
	t      testing.TB
	url    string // of the database
	pool   *pgxpool.Pool
	ca     *sim.CA
	deps   *jobs.Deps
	river  *river.Client[pgx.Tx]
	server *httptest.Server
}

type hookEnvOptions struct {
	// AdminToken enables the admin routes.
	AdminToken string
	// ExtraRoots are trusted besides the CA's root.
	ExtraRoots [][]byte
	// HTTP configures the handler (AdminToken above wins).
	HTTP Options
}

func newHookEnv(t testing.TB, o hookEnvOptions) *hookEnv {
	t.Helper()
	url, pool := migrationstest.NewDatabase(t)
	e := &hookEnv{t: t, url: url, pool: pool}
	ca, err := sim.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	e.ca = ca
	roots := append([][]byte{e.ca.RootDER()}, o.ExtraRoots...)
	v, err := appstore.NewVerifier(appstore.VerifierOptions{
		RootCertificates: roots, Environment: appstore.Production,
		BundleID: sim.DefaultBundleID, AppAppleID: sim.DefaultAppAppleID,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.deps = &jobs.Deps{
		Ledger: ledger.New(pool), Verifier: v, Metrics: jobs.NewMetrics(), Now: time.Now,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Settings: jobs.Settings{RetryBase: 20 * time.Millisecond},
	}
	timeout := 30 * time.Second
	e.river, err = jobs.NewRiverClient(e.deps, jobs.ClientOptions{JobTimeout: timeout, RescueStuckJobsAfter: timeout + 10*time.Second})
	if err != nil {
		t.Fatal(err)
	}
	httpOpts := o.HTTP
	if o.AdminToken != "" {
		httpOpts.AdminToken = o.AdminToken
	}
	e.server = httptest.NewServer(NewHandler(e.deps, e.river, httpOpts))
	t.Cleanup(e.server.Close)
	return e
}

// post sends body to the webhook and returns the status code.
func (e *hookEnv) post(body []byte) int {
	e.t.Helper()
	resp, err := http.Post(e.server.URL+"/webhooks/appstore", "application/json", strings.NewReader(string(body)))
	if err != nil {
		e.t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// postSigned wraps a signedPayload in the webhook body and posts it.
func (e *hookEnv) postSigned(signed string) int {
	e.t.Helper()
	body, _ := json.Marshal(map[string]string{"signedPayload": signed})
	return e.post(body)
}

// count returns SELECT count(*) of a query.
func (e *hookEnv) count(q string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}
