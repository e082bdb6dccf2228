package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/appstore/sim/simtest"
	"github.com/storesync/storesync/jobs"
	"github.com/storesync/storesync/jobs/jobstest"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

// benchEnvInt reads a positive integer setting of a benchmark.
func benchEnvInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// BenchmarkServeIngest measures the webhook of a whole `storesync serve`
// (a process of its own, every worker on, as in production) while it
// processes what it stores:
//
//   - ingest: STORESYNC_BENCH_RATE notifications/s (default 1,000) posted
//     open-loop for STORESYNC_BENCH_SECONDS (default 60) over
//     STORESYNC_BENCH_SUBSCRIBERS subscriptions (default 2,000); latency is
//     counted from when each request was due, so a generator that falls
//     behind shows as latency, not as a lower offered rate. Reported: the
//     accepted rate, p50/p99/max, the processing backlog when the burst ends
//     and the time it takes to drain;
//   - the ceiling, in the same run (before and after the ingest, the higher
//     taken): single-row committed inserts of the same notifications through
//     the ledger's own insert (a fresh database, 48 connections);
//   - saturation: 64 clients posting distinct notifications as fast as
//     serve answers for 10 s (processing on), the accepted rate that is
//     compared with the ceiling;
//   - processing throughput: notifications applied per second, for one
//     notification each of distinct subscriptions and for 100 notifications
//     of each of 20 subscriptions.
//
// STORESYNC_INGEST_BUSY_RATE and STORESYNC_INGEST_YIELD_WORKERS are passed
// to serve (STORESYNC_INGEST_BUSY_RATE=1000000 turns yielding off, for a
// comparison). Subscriptions are seeded in the ledger as already imported,
// so a notification applies to a known subscription (as in steady state)
// instead of enqueueing an import of an id the simulator does not know.
//
//	make bench-ingest
func BenchmarkServeIngest(b *testing.B) {
	rate := benchEnvInt("STORESYNC_BENCH_RATE", 1000)
	quick := os.Getenv("STORESYNC_BENCH_QUICK") != ""
	seconds := benchEnvInt("STORESYNC_BENCH_SECONDS", 60)
	subscribers := benchEnvInt("STORESYNC_BENCH_SUBSCRIBERS", 2000)
	simulator := simtest.StartTest(b, sim.Options{Seed: 1, Subscribers: 10})
	env := simCLIEnv(b, simulator)
	port := freePort(b)
	env["STORESYNC_LISTEN"] = fmt.Sprintf("127.0.0.1:%d", port)
	for _, k := range []string{"STORESYNC_INGEST_BUSY_RATE", "STORESYNC_INGEST_YIELD_WORKERS", "STORESYNC_INGEST_YIELD_RATE", "STORESYNC_DB_MAX_CONNS"} {
		if v := os.Getenv(k); v != "" {
			env[k] = v
		}
	}
	// GOGC of serve alone (the load generator keeps its own).
	if v := os.Getenv("STORESYNC_BENCH_SERVE_GOGC"); v != "" {
		env["GOGC"] = v
	}
	pool := openTestPool(b, env["DATABASE_URL"])
	ca := simulator.CA()

	b.Logf("signing %d notifications (%d subscriptions)…", rate*seconds+subscribers+2000, subscribers)
	distinct := newBenchNotes(subscribers, 1, ca, b)
	perSub := newBenchNotes(20, 100, ca, b)
	burst := newBenchNotes(subscribers, max(1, rate*seconds/subscribers), ca, b)
	otids := append(append(distinct.otids, perSub.otids...), burst.otids...)
	saturate := &benchNotes{}
	if !quick {
		// Enough for 64 clients posting as fast as serve answers for 10 s.
		saturate = newBenchNotes(subscribers, max(1, 40000/subscribers), ca, b)
		otids = append(otids, saturate.otids...)
	}
	seedSubscriptions(b, pool, otids)

	serveArgs := []string{"serve", "--no-schedules"}
	if dir := os.Getenv("STORESYNC_BENCH_PROFILE_DIR"); dir != "" {
		serveArgs = append(serveArgs, "--cpu-profile", filepath.Join(dir, "ingest-serve.pprof"))
	}
	serve := startServeProcess(b, env, serveArgs...)
	waitHTTP(b, port)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512, MaxConnsPerHost: 512}, Timeout: 30 * time.Second}

	if quick {
		// Warm serve up first (its pool's connections, the chain cache), as
		// the processing phases do otherwise.
		postOpenLoop(b, client, url, distinct.bodies, rate)
		waitProcessed(b, pool, countStored(b, pool), 5*time.Minute)
		quickBurst(b, client, url, burst.bodies, rate, serve.Process.Pid)
		return
	}
	ceiling := newCommitCeiling(b, simulator, burst.bodies[:min(len(burst.bodies), 4000)])
	before := ceiling.measure(b)

	// Processing throughput, distinct subscriptions, then 100 each of 20.
	distinctRate, distinctEarly := processingRate(b, pool, client, url, distinct.bodies)
	perSubRate, perSubEarly := processingRate(b, pool, client, url, perSub.bodies)

	b.ResetTimer()
	cpuBefore := jobstest.ProcessesCPU(serve.Process.Pid)
	// The wall clock of second 0, to find a slow second in Postgres's log.
	b.Logf("burst starts at %s", time.Now().UTC().Format("15:04:05.000"))
	res := postOpenLoop(b, client, url, burst.bodies, rate)
	b.StopTimer()
	burstCPU := jobstest.ProcessesCPU(serve.Process.Pid) - cpuBefore
	processedAtEnd := countProcessed(b, pool)
	stored := countStored(b, pool)
	drainStart := time.Now()
	waitProcessed(b, pool, stored, 15*time.Minute)
	drain := time.Since(drainStart)
	// What serve accepts when offered more than it can take: the accepted
	// rate the ceiling is compared with (an open loop at a fixed rate
	// accepts at most what it offers).
	saturated := postClosedLoop(b, client, url, saturate.bodies, 64, 10*time.Second)
	waitProcessed(b, pool, countStored(b, pool), 15*time.Minute)
	after := ceiling.measure(b)
	ceil := max(before, after)

	b.Logf("p99 per second of the burst: %s", perSecondP99(res.latencies, rate))
	lat, p := res.quantiles()
	accepted := float64(res.ok) / res.elapsed.Seconds()
	yielded := scrapeMetric(b, client, url, "storesync_processing_yielded_total")
	b.ReportMetric(accepted, "accepted/s")
	b.ReportMetric(float64(p(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(ceil, "ceiling/s")
	b.ReportMetric(saturated, "saturated-accepted/s")
	b.ReportMetric(saturated/ceil, "of-ceiling")
	b.ReportMetric(distinctRate, "processed-distinct/s")
	b.ReportMetric(perSubRate, "processed-100-per-sub/s")
	// CPU is steadier than latency on a shared host: it tells whether a
	// change made serve cheaper even when the latency figures drift.
	b.ReportMetric(float64(burstCPU.Microseconds())/float64(res.ok), "serve-cpu-µs/accepted")
	b.Logf("offered %d/s for %ds: %d answered 200, %d not (%d errors); accepted %.0f/s; latency p50 %s p99 %s max %s",
		rate, seconds, res.ok, res.notOK, res.errs, accepted, p(0.50), p(0.99), lat[len(lat)-1])
	b.Logf("single-row commit ceiling of the same notification rows: %.0f/s before, %.0f/s after; serve accepted %.0f/s from 64 clients posting as fast as it answers (processing on): %.2f of the ceiling",
		before, after, saturated, saturated/ceil)
	b.Logf("processing once posts stopped: %.0f/s for %d distinct subscriptions (%d applied while posting), %.0f/s for 100 notifications each of 20 (%d while posting)",
		distinctRate, len(distinct.bodies), distinctEarly, perSubRate, perSubEarly)
	b.Logf("burst: %d of %d processed while it lasted (%.0f/s), the backlog drained in %s; %.0f processing jobs yielded to ingest",
		processedAtEnd-len(distinct.bodies)-len(perSub.bodies), len(burst.bodies),
		float64(processedAtEnd-len(distinct.bodies)-len(perSub.bodies))/res.elapsed.Seconds(), drain.Round(time.Millisecond), yielded)
}

// quickBurst is BenchmarkServeIngest's burst alone (STORESYNC_BENCH_QUICK):
// the latency of the open loop and serve's CPU, without the ceiling, the
// processing phases and the drain, for comparing settings run after run.
func quickBurst(b *testing.B, client *http.Client, url string, bodies [][]byte, rate, pid int) {
	b.ResetTimer()
	cpuBefore, selfBefore := jobstest.ProcessesCPU(pid), jobstest.SelfCPU()
	slowBefore, countBefore := scrapeMetric(b, client, url, `storesync_webhook_seconds_bucket{le="0.064"}`), scrapeMetric(b, client, url, "storesync_webhook_seconds_count")
	res := postOpenLoop(b, client, url, bodies, rate)
	b.StopTimer()
	serveCPU, selfCPU := jobstest.ProcessesCPU(pid)-cpuBefore, jobstest.SelfCPU()-selfBefore
	// Where the time goes: serve's own histogram (handler start to answer)
	// against what the generator saw from each request's due time.
	fast, count := scrapeMetric(b, client, url, `storesync_webhook_seconds_bucket{le="0.064"}`)-slowBefore, scrapeMetric(b, client, url, "storesync_webhook_seconds_count")-countBefore
	seenSlow := 0
	for _, l := range res.latencies {
		if l > 64*time.Millisecond {
			seenSlow++
		}
	}
	b.Logf("answers over 64 ms: %.2f%% in serve's handler, %.2f%% as the generator saw them", 100*(count-fast)/max(count, 1), 100*float64(seenSlow)/float64(max(len(res.latencies), 1)))
	lat, p := res.quantiles()
	b.Logf("p99 per second of the burst: %s", perSecondP99(res.latencies, rate))
	b.Logf("offered %d/s: %d answered 200, %d not (%d errors); latency p50 %s p99 %s max %s; CPU per accepted: serve %s, this load generator %s",
		rate, res.ok, res.notOK, res.errs, p(0.50), p(0.99), lat[len(lat)-1],
		serveCPU/time.Duration(max(res.ok, 1)), selfCPU/time.Duration(max(res.ok, 1)))
	b.ReportMetric(float64(p(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(serveCPU.Microseconds())/float64(max(res.ok, 1)), "serve-cpu-µs/accepted")
}

// perSecondP99 summarises latencies (in posting order, rate per second)
// by second: how many seconds had a p99 above 50 ms and the worst five,
// so a p99 caused by a few stalls (a checkpoint, a GC) reads apart from one
// caused by steady queueing.
func perSecondP99(latencies []time.Duration, rate int) string {
	type second struct {
		at  int
		p99 time.Duration
	}
	var secs []second
	for at := 0; at*rate < len(latencies); at++ {
		w := slices.Clone(latencies[at*rate : min(len(latencies), (at+1)*rate)])
		slices.Sort(w)
		secs = append(secs, second{at, w[min(len(w)-1, len(w)*99/100)]})
	}
	over := 0
	for _, s := range secs {
		if s.p99 > 50*time.Millisecond {
			over++
		}
	}
	slices.SortFunc(secs, func(a, b second) int { return int(b.p99 - a.p99) })
	var worst []string
	for _, s := range secs[:min(5, len(secs))] {
		worst = append(worst, fmt.Sprintf("s%d %s", s.at, s.p99.Round(time.Millisecond)))
	}
	return fmt.Sprintf("%d of %d seconds above 50 ms; worst %s", over, len(secs), strings.Join(worst, ", "))
}

// benchNotes are signed webhook bodies of n subscriptions, each with per
// notifications signed later and later (so each applies).
type benchNotes struct {
	otids  []string
	bodies [][]byte
}

func newBenchNotes(n, per int, ca *sim.CA, b *testing.B) *benchNotes {
	out := &benchNotes{otids: make([]string, n), bodies: make([][]byte, n*per)}
	start := time.Now().Add(-time.Hour)
	var wg sync.WaitGroup
	const workers = 4
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := w; s < n; s += workers {
				base := jobstest.NewNote(appstore.Production, start)
				out.otids[s] = base.Tx.OriginalTransactionID
				for k := range per {
					note := *base
					nd, tx, ri := *base.N.Data, *base.Tx, *base.RI
					note.N.Data, note.Tx, note.RI = &nd, &tx, &ri
					signed := appstore.MillisOf(start.Add(time.Duration(k+1) * time.Second))
					note.N.NotificationUUID = jobstest.NextUUID()
					note.N.SignedDate, note.Tx.SignedDate, note.RI.SignedDate = signed, signed, signed
					note.Tx.TransactionID = fmt.Sprintf("%s%04d", tx.OriginalTransactionID, k)
					body, _ := json.Marshal(map[string]string{"signedPayload": note.Sign(b, ca)})
					// Round-robin over subscriptions, as renewals arrive.
					out.bodies[k*n+s] = body
				}
			}
		}()
	}
	wg.Wait()
	return out
}

// seedSubscriptions stores otids as subscriptions whose history is already
// imported: a notification of one of them then updates it, as in steady
// state, instead of enqueueing a full import.
func seedSubscriptions(b *testing.B, pool *pgxpool.Pool, otids []string) {
	_, err := pool.Exec(context.Background(), `INSERT INTO subscriptions (original_transaction_id, environment,
		product_id, history_revision, history_synced_at) SELECT id, 'Production', 'com.example.monthly', 'bench-seeded', now()
		FROM unnest($1::text[]) AS id`, otids)
	if err != nil {
		b.Fatal(err)
	}
}

type openLoopResult struct {
	ok, notOK, errs int
	elapsed         time.Duration
	latencies       []time.Duration
}

// quantiles returns the latencies sorted and the q-quantile of them.
func (r openLoopResult) quantiles() ([]time.Duration, func(q float64) time.Duration) {
	lat := slices.Clone(r.latencies)
	slices.Sort(lat)
	return lat, func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
}

// postOpenLoop posts bodies at rate per second, each request due at its
// slot whether or not earlier ones were answered (up to 512 in flight).
// Each of its senders writes prepared HTTP/1.1 requests on its own
// keep-alive connection, as wrk does: Apple posts from its own machines,
// so the generator, which shares these two cores with serve and
// Postgres, should cost as little as it can (net/http's client cost about
// 250 µs of CPU per request here, a third of what serve spends).
func postOpenLoop(b *testing.B, client *http.Client, url string, bodies [][]byte, rate int) openLoopResult {
	type item struct {
		body []byte
		due  time.Time
		i    int
	}
	addr := strings.TrimPrefix(url, "http://")
	lat := make([]time.Duration, len(bodies))
	work := make(chan item, len(bodies))
	var ok, notOK, errs atomic.Int64
	var wg sync.WaitGroup
	for range 512 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn := &rawConn{}
			defer conn.Close()
			for it := range work {
				status, err := conn.post(addr, it.body)
				if err != nil { // one retry on a fresh connection: an idle keep-alive may have been closed
					conn.Close()
					status, err = conn.post(addr, it.body)
				}
				switch {
				case err != nil:
					errs.Add(1)
					conn.Close()
				case status == http.StatusOK:
					ok.Add(1)
				default:
					notOK.Add(1)
				}
				lat[it.i] = time.Since(it.due)
			}
		}()
	}
	start := time.Now()
	period := time.Second / time.Duration(rate)
	for i, body := range bodies {
		due := start.Add(time.Duration(i) * period)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		work <- item{body: body, due: due, i: i}
	}
	close(work)
	wg.Wait()
	return openLoopResult{ok: int(ok.Load()), notOK: int(notOK.Load()), errs: int(errs.Load()), elapsed: time.Since(start), latencies: lat}
}

