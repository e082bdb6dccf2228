package jobs

import (
	"context"
	"encoding/json"
	"fmt"
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
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/appstore/sim/simtest"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

// hookEnv is a migrated database, a River client, storesync's HTTP API
// (NewTestHTTPHandler) on an httptest server, and either a simulator or
// just a CA to sign with.
type hookEnv struct {
	t         testing.TB
	url       string // of the database
	pool      *pgxpool.Pool
	simulator *sim.Simulator // nil without Sim
	ca        *sim.CA
	deps      *Deps
	river     *river.Client[pgx.Tx]
	server    *httptest.Server
}

type hookEnvOptions struct {
	// Sim starts a simulator whose CA signs, and an App Store client on
	// it (production with sandbox fallback). Nil: only a CA, no client.
	Sim *sim.Options
	// Work starts River workers.
	Work bool
	// AdminToken enables the admin routes.
	AdminToken string
	// NoApple leaves Deps.Apple nil even with a simulator.
	NoApple bool
	// CA signs (and is trusted) when there is no simulator; nil: a new one.
	CA *sim.CA
	// JobTimeout bounds a job run; default 30s.
	JobTimeout time.Duration
	// Ingest is shared by the webhook and the workers, as in serve.
	Ingest *IngestGovernor
}

// NewTestHTTPHandler returns storesync's HTTP API (httpapi.NewHandler) for
// hookEnv's server, with the admin routes when adminToken is set. Package
// jobs/httpapi imports jobs, so the test files of package jobs cannot
// import it; main_test.go, in package jobs_test, sets this before any test
// runs.
var NewTestHTTPHandler func(d *Deps, client *river.Client[pgx.Tx], adminToken string) http.Handler

func newHookEnv(t testing.TB, o hookEnvOptions) *hookEnv {
	t.Helper()
	url, pool := migrationstest.NewDatabase(t)
	e := &hookEnv{t: t, url: url, pool: pool}
	now := time.Now
	if o.Sim != nil {
		e.simulator = simtest.StartTest(t, *o.Sim)
		e.ca = e.simulator.CA()
		now = e.simulator.Now
	} else if o.CA != nil {
		e.ca = o.CA
	} else {
		ca, err := sim.NewCA()
		if err != nil {
			t.Fatal(err)
		}
		e.ca = ca
	}
	roots := [][]byte{e.ca.RootDER()}
	v, err := appstore.NewVerifier(appstore.VerifierOptions{
		RootCertificates: roots, Environment: appstore.Production,
		BundleID: sim.DefaultBundleID, AppAppleID: sim.DefaultAppAppleID,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.deps = &Deps{
		Ledger: ledger.New(pool), Verifier: v, Metrics: NewMetrics(), Now: now,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Settings: Settings{RetryBase: 20 * time.Millisecond},
		Ingest:   o.Ingest,
	}
	if e.simulator != nil && !o.NoApple {
		key, err := appstore.ParsePrivateKey(e.simulator.PrivateKeyPEM())
		if err != nil {
			t.Fatal(err)
		}
		budget := appstore.NewRateBudget(appstore.DefaultRateLimits(appstore.Production, 1, nil), 1)
		budget.SetLimits(appstore.Sandbox, appstore.DefaultRateLimits(appstore.Sandbox, 1, nil))
		e.deps.Apple, err = appstore.NewClient(appstore.ClientOptions{
			KeyID: e.simulator.KeyID(), IssuerID: e.simulator.IssuerID(), BundleID: e.simulator.BundleID(), PrivateKey: key,
			Environment: appstore.Production, BaseURL: e.simulator.BaseURL(), SandboxBaseURL: e.simulator.SandboxURL(),
			SandboxFallback: true, Budget: budget,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	timeout := orDuration(o.JobTimeout, 30*time.Second)
	e.river, err = NewRiverClient(e.deps, ClientOptions{Work: o.Work, JobTimeout: timeout, RescueStuckJobsAfter: timeout + 10*time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if o.Work {
		if err := e.river.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = e.river.Stop(ctx)
		})
	}
	e.server = httptest.NewServer(NewTestHTTPHandler(e.deps, e.river, o.AdminToken))
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

// waitIdle waits until no job of kinds is waiting, running or retrying,
// then fails the test if any of them ended other than completed.
func (e *hookEnv) waitIdle(timeout time.Duration, kinds ...string) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		busy := e.count(`SELECT count(*) FROM river_job WHERE kind = ANY($1)
			AND state IN ('available', 'running', 'retryable', 'scheduled', 'pending')`, kinds)
		if busy == 0 {
			break
		}
		if time.Now().After(deadline) {
			rows, _ := e.pool.Query(context.Background(), `SELECT kind, state, attempt, errors::text FROM river_job
				WHERE kind = ANY($1) AND state <> 'completed' LIMIT 5`, kinds)
			var lines []string
			for rows.Next() {
				var kind, state, errs string
				var attempt int
				_ = rows.Scan(&kind, &state, &attempt, &errs)
				lines = append(lines, fmt.Sprintf("%s %s attempt %d %.300s", kind, state, attempt, errs))
			}
			e.t.Fatalf("jobs %v still busy after %s (%d): %v", kinds, timeout, busy, lines)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if bad := e.count(`SELECT count(*) FROM river_job WHERE kind = ANY($1) AND state <> 'completed'`, kinds); bad > 0 {
		var kind, state, errs string
		_ = e.pool.QueryRow(context.Background(), `SELECT kind, state, errors::text FROM river_job
			WHERE kind = ANY($1) AND state <> 'completed' LIMIT 1`, kinds).Scan(&kind, &state, &errs)
		e.t.Fatalf("%d jobs did not complete; e.g. %s %s: %.500s", bad, kind, state, errs)
	}
}

// captureContextArgs is the job workContext has worked.
type captureContextArgs struct{}

func (captureContextArgs) Kind() string { return "capture_work_context" }

// workContext returns a context as River gives a worker (holding a River
// client: processNotification enqueues imports through it), for a test or
// benchmark to call a worker's function directly, outside River's job
// machinery. It is the context of a job worked by a client made for that
// alone (stopped before returning: the imports enqueued through it are
// never worked), kept past its job.
func (e *hookEnv) workContext() context.Context {
	t := e.t
	got := make(chan context.Context, 1)
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, _ *river.Job[captureContextArgs]) error {
		got <- context.WithoutCancel(ctx)
		return nil
	}))
	client, err := river.NewClient(riverpgxv5.New(e.pool), &river.Config{Workers: workers,
		Queues: map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 1}}, SkipUnknownJobCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = client.Stop(context.Background()) }()
	if _, err := client.Insert(ctx, captureContextArgs{}, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case wctx := <-got:
		return wctx
	case <-ctx.Done():
		t.Fatal("the context-capturing job was not worked")
		return nil
	}
}
