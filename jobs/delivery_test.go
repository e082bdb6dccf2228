package jobs_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/jobs"
	"github.com/storesync/storesync/jobs/jobstest"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

type proRules struct{}

func (proRules) Grants(product, env string) []string { return []string{"pro"} }

// TestDeliveryOutlivesAReceiverOutage closes the receiver mid-stream and
// opens it again on the same address: every event arrives, each
// subscription's in feed order, every signature verifies.
func TestDeliveryOutlivesAReceiverOutage(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	l := ledger.New(pool).WithEntitlements(proRules{})
	deps := &jobs.Deps{
		Ledger: l, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Settings: jobs.Settings{Delivery: jobs.DeliverySettings{MaxBackoff: 300 * time.Millisecond, Client: &http.Client{Timeout: 2 * time.Second}}},
	}
	client, err := jobs.NewRiverClient(deps, jobs.ClientOptions{Work: true, EventFanOutEvery: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	rc, err := jobstest.NewFeedReceiver(secret)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	srv := httptest.NewUnstartedServer(rc)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	if _, err := l.AddEndpoint(ctx, "http://"+addr+"/hook", secret); err != nil {
		t.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stopCtx, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		_ = client.Stop(stopCtx)
	}()

	const subs, steps = 8, 6
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	apply := func(step int) {
		for s := range subs {
			otid := "70" + strconv.Itoa(s)
			f := ledger.Facts{Statuses: []ledger.StatusObservation{{OriginalTransactionID: otid, Status: 1 + step%2, SignedDate: appstore.MillisOf(base.Add(time.Duration(step+1) * time.Hour))}}}
			if step == 0 {
				tx := &appstore.TransactionPayload{TransactionID: otid + "1", OriginalTransactionID: otid, ProductID: "p",
					PurchaseDate: appstore.MillisOf(base), ExpiresDate: appstore.MillisOf(base.AddDate(1, 0, 0)),
					Environment: appstore.Production, SignedDate: appstore.MillisOf(base)}
				f.Transactions = []ledger.SignedTransaction{{Payload: tx, JWS: "jws-" + otid}}
			}
			if _, err := l.Apply(ctx, f); err != nil {
				t.Fatal(err)
			}
		}
	}
	for step := range steps / 2 {
		apply(step)
	}
	received := func() int { total, _, _ := rc.Counts(); return total }
	waitFor(t, 20*time.Second, func() bool { return received() > 0 })
	srv.Close() // the backend goes down mid-stream
	for step := steps / 2; step < steps; step++ {
		apply(step)
	}
	time.Sleep(time.Second) // attempts fail meanwhile
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv2 := httptest.NewUnstartedServer(rc)
	srv2.Listener.Close()
	srv2.Listener = ln2
	srv2.Start()
	defer srv2.Close()

	var want int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM subscription_events`).Scan(&want); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 120*time.Second, func() bool { return received() == want })
	var retried int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM event_deliveries WHERE attempts > 1`).Scan(&retried); err != nil {
		t.Fatal(err)
	}
	if retried == 0 {
		t.Fatal("no delivery failed while the receiver was down: the outage was not exercised")
	}
	if _, _, badSig := rc.Counts(); badSig > 0 {
		t.Fatalf("%d requests failed signature verification", badSig)
	}
	bySub := rc.Events()
	for s := range subs {
		otid := "70" + strconv.Itoa(s)
		evs, err := l.SubscriptionEvents(ctx, otid)
		if err != nil {
			t.Fatal(err)
		}
		got := bySub[otid]
		if len(got) != len(evs) {
			t.Fatalf("%s: received %d events, ledger has %d", otid, len(got), len(evs))
		}
		for i, e := range evs {
			if got[i] != e.ID {
				t.Fatalf("%s: received %v, want feed order of %d events", otid, got, len(evs))
			}
		}
	}
}

func waitFor(t *testing.T, d time.Duration, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !ok(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not done after %s", d)
		}
	}
}