// rawConn is a keep-alive HTTP/1.1 connection posting webhook bodies.
type rawConn struct {
	net.Conn
	r *bufio.Reader
}

// post posts body to /webhooks/appstore over c, dialing addr first when c
// has no connection (the zero rawConn, or after Close), and returns the
// status.
func (c *rawConn) post(addr string, body []byte) (int, error) {
	if c.Conn == nil {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return 0, err
		}
		*c = rawConn{Conn: conn, r: bufio.NewReader(conn)}
	}
	head := fmt.Appendf(nil, "POST /webhooks/appstore HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", addr, len(body))
	bufs := net.Buffers{head, body}
	if _, err := bufs.WriteTo(c.Conn); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// Close closes c's connection, if any; the next post dials again.
func (c *rawConn) Close() {
	if c.Conn != nil {
		c.Conn.Close()
		c.Conn = nil
	}
}

// postClosedLoop posts bodies with clients concurrent clients, each
// posting again as soon as it is answered, for at most d (or until bodies
// run out), and returns the rate of 200 answers.
func postClosedLoop(b *testing.B, client *http.Client, url string, bodies [][]byte, clients int, d time.Duration) float64 {
	var next, ok atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				i := int(next.Add(1) - 1)
				if i >= len(bodies) {
					return
				}
				resp, err := client.Post(url+"/webhooks/appstore", "application/json", bytes.NewReader(bodies[i]))
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if int(next.Load()) >= len(bodies) {
		b.Logf("postClosedLoop: all %d bodies posted before %s: the saturated rate is a lower bound", len(bodies), d)
	}
	return float64(ok.Load()) / time.Since(start).Seconds()
}

