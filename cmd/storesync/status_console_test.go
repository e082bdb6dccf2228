package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/appstore/sim/simtest"
	"github.com/storesync/storesync/jobs"
	"github.com/storesync/storesync/jobs/jobstest"
	"github.com/storesync/storesync/jobs/opsui"
	"github.com/storesync/storesync/ledger"
)

const statusTestAdminToken = "status-test-admin-token-0123456789"

// TestStatusAndOverviewShowTheSameNumbers: on one database holding every
// kind of section (an import migrating, Apple budget use, webhook answers
// stored by a real serve, a backfill watermark, a reconciliation with
// drift, kept-aside notifications, dead-lettered events), `storesync
// status` and the ops console's overview show the same numbers, because
// both render jobs.ReadStatus.
func TestStatusAndOverviewShowTheSameNumbers(t *testing.T) {
	t.Parallel()
	simulator := simtest.StartTest(t, sim.Options{Seed: 11, Subscribers: 5})
	env := simCLIEnv(t, simulator)
	env["STORESYNC_ADMIN_TOKEN"] = statusTestAdminToken
	pool := openTestPool(t, env["DATABASE_URL"])
	ctx := context.Background()

	// Webhook answers through serve's own wiring: one stored, one kept
	// aside (another bundle), two malformed.
	stop, out := startStoppableServe(t, env)
	line := out.String()[strings.Index(out.String(), "serving on http://")+len("serving on http://"):]
	webhook := "http://" + line[:strings.IndexByte(line, ' ')] + "/webhooks/appstore"
	ours := jobstest.NewNote(appstore.Production, simulator.Now())
	other := jobstest.NewNote(appstore.Production, simulator.Now())
	other.N.Data.BundleID = "com.other.app"
	for _, c := range []struct {
		body string
		want int
	}{
		{`{"signedPayload":"` + ours.Sign(t, simulator.CA()) + `"}`, 200},
		{`{"signedPayload":"` + other.Sign(t, simulator.CA()) + `"}`, 400},
		{`{"signedPayload":"x.y.z"}`, 400},
		{`not json`, 400},
	} {
		resp, err := http.Post(webhook, "application/json", strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Fatalf("webhook answered %d, want %d", resp.StatusCode, c.want)
		}
	}
	stop() // flushes the webhook's answers; nothing changes the database after this

	// The other sections, written as the jobs would have.
	for _, q := range []string{
		`INSERT INTO import_runs (id, source, total_rows, rejected_rows, enqueued, started_at, finished_at)
			VALUES (901, 'migration.csv', 10, 1, 10, now() - interval '1 hour', now() - interval '59 minutes')`,
		`INSERT INTO import_rows (original_transaction_id, run_id, state)
			SELECT 'imp-' || i, 901, CASE WHEN i <= 6 THEN 'done' WHEN i = 7 THEN 'failed' ELSE 'pending' END
			FROM generate_series(1, 10) i`,
		`INSERT INTO apple_budget (app, environment, endpoint, rate, capacity, tokens, refilled_at)
			VALUES ('com.example.storesync', 'Production', 'statuses', 50, 50, 50, now())
			ON CONFLICT DO NOTHING`,
		`INSERT INTO apple_budget_usage (app, environment, endpoint, second, granted, throttled) VALUES
			('com.example.storesync', 'Production', 'statuses', floor(extract(epoch FROM now()))::bigint - 5, 7, 1),
			('com.example.storesync', 'Production', 'statuses', floor(extract(epoch FROM now()))::bigint - 900, 20, 2)
			ON CONFLICT (app, environment, endpoint, second) DO UPDATE SET granted = apple_budget_usage.granted + EXCLUDED.granted`,
		`INSERT INTO backfill_watermarks (environment, complete_until) VALUES ('Sandbox', now() - interval '3 hours')
			ON CONFLICT (environment) DO UPDATE SET complete_until = EXCLUDED.complete_until`,
		`INSERT INTO reconcile_runs (id, run_key, started_at, finished_at, call_cap, calls_used, checked, repaired, phase)
			VALUES (902, 'manual test', now() - interval '2 hours', now() - interval '1 hour', 1000, 64, '{"rolling": 40, "refunded": 3}', 2, 'done')`,
		`INSERT INTO drift (run_id, original_transaction_id, class, field, ledger_value, apple_value) VALUES
			(902, 'd-1', 'expired_at_apple', 'status', '1', '2'), (902, 'd-2', 'expired_at_apple', 'status', '1', '2'),
			(902, 'd-3', 'refund_missed', 'status', '1', '5')`,
		`INSERT INTO event_endpoints (id, url, secret) VALUES (903, 'https://backend.example/hooks', 'whsec_dGVzdA==')`,
		`INSERT INTO event_deliveries (endpoint_id, position, original_transaction_id, state, last_error)
			SELECT 903, i, 'e-' || i, CASE WHEN i <= 2 THEN 'dead' WHEN i = 3 THEN 'pending' ELSE 'delivered' END,
				CASE WHEN i <= 2 THEN 'HTTP 500' ELSE '' END
			FROM generate_series(1, 5) i`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatalf("%v\n%s", err, q)
		}
	}

	code, status, stderr := runCLI(t, env, "status")
	if code != 0 {
		t.Fatalf("status: code %d\n%s%s", code, status, stderr)
	}
	page := overviewPage(t, pool)
	defer func() {
		if t.Failed() {
			t.Logf("status:\n%s", status)
		}
	}()

	// Each pair: a row of the status (its section, the row's first cells)
	// and the same row's cells on the overview, compared cell by cell.
	type pair struct {
		what    string
		section string
		row     string   // the status row starts with these words
		cols    []int    // of the status row's cells
		html    string   // the overview row's opening tag contains this
		classes []string // of the overview row's cells, in cols' order
	}
	for _, p := range []pair{
		{"import progress", "Imports", "901", []int{4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15}, `class="import" data-run="901"`,
			[]string{"done", "failed", "pending", "rejected", "percent", "rate", "eta", "current", "current-rate", "current-eta", "state"}},
		{"budget", "Apple rate budget", "com.example.storesync Production statuses", []int{4, 6, 7},
			`data-endpoint="Production/statuses"`, []string{"minute", "hour", "throttled"}},
		{"webhook, last hour", "Webhook", "last hour", []int{1, 2, 3, 5, 6}, `data-over="hour"`,
			[]string{"answers", "refused", "rate", "p50", "p99"}},
		{"reconciliation", "Reconciliation", "902", []int{4, 5, 6, 8}, `class="rec" data-run="902"`,
			[]string{"checked", "drifted", "repaired", "drift"}},
		{"kept aside", "Kept-aside notifications", "INVALID_APP_IDENTIFIER", []int{1, 2}, `data-reason="INVALID_APP_IDENTIFIER"`,
			[]string{"notifications", "deliveries"}},
		{"queue", "Job queue", "process_notification notifications", []int{2, 3, 4, 5, 6, 7, 8, 9}, `data-kind="process_notification/notifications"`,
			jobs.RiverStates},
		{"dead-lettered", "Event delivery", "903", []int{2, 3, 5, 6}, `class="ep" data-endpoint="903"`,
			[]string{"delivered", "pending", "held", "dead-count"}},
	} {
		cells := statusRow(t, status, p.section, p.row)
		got := htmlRow(t, page, p.html)
		for i, class := range p.classes {
			want := normalise(cells[p.cols[i]])
			if g := normalise(got[class]); g != want {
				t.Errorf("%s, %s: overview %q, status %q\nstatus row: %q", p.what, class, g, want, cells)
			}
		}
	}
	// The numbers themselves, so a section both render empty fails too.
	if c := statusRow(t, status, "Imports", "901"); c[4] != "6" || c[5] != "1" || c[6] != "3" || !strings.HasSuffix(c[10], "rows/min") {
		t.Errorf("import row %q", c)
	}
	if c := statusRow(t, status, "Webhook", "last hour"); c[1] != "4" || c[2] != "3" {
		t.Errorf("webhook row %q: want 4 answers, 3 refused", c)
	}
	if c := statusRow(t, status, "Reconciliation", "902"); c[8] != "expired_at_apple 2, refund_missed 1" {
		t.Errorf("reconciliation row %q", c)
	}
	if !strings.Contains(page, `id="dead"`) || !strings.Contains(page, `id="kept-aside"`) || !strings.Contains(page, `data-env="Sandbox"`) {
		t.Errorf("the overview lacks the dead-lettered events, kept-aside notifications or the watermark:\n%s", page)
	}
	if !strings.Contains(status, "Sandbox: complete up to ") {
		t.Errorf("status lacks the watermark:\n%s", status)
	}
}