// TestDeadLetterAndRedeliver: an endpoint failing for longer than DeadAfter
// gets its events dead-lettered; once fixed, RedeliverDead delivers them.
func TestDeadLetterAndRedeliver(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	l := ledger.New(pool).WithEntitlements(proRules{})
	deps := &jobs.Deps{
		Ledger: l, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Settings: jobs.Settings{Delivery: jobs.DeliverySettings{DeadAfter: 500 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}},
	}
	client, err := jobs.NewRiverClient(deps, jobs.ClientOptions{Work: true, EventFanOutEvery: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	up := false
	got := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if !up {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		got++
	}))
	defer srv.Close()
	ep, err := jobs.AddEndpoint(ctx, l, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stopCtx, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		_ = client.Stop(stopCtx)
	}()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tx := &appstore.TransactionPayload{TransactionID: "801", OriginalTransactionID: "80", ProductID: "p",
		PurchaseDate: appstore.MillisOf(base), ExpiresDate: appstore.MillisOf(base.AddDate(1, 0, 0)),
		Environment: appstore.Production, SignedDate: appstore.MillisOf(base)}
	if _, err := l.Apply(ctx, ledger.Facts{Transactions: []ledger.SignedTransaction{{Payload: tx, JWS: "jws"}}}); err != nil {
		t.Fatal(err)
	}
	dead := func() int64 {
		st, err := l.DeliveryStatus(ctx)
		if err != nil || len(st) != 1 {
			t.Fatalf("status %+v %v", st, err)
		}
		return st[0].Dead
	}
	waitFor(t, 60*time.Second, func() bool { return dead() == 2 }) // created + granted, both given up
	mu.Lock()
	up = true
	mu.Unlock()
	if n, err := jobs.RedeliverDead(ctx, l, client, ep.ID); err != nil || n != 1 {
		t.Fatalf("redeliver: %d queues, %v", n, err)
	}
	waitFor(t, 60*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return got == 2 })
	if d := dead(); d != 0 {
		t.Fatalf("%d still dead", d)
	}
	if err := jobs.ValidateEndpointURL("http://backend.example.com/hook"); err == nil {
		t.Fatal("plain http to a remote host accepted")
	}
}

// TestHeldImportEventsWaitForRelease: an import's webhooks (and the later
// ones of the same subscription) wait until the run is released.
func TestHeldImportEventsWaitForRelease(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	l := ledger.New(pool).WithEntitlements(proRules{})
	deps := &jobs.Deps{Ledger: l, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	client, err := jobs.NewRiverClient(deps, jobs.ClientOptions{Work: true, EventFanOutEvery: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var got []int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e ledger.Event
		_ = json.NewDecoder(r.Body).Decode(&e)
		mu.Lock()
		got = append(got, e.ID)
		mu.Unlock()
	}))
	defer srv.Close()
	if _, err := jobs.AddEndpoint(ctx, l, srv.URL); err != nil {
		t.Fatal(err)
	}
	run, err := l.CreateImportRun(ctx, "test.csv")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.HoldImportEvents(ctx, run); err != nil {
		t.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stopCtx, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		_ = client.Stop(stopCtx)
	}()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tx := &appstore.TransactionPayload{TransactionID: "901", OriginalTransactionID: "90", ProductID: "p",
		PurchaseDate: appstore.MillisOf(base), ExpiresDate: appstore.MillisOf(base.AddDate(1, 0, 0)),
		Environment: appstore.Production, SignedDate: appstore.MillisOf(base)}
	importCtx := ledger.WithCause(ctx, ledger.Cause{Job: "import", ImportRun: run})
	if _, err := l.Apply(importCtx, ledger.Facts{Transactions: []ledger.SignedTransaction{{Payload: tx, JWS: "jws"}}}); err != nil {
		t.Fatal(err)
	}
	// A webhook's expiry of the same subscription, after the import.
	if _, err := l.Apply(ctx, ledger.Facts{Statuses: []ledger.StatusObservation{{OriginalTransactionID: "90", Status: 2, SignedDate: appstore.MillisOf(base.Add(time.Hour))}}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, func() bool {
		st, err := l.DeliveryStatus(ctx)
		return err == nil && len(st) == 1 && st[0].Held == 2 && st[0].Pending == 2
	})
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	if len(got) != 0 {
		t.Fatalf("delivered %v while the import is held", got)
	}
	mu.Unlock()
	if n, err := jobs.ReleaseImportEvents(ctx, l, client, run); err != nil || n != 1 {
		t.Fatalf("release: %d, %v", n, err)
	}
	waitFor(t, 60*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 4 })
	mu.Lock()
	defer mu.Unlock()
	for i, id := range got {
		if id != int64(i+1) {
			t.Fatalf("delivered %v, want 1..4 in order", got)
		}
	}
}