// processingRate posts bodies with 32 clients, then returns how many
// notifications serve applied per second once the posts stopped (at full
// width: while they pour in, processing yields to ingest by design), and
// how many it had applied by then.
func processingRate(b *testing.B, pool *pgxpool.Pool, client *http.Client, url string, bodies [][]byte) (rate float64, duringPosts int) {
	already := countProcessed(b, pool)
	work := make(chan []byte, len(bodies))
	for _, body := range bodies {
		work <- body
	}
	close(work)
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for body := range work {
				resp, err := client.Post(url+"/webhooks/appstore", "application/json", bytes.NewReader(body))
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("webhook answered %d", resp.StatusCode)
				}
			}
		}()
	}
	wg.Wait()
	posted := time.Now()
	duringPosts = countProcessed(b, pool) - already
	waitProcessed(b, pool, already+len(bodies), 10*time.Minute)
	return float64(len(bodies)-duringPosts) / time.Since(posted).Seconds(), duringPosts
}

func countProcessed(b *testing.B, pool *pgxpool.Pool) int {
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM notifications WHERE processed_at IS NOT NULL`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

func countStored(b *testing.B, pool *pgxpool.Pool) int {
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM notifications`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

func waitProcessed(b *testing.B, pool *pgxpool.Pool, want int, within time.Duration) {
	deadline := time.Now().Add(within)
	for countProcessed(b, pool) < want {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d notifications processed after %s", countProcessed(b, pool), want, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// scrapeMetric reads one unlabelled counter from serve's /metrics.
func scrapeMetric(b *testing.B, client *http.Client, url, name string) float64 {
	resp, err := client.Get(url + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` ([0-9.e+]+)$`).FindSubmatch(text)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// commitCeiling is the database's own rate of single-row committed
// inserts of the webhook's rows, through the ledger's insert, into a
// database of its own.
type commitCeiling struct {
	pool  *pgxpool.Pool
	notes []ledger.Notification
}

func newCommitCeiling(b *testing.B, simulator *sim.Simulator, bodies [][]byte) *commitCeiling {
	v, err := appstore.NewVerifier(appstore.VerifierOptions{RootCertificates: [][]byte{simulator.RootDER()},
		Environment: appstore.Production, BundleID: simulator.BundleID(), AppAppleID: simulator.AppAppleID()})
	if err != nil {
		b.Fatal(err)
	}
	c := &commitCeiling{}
	for _, body := range bodies {
		var wire struct{ SignedPayload string }
		if err := json.Unmarshal(body, &wire); err != nil {
			b.Fatal(err)
		}
		np, err := v.VerifyNotification(wire.SignedPayload)
		if err != nil {
			b.Fatal(err)
		}
		c.notes = append(c.notes, jobs.NotificationRecord(np, appstore.Production, wire.SignedPayload, ledger.SourceWebhook, nil))
	}
	cfg, err := pgxpool.ParseConfig(migrationstest.NewDatabaseURL(b))
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = 48
	if c.pool, err = pgxpool.NewWithConfig(context.Background(), cfg); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.pool.Close)
	return c
}

// measure inserts every note once (fresh UUIDs each time) with 48
// concurrent single-row transactions and returns the rate.
func (c *commitCeiling) measure(b *testing.B) float64 {
	l := ledger.New(c.pool)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range 48 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(c.notes) {
					return
				}
				n := c.notes[i]
				n.UUID = jobstest.NextUUID() // each measurement inserts new rows
				err := pgx.BeginFunc(context.Background(), c.pool, func(tx pgx.Tx) error {
					_, err := l.WithTx(tx).RecordNotifications(context.Background(), []ledger.Notification{n})
					return err
				})
				if err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return float64(len(c.notes)) / time.Since(start).Seconds()
}
