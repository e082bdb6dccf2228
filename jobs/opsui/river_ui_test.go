package opsui_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/storesync/storesync/jobs"
	"github.com/storesync/storesync/jobs/opsui"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

// queueOnlyDeps is a console's dependencies on a fresh database: a ledger
// and a River client that inserts but works nothing.
func queueOnlyDeps(t *testing.T) (*jobs.Deps, *river.Client[pgx.Tx]) {
	t.Helper()
	_, pool := migrationstest.NewDatabase(t)
	deps := &jobs.Deps{Ledger: ledger.New(pool), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: time.Now}
	client, err := jobs.NewRiverClient(deps, jobs.ClientOptions{JobTimeout: time.Minute, RescueStuckJobsAfter: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return deps, client
}

// TestRiverUIRunsOnlyWhileUsed: River UI's background job counts do not
// run until a logged-in request asks for River UI (a probe without a
// session starts nothing), stop once it went idle, and start again with
// the next request, which River UI answers as before.
func TestRiverUIRunsOnlyWhileUsed(t *testing.T) {
	t.Parallel()
	deps, client := queueOnlyDeps(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const idle = 2 * time.Second
	c, err := opsui.New(ctx, deps, client, opsui.Options{AdminToken: adminToken, RiverUIIdleStop: idle})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	defer srv.Close()
	e := &consoleEnv{url: srv.URL}
	states := srv.URL + "/riverui/api/states"

	if running, starts := opsui.RiverUIRuns(c); running || starts != 0 {
		t.Fatalf("after New: running %t, %d runs; want nothing running before anyone asks", running, starts)
	}
	if code, _ := getPage(t, http.DefaultClient, states); code != http.StatusUnauthorized {
		t.Fatalf("GET %s without a session answered %d, want 401", states, code)
	}
	if running, _ := opsui.RiverUIRuns(c); running {
		t.Fatal("a request without a session started River UI")
	}

	hc := loggedIn(t, e)
	for run := 1; run <= 2; run++ {
		if code, body := getPage(t, hc, states); code != http.StatusOK {
			t.Fatalf("run %d: GET %s answered %d: %s", run, states, code, body)
		}
		if running, starts := opsui.RiverUIRuns(c); !running || starts != run {
			t.Fatalf("after a logged-in request: running %t, %d runs; want running, run %d", running, starts, run)
		}
		// Requests closer together than the idle time keep it running.
		for range 3 {
			time.Sleep(idle / 8)
			if code, _ := getPage(t, hc, states); code != http.StatusOK {
				t.Fatalf("run %d: GET %s answered %d", run, states, code)
			}
		}
		if running, starts := opsui.RiverUIRuns(c); !running || starts != run {
			t.Fatalf("while used: running %t, %d runs; want the same run %d going on", running, starts, run)
		}
		deadline := time.Now().Add(10 * idle)
		for {
			running, _ := opsui.RiverUIRuns(c)
			if !running {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("run %d: River UI still running %s after its last request (idle stop %s)", run, 10*idle, idle)
			}
			time.Sleep(idle / 10)
		}
	}
}

// TestRiverUIIdleStopValidated: a negative idle stop is refused by name.
func TestRiverUIIdleStopValidated(t *testing.T) {
	t.Parallel()
	deps, client := queueOnlyDeps(t)
	_, err := opsui.New(context.Background(), deps, client, opsui.Options{AdminToken: adminToken, RiverUIIdleStop: -time.Second})
	if err == nil || !strings.Contains(err.Error(), "RiverUIIdleStop") || !strings.Contains(err.Error(), "negative") {
		t.Fatalf("RiverUIIdleStop -1s: err %v, want one naming the option", err)
	}
}
