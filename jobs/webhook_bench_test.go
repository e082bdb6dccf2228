package jobs

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/ledger"
)

// webhookBenchClients is the load generator's concurrency: Apple delivers
// from many connections at once. With 32, on 2 cores, group commits held
// about 8 notifications and the rate was a third lower; 64 keeps p99 near
// 30 ms. The single-row ceiling uses as many connections, so it must stay
// below the server's max_connections.
const webhookBenchClients = 64

// benchClients is webhookBenchClients unless STORESYNC_BENCH_CLIENTS sets it.
func benchClients() int {
	if n, err := strconv.Atoi(os.Getenv("STORESYNC_BENCH_CLIENTS")); err == nil && n > 0 {
		return n
	}
	return webhookBenchClients
}

// BenchmarkWebhookIngest measures the webhook on loopback: b.N distinct
// pre-signed notifications (each with its inner transaction and renewal
// info, as Apple sends them) posted by webhookBenchClients concurrent
// keep-alive clients (a lean generator writing prepared HTTP/1.1
// requests, like wrk). Every one must be answered 200 and be stored with
// its processing job. Reported: notifications/s (durable) and the p50/p99
// latency, then, in the same run and with the same concurrency, the ceiling
// of single-row committed INSERTs of the same payloads into a copy of the
// notifications table, and the ratio of the two; also the CPU cost of what
// the webhook verifies and decodes of one notification (the outer JWS, the
// inner ids read unverified), of the full verification processing does
// (all three JWS), and this process's CPU per notification (handler plus
// load generator; Postgres uses the rest). Run with a fixed
// count (STORESYNC_BENCH_COMMITTERS sets HTTPOptions.IngestConcurrency):
//
//	go test -run '^$' -bench WebhookIngest -benchtime 20000x ./jobs/
func BenchmarkWebhookIngest(b *testing.B) {
	committers, _ := strconv.Atoi(os.Getenv("STORESYNC_BENCH_COMMITTERS"))
	clients := benchClients()
	e := newHookEnv(b, hookEnvOptions{HTTP: HTTPOptions{IngestConcurrency: committers}})
	n := b.N
	bodies := make([][]byte, n)
	payloads := make([]string, n)
	now := time.Now()
	var size int
	for i := range bodies {
		payloads[i] = newTestNote(appstore.Production, now).sign(b, e.ca)
		bodies[i], _ = json.Marshal(map[string]string{"signedPayload": payloads[i]})
		size += len(bodies[i])
	}
	size /= n
	// The webhook's CPU floor: verifying one notification's signedPayload
	// and reading the inner ids, single-threaded; and, for comparison, the
	// full verification (three JWS) that processing does.
	v := e.deps.Verifier.WithEnvironment(appstore.Production)
	probe := payloads[:min(n, 300)]
	t0 := time.Now()
	for _, p := range probe {
		np, err := v.VerifyNotification(p)
		if err != nil {
			b.Fatal(err)
		}
		if notificationRecord(np, appstore.Production, p, ledger.SourceWebhook, nil).OriginalTransactionID == "" {
			b.Fatal("no originalTransactionId read")
		}
	}
	verifyCost := time.Since(t0) / time.Duration(len(probe))
	t0 = time.Now()
	for _, p := range probe {
		if _, err := v.VerifyNotificationDeep(p); err != nil {
			b.Fatal(err)
		}
	}
	deepCost := time.Since(t0) / time.Duration(len(probe))
	addr := strings.TrimPrefix(e.server.URL, "http://")
	requests := make([][]byte, n)
	for i, body := range bodies {
		requests[i] = append(fmt.Appendf(nil, "POST /webhooks/appstore HTTP/1.1\r\nHost: %s\r\n"+
			"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n", addr, len(body)), body...)
	}
	lat := make([]time.Duration, n)
	cpu0, machine0 := processCPU(), machineBusyCPU()
	b.ResetTimer()
	start := time.Now()
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// One keep-alive connection per client writing prepared
			// requests, as wrk does: the generator shares the two cores
			// with the server and Postgres, so it should cost little.
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				failed.Add(1)
				return
			}
			defer conn.Close()
			r := bufio.NewReader(conn)
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				t0 := time.Now()
				if _, err := conn.Write(requests[i]); err != nil {
					failed.Add(int64(n - i))
					return
				}
				resp, err := http.ReadResponse(r, nil)
				if err != nil {
					failed.Add(int64(n - i))
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat[i] = time.Since(t0)
				if resp.StatusCode != 200 {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	// This process runs the handler and the load generator; Postgres
	// and anything else on the machine take the rest of the two cores.
	goCPU := (processCPU() - cpu0) / time.Duration(n)
	machineCPU := (machineBusyCPU() - machine0) / time.Duration(n)
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d deliveries failed", f)
	}
	if rows := e.count(`SELECT count(*) FROM notifications`); rows != n {
		b.Fatalf("%d notifications stored, want %d", rows, n)
	}
	if jobs := e.count(`SELECT count(*) FROM river_job WHERE kind = 'process_notification'`); jobs != n {
		b.Fatalf("%d jobs, want %d", jobs, n)
	}
	batches, items := histogramCountSum(e.deps.Metrics.WebhookBatchSize)
	_, commitSecs := histogramCountSum(e.deps.Metrics.WebhookCommitSeconds)
	b.Logf("%d group commits, %.1f notifications each on average, %s per commit",
		batches, items/float64(max(1, batches)), time.Duration(commitSecs/float64(max(1, batches))*float64(time.Second)).Round(10*time.Microsecond))
	slices.Sort(lat)
	rate := float64(n) / elapsed.Seconds()
	b.ReportMetric(rate, "notifications/s")
	b.ReportMetric(float64(lat[n/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[n*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(size), "body-bytes")
	b.ReportMetric(float64(verifyCost.Microseconds()), "ingest-verify-us")
	b.ReportMetric(float64(deepCost.Microseconds()), "deep-verify-us")
	b.ReportMetric(float64(goCPU.Microseconds()), "go-cpu-us")
	b.ReportMetric(float64(machineCPU.Microseconds()), "machine-cpu-us")

	ceiling := singleRowInsertCeiling(b, e.url, payloads, clients)
	b.ReportMetric(ceiling, "inserts/s")
	// The reference is pgbench's: its C client costs less CPU
	// than pgx's, so on a shared machine its ceiling is the higher, and
	// the ratio is taken against the higher of the two.
	pgbench := pgbenchCeiling(b, e.url, payloads[0], clients, n)
	b.ReportMetric(pgbench, "pgbench-inserts/s")
	reference := max(ceiling, pgbench)
	b.ReportMetric(rate/reference, "ratio")
	b.Logf("webhook: %d notifications of %d bytes in %s with %d clients on %d CPUs: %.0f/s durable, p50 %s, p99 %s; "+
		"single-row INSERT+COMMIT of the same payloads, same concurrency: %.0f/s with pgx, %.0f/s with pgbench; ratio %.2f; "+
		"the webhook's verification of one notification (outer JWS, inner ids unverified) costs %s of CPU, processing's (3 JWS) %s; "+
		"this process (handler and load generator) used %s of CPU per notification, the whole machine (with Postgres) %s",
		n, size, elapsed.Round(time.Millisecond), clients, runtime.NumCPU(), rate,
		lat[n/2].Round(10*time.Microsecond), lat[n*99/100].Round(10*time.Microsecond), ceiling, pgbench, rate/reference,
		verifyCost.Round(time.Microsecond), deepCost.Round(time.Microsecond), goCPU.Round(time.Microsecond),
		machineCPU.Round(time.Microsecond))
}

// singleRowInsertCeiling returns how many single-row committed INSERTs of
// the same signed payloads per second webhookBenchClients connections
// achieve, into a copy of the notifications table (same columns, indexes
// and compression): the database's own limit for storing notifications one
// by one, without verification, HTTP or a job.
func singleRowInsertCeiling(b *testing.B, url string, payloads []string, clients int) float64 {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = int32(clients)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `CREATE TABLE bench_notifications (LIKE notifications INCLUDING ALL)`); err != nil {
		b.Fatal(err)
	}
	n := len(payloads)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = testUUID(int64(i))
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				// Autocommit: one INSERT, one commit.
				if _, err := pool.Exec(ctx, `INSERT INTO bench_notifications (notification_uuid, notification_type,
						environment, signed_date, original_transaction_id, transaction_id, signed_payload, source)
					VALUES ($1, 'DID_RENEW', 'Production', 1, '2000000000000001', '2000000000000001', $2, 'webhook')
					ON CONFLICT (notification_uuid) DO NOTHING`, ids[i], payloads[i]); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	return float64(n) / elapsed.Seconds()
}

// pgbenchCeiling is singleRowInsertCeiling measured by pgbench, as the
// issue's reference was: n single-row committed INSERTs of payload (each
// with a new UUID) over clients connections, prepared. It returns 0, and
// says so, when pgbench is not installed; it needs the bench_notifications
// table singleRowInsertCeiling creates.
func pgbenchCeiling(b *testing.B, url, payload string, clients, n int) float64 {
	path, err := exec.LookPath("pgbench")
	if err != nil {
		b.Log("pgbench not found: the ceiling is pgx's alone (install postgresql-client for the reference)")
		return 0
	}
	script := filepath.Join(b.TempDir(), "insert.sql")
	// A JWS holds no quote, so the payload is a literal as it is.
	sql := `INSERT INTO bench_notifications (notification_uuid, notification_type, environment, signed_date,
		original_transaction_id, transaction_id, signed_payload, source)
		VALUES (gen_random_uuid(), 'DID_RENEW', 'Production', 1, '2000000000000001', '2000000000000001', '` +
		payload + `', 'webhook') ON CONFLICT (notification_uuid) DO NOTHING;`
	if strings.ContainsRune(payload, '\'') {
		b.Fatal("payload holds a quote")
	}
	if err := os.WriteFile(script, []byte(strings.ReplaceAll(sql, "\n", " ")+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	out, err := exec.Command(path, "-n", "-M", "prepared", "-c", strconv.Itoa(clients), "-j", "2",
		"-t", strconv.Itoa(max(1, n/clients)), "-f", script, url).CombinedOutput()
	if err != nil {
		b.Fatalf("pgbench: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`).FindSubmatch(out)
	if m == nil {
		b.Fatalf("pgbench printed no tps:\n%s", out)
	}
	tps, _ := strconv.ParseFloat(string(m[1]), 64)
	return tps
}

func histogramCountSum(h prometheus.Histogram) (uint64, float64) {
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		panic(err)
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}

// machineBusyCPU is the CPU time all processes on this machine have used
// since boot, from Linux's /proc/stat (0 elsewhere): on a saturated
// machine, its growth per notification is what bounds the rate.
func machineBusyCPU() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(fields) < 9 || fields[0] != "cpu" {
		return 0
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, _ := strconv.ParseInt(fields[i], 10, 64)
		ticks += v
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ is 100 on Linux
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