// startStoppableServe runs `storesync serve` in-process; stop ends it and waits.
func startStoppableServe(t *testing.T, env map[string]string) (stop func(), out *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out = &syncBuffer{}
	done := make(chan int, 1)
	c := &cli{stdin: strings.NewReader(""), stdout: out, stderr: out, getenv: func(k string) string { return env[k] }}
	go func() { done <- run(ctx, c, []string{"serve"}) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("serve exited %d:\n%s", code, out.String())
			}
		case <-time.After(60 * time.Second):
			t.Errorf("serve did not stop within 60s:\n%s", out.String())
		}
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "serving on") {
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return stop, out
}

// overviewPage logs in to a console on pool, as an operator's browser
// would (login form, cookie), and returns the overview's HTML.
func overviewPage(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	deps := &jobs.Deps{Ledger: ledger.New(pool), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	client, err := jobs.NewRiverClient(deps, jobs.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	console, err := opsui.New(t.Context(), deps, client, opsui.Options{AdminToken: statusTestAdminToken, NoRiverUI: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(console)
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	get := func(u string) string {
		t.Helper()
		resp, err := hc.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d\n%s", u, resp.StatusCode, b)
		}
		return string(b)
	}
	login := get(srv.URL + "/ops/login")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(login)
	if m == nil {
		t.Fatalf("no CSRF field on the login page:\n%s", login)
	}
	resp, err := hc.PostForm(srv.URL+"/ops/login", url.Values{"csrf": {m[1]}, "token": {statusTestAdminToken}, "next": {"/ops/"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	page := get(srv.URL + "/ops/")
	if !strings.Contains(page, `id="imports"`) {
		t.Fatalf("not the overview:\n%s", page)
	}
	return page
}

var multiSpace = regexp.MustCompile(`\s{2,}`)

// statusRow returns the cells (split on two or more spaces) of the first
// row of the section that starts with prefix.
func statusRow(t *testing.T, status, section, prefix string) []string {
	t.Helper()
	i := strings.Index(status, "== "+section+" ==\n")
	if i < 0 {
		t.Fatalf("status has no section %q:\n%s", section, status)
	}
	body := status[i+len(section)+7:]
	if j := strings.Index(body, "\n== "); j >= 0 {
		body = body[:j]
	}
	for _, line := range strings.Split(body, "\n") {
		cells := multiSpace.Split(strings.TrimSpace(line), -1)
		if strings.Join(strings.Fields(strings.Join(cells, " ")), " ") == prefix ||
			strings.HasPrefix(strings.Join(cells, " "), prefix+" ") {
			return cells
		}
	}
	t.Fatalf("status section %q has no row starting %q:\n%s", section, prefix, body)
	return nil
}

var (
	cellRe = regexp.MustCompile(`(?s)<td class="([^"]*)">(.*?)</td>`)
	tagRe  = regexp.MustCompile(`<[^>]*>`)
)

// htmlRow returns the text of the overview row whose opening tag contains
// marker, by the last class of each cell.
func htmlRow(t *testing.T, page, marker string) map[string]string {
	t.Helper()
	i := strings.Index(page, marker)
	if i < 0 {
		t.Fatalf("the overview has no row %s", marker)
	}
	row := page[i:]
	row = row[:strings.Index(row, "</tr>")]
	out := map[string]string{}
	for _, m := range cellRe.FindAllStringSubmatch(row, -1) {
		classes := strings.Fields(m[1])
		out[classes[len(classes)-1]] = strings.TrimSpace(tagRe.ReplaceAllString(m[2], ""))
	}
	return out
}

// normalise makes the two renderings' spelling of one value comparable:
// HTML entities, the console's "—" for the status's "-", the spacing
// between drift tags.
func normalise(s string) string {
	s = strings.NewReplacer("&amp;", "&", "&#43;", "+", "—", "-", "%", "").Replace(s)
	s = strings.ReplaceAll(s, ",", " ")
	return strings.Join(strings.Fields(s), " ")
}
