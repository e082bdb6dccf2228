package main

import (
	"context"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/appstore/sim/simtest"
	"github.com/storesync/storesync/config"
)

func TestServeConnectionsSplit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		max                      int
		pooler                   config.Pooler
		wantPool, wantCommitters int
	}{
		{16, config.PoolerNone, 15, 2}, // one connection is River's LISTEN
		{16, config.PoolerPgBouncerTransaction, 16, 2},
		{4, config.PoolerNone, 3, 1},
		{4, config.PoolerPgBouncerTransaction, 4, 1},
		{6, config.PoolerNone, 5, 1},
	} {
		pool, committers := serveConnections(&config.Config{DBMaxConns: tc.max, Pooler: tc.pooler})
		if int(pool) != tc.wantPool || committers != tc.wantCommitters {
			t.Errorf("max %d, %s: pool %d, committers %d; want %d, %d", tc.max, tc.pooler, pool, committers, tc.wantPool, tc.wantCommitters)
		}
	}
}

// A serve process migrating subscribers with 60 bulk workers never holds
// more than STORESYNC_DB_MAX_CONNS connections, River's LISTEN included.
func TestServeStaysWithinDBMaxConns(t *testing.T) {
	t.Parallel()
	const bound = 5
	simulator := simtest.StartTest(t, sim.Options{Seed: 12, Subscribers: 80})
	env := simCLIEnv(t, simulator)
	direct := env["DATABASE_URL"]
	serveEnv := map[string]string{}
	for k, v := range env {
		serveEnv[k] = v
	}
	u, err := url.Parse(direct)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", "storesync-serve-bound") // tells serve's connections from the others
	u.RawQuery = q.Encode()
	serveEnv["DATABASE_URL"] = u.String()
	serveEnv["STORESYNC_DB_MAX_CONNS"] = strconv.Itoa(bound)
	startServe(t, serveEnv, "--bulk-workers", "60")
	check := openTestPool(t, direct)

	ctx, cancel := context.WithCancel(context.Background())
	peak := make(chan int, 1)
	go func() {
		most := 0
		defer func() { peak <- most }()
		for ctx.Err() == nil {
			var n int
			if err := check.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
				WHERE application_name = 'storesync-serve-bound'`).Scan(&n); err == nil {
				most = max(most, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	code, stdout, stderr := runCLI(t, env, "import", truthFile(t, simulator.Truth(), ""), "--wait")
	cancel()
	most := <-peak
	if code != 0 {
		t.Fatalf("import --wait: code %d\n%s%s", code, stdout, stderr)
	}
	if most > bound || most == 0 {
		t.Fatalf("serve held up to %d connections; STORESYNC_DB_MAX_CONNS=%d", most, bound)
	}
	t.Logf("serve held at most %d connections (bound %d) while 60 bulk workers migrated %d subscriptions", most, bound, len(simulator.Truth()))
}
