package opsui_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/appstore/sim/simtest"
	"github.com/storesync/storesync/jobs"
	"github.com/storesync/storesync/jobs/opsui"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/ledger/budget"
	"github.com/storesync/storesync/migrations/migrationstest"
)

const adminToken = "test-admin-token-0123456789"

// consoleEnv is a simulator, a migrated database, working River workers
// whose Apple calls spend a Postgres budget (so the chart has data), and
// the console on an httptest server.
type consoleEnv struct {
	sim    *sim.Simulator
	pool   *pgxpool.Pool
	deps   *jobs.Deps
	client *river.Client[pgx.Tx]
	url    string // the console's base URL, on 127.0.0.1
}

func newConsoleEnv(t testing.TB, subscribers int, limit float64) *consoleEnv {
	t.Helper()
	s := simtest.StartTest(t, sim.Options{Seed: 7, Subscribers: subscribers})
	_, pool := migrationstest.NewDatabase(t)
	v, err := appstore.NewVerifier(appstore.VerifierOptions{
		RootCertificates: [][]byte{s.CA().RootDER()}, Environment: appstore.Production,
		BundleID: sim.DefaultBundleID, AppAppleID: sim.DefaultAppAppleID,
	})
	if err != nil {
		t.Fatal(err)
	}
	over := map[appstore.Endpoint]float64{appstore.EndpointStatuses: limit, appstore.EndpointHistory: limit}
	b, err := budget.NewPostgres(budget.PostgresOptions{Pool: pool, App: sim.DefaultBundleID, Limits: map[appstore.Environment]map[appstore.Endpoint]float64{
		appstore.Production: appstore.DefaultRateLimits(appstore.Production, 1, over),
		appstore.Sandbox:    appstore.DefaultRateLimits(appstore.Sandbox, 1, over),
	}})
	if err != nil {
		t.Fatal(err)
	}
	key, err := appstore.ParsePrivateKey(s.PrivateKeyPEM())
	if err != nil {
		t.Fatal(err)
	}
	apple, err := appstore.NewClient(appstore.ClientOptions{
		KeyID: s.KeyID(), IssuerID: s.IssuerID(), BundleID: s.BundleID(), PrivateKey: key,
		Environment: appstore.Production, BaseURL: s.BaseURL(), SandboxBaseURL: s.SandboxURL(),
		SandboxFallback: true, Budget: b,
	})
	if err != nil {
		t.Fatal(err)
	}
	deps := &jobs.Deps{
		Ledger: ledger.New(pool), Verifier: v, Apple: apple, Metrics: jobs.NewMetrics(), Now: s.Now,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Settings: jobs.Settings{RetryBase: 20 * time.Millisecond},
	}
	client, err := jobs.NewRiverClient(deps, jobs.ClientOptions{Work: true, JobTimeout: 30 * time.Second, RescueStuckJobsAfter: 40 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stop, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		_ = client.Stop(stop)
	})
	console, err := opsui.New(ctx, deps, client, opsui.Options{AdminToken: adminToken, ResyncWait: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	api := http.NewServeMux()
	api.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	srv := httptest.NewServer(console.Wrap(api))
	t.Cleanup(srv.Close)
	return &consoleEnv{sim: s, pool: pool, deps: deps, client: client, url: srv.URL}
}

// importAll imports every simulated subscription, customer ids cust-N.
func (e *consoleEnv) importAll(t testing.TB) {
	t.Helper()
	var b strings.Builder
	b.WriteString("original_transaction_id,app_account_token,customer_id\n")
	for i, r := range e.sim.ImportRows(appstore.Production) {
		fmt.Fprintf(&b, "%s,%s,cust-%d\n", r.OriginalTransactionID, r.AppAccountToken, i)
	}
	im, err := jobs.NewImporter(jobs.ImporterOptions{Ledger: e.deps.Ledger, River: e.client})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := im.Run(context.Background(), "browser-test.csv", strings.NewReader(b.String())); err != nil {
		t.Fatal(err)
	}
}

// browser starts one headless Chromium for the test (STORESYNC_CHROMIUM,
// else /usr/bin/chromium). A missing browser fails the test: the console's
// behaviour in a browser is what this test is for, so skipping would hide
// a broken setup (run the tests through .ci/with-chromium).
func browser(t *testing.T) context.Context {
	t.Helper()
	path := os.Getenv("STORESYNC_CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no Chromium at %s (%v): run the tests through .ci/with-chromium (make test does), or set STORESYNC_CHROMIUM", path, err)
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 1000),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true))
	ctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelB(); cancelA() })
	// Start the browser now, so its start-up is not charged to the first step.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting Chromium %s: %v", path, err)
	}
	return ctx
}

// screenshots is where screenshots go: $STORESYNC_SCREENSHOTS when set
// (kept), else a temporary folder of the test.
func screenshots(t *testing.T) string {
	if d := os.Getenv("STORESYNC_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

func shoot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	// A screenshot taken while the page's meta refresh navigates can wait
	// forever: bound each try and take another.
	var png []byte
	var err error
	for try := 0; try < 3; try++ {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		png, err = chromedp.Run(sctx, chromedp.FullScreenshot(100))
		cancel()
		if err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
}

func step(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	s, err := chromedp.Run(sctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("reading %s: %v", sel, err)
	}
	return s
}

func location(t *testing.T, ctx context.Context) string {
	t.Helper()
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	u, err := chromedp.Run(lctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func number(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(strings.ReplaceAll(strings.TrimSpace(s), ",", ""), 10, 64)
	if err != nil {
		t.Fatalf("%q is not a number", s)
	}
	return n
}

// TestConsoleInBrowser drives the console as an operator would, in one
// browser: refused while logged out, a wrong token, login, an import moving
// on the overview, a customer search, a re-sync showing what changed, and
// forged cross-site posts refused.
func TestConsoleInBrowser(t *testing.T) {
	start := time.Now()
	defer func() { t.Logf("browser test took %s", time.Since(start).Round(time.Millisecond)) }()
	e := newConsoleEnv(t, 60, 10)
	ctx := browser(t)
	shots := screenshots(t)

	// Logged out: pages redirect to the login, APIs answer 401.
	step(t, ctx, "open the overview logged out", chromedp.Navigate(e.url+"/ops/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	if u := location(t, ctx); !strings.Contains(u, "/ops/login") {
		t.Fatalf("logged out, /ops/ went to %s, want the login page", u)
	}
	step(t, ctx, "open River UI logged out", chromedp.Navigate(e.url+"/riverui/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	for _, p := range []string{"/riverui/api/jobs?state=running", "/ops/customer?q=x"} {
		req, _ := http.NewRequest("GET", e.url+p, nil)
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusSeeOther {
			t.Errorf("logged out GET %s: %d, want 401 or a redirect to the login", p, resp.StatusCode)
		}
	}
	if resp, err := http.Get(e.url + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz must stay open: %v %v", resp, err)
	}

	e.importAll(t)

	// A wrong token, then the right one.
	step(t, ctx, "wrong token", chromedp.Navigate(e.url+"/ops/login"), chromedp.SendKeys(chromedp.CSS("#token"), "not-the-token-at-all"),
		chromedp.Click(chromedp.CSS("#login")), chromedp.WaitVisible(chromedp.CSS("#login-error")))
	step(t, ctx, "log in", chromedp.SendKeys(chromedp.CSS("#token"), adminToken), chromedp.Click(chromedp.CSS("#login")),
		chromedp.WaitVisible(chromedp.CSS("#imports")))

	// The import moves: the page refreshes itself while rows are pending.
	first := number(t, text(t, ctx, "tr.import td.done"))
	pending := number(t, text(t, ctx, "tr.import td:nth-child(7)"))
	if pending == 0 {
		t.Fatalf("the import finished before the first look (done %d): slow the budget down", first)
	}
	time.Sleep(2500 * time.Millisecond) // one meta refresh
	second := number(t, text(t, ctx, "tr.import td.done"))
	if second <= first {
		t.Fatalf("import done count %d then %d: the overview does not move", first, second)
	}
	step(t, ctx, "the budget chart", chromedp.WaitVisible(chromedp.CSS("#budget svg polyline")))
	shoot(t, ctx, shots, "overview")
	t.Logf("%s: overview seen", time.Since(start).Round(time.Millisecond))

	// Let the import finish, then search a customer by customer id.
	waitImported(t, e)
	t.Logf("%s: import finished", time.Since(start).Round(time.Millisecond))
	otid := e.sim.ImportRows(appstore.Production)[3].OriginalTransactionID
	step(t, ctx, "search", chromedp.Navigate(e.url+"/ops/customer"), chromedp.SendKeys(chromedp.CSS("#q"), "cust-3"),
		chromedp.Click(chromedp.CSS("#search")), chromedp.WaitVisible(chromedp.CSS(`section.sub[data-otid="`+otid+`"]`)))
	if tl := text(t, ctx, "table.timeline"); !strings.Contains(tl, "transaction") {
		t.Fatalf("timeline of %s lists no transaction:\n%s", otid, tl)
	}
	shoot(t, ctx, shots, "customer")

	// Apple refunds it silently; the re-sync finds and shows the change.
	if err := e.sim.Mutate(otid, sim.MutateRefund); err != nil {
		t.Fatal(err)
	}
	step(t, ctx, "re-sync", chromedp.Click(chromedp.CSS("#resync")), chromedp.WaitVisible(chromedp.CSS("#changes")))
	if st := text(t, ctx, "#resync-state"); st != "completed" {
		t.Fatalf("re-sync state %q, want completed", st)
	}
	if ch := text(t, ctx, "#changes"); !strings.Contains(ch, otid) {
		t.Fatalf("re-sync after a refund shows no change of %s:\n%s", otid, ch)
	}
	shoot(t, ctx, shots, "resync")
	t.Logf("%s: re-sync seen", time.Since(start).Round(time.Millisecond))

	// Forged posts, as a cross-site form would send them: without the
	// session cookie (SameSite=Strict keeps it from other sites) 401; with
	// a valid session cookie but no or a wrong CSRF token 403; and nothing
	// is enqueued.
	session := sessionCookie(t, ctx)
	before := resyncJobs(t, e)
	for _, c := range []struct {
		cookie, csrf string
		want         int
	}{{"", "", 401}, {session, "", 403}, {session, "forged", 403}} {
		form := url.Values{"customerId": {"cust-3"}}
		if c.csrf != "" {
			form.Set("csrf", c.csrf)
		}
		req, _ := http.NewRequest("POST", e.url+"/ops/resync", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "http://evil.example")
		if c.cookie != "" {
			req.Header.Set("Cookie", "storesync_ops="+c.cookie)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("forged POST (cookie %t, csrf %q): %d, want %d", c.cookie != "", c.csrf, resp.StatusCode, c.want)
		}
	}
	if after := resyncJobs(t, e); after != before {
		t.Errorf("forged posts enqueued %d re-syncs", after-before)
	}

	// Search by the order id on the customer's receipt (Apple's Look Up
	// Order ID, through the shared budget), chosen in the form.
	order := simOrders(t, e)[otid]
	step(t, ctx, "search by order id", chromedp.Navigate(e.url+"/ops/customer"), chromedp.SendKeys(chromedp.CSS("#q"), order),
		chromedp.SetValue(chromedp.CSS("#by"), "orderId"), chromedp.Click(chromedp.CSS("#search")),
		chromedp.WaitVisible(chromedp.CSS(`section.sub[data-otid="`+otid+`"]`)))
	if r := text(t, ctx, "#resolved"); !strings.Contains(r, "order id") {
		t.Fatalf("order %s searched, the page says %q", order, r)
	}
	shoot(t, ctx, shots, "customer-by-order-id")
	t.Logf("%s: order id search seen", time.Since(start).Round(time.Millisecond))

	// Forged posts made by the browser itself, from pages of other origins
	// auto-submitting a re-sync form while the operator is logged in.
	crossSite, sameSite := forgingPages(t, e.url)
	before = resyncJobs(t, e)
	// Another site (localhost is not 127.0.0.1's site): SameSite=Strict
	// keeps the session cookie home, so the console sees no login.
	if got := forgedSubmit(t, ctx, crossSite, e.url); !strings.Contains(got, "login required") {
		t.Errorf("a cross-site form post was answered:\n%s", got)
	}
	shoot(t, ctx, shots, "refused-cross-site")
	// Same site, other origin (another port): the browser sends the cookie,
	// and the missing CSRF token refuses it.
	if got := forgedSubmit(t, ctx, sameSite, e.url); !strings.Contains(got, "CSRF") {
		t.Errorf("a same-site, cross-origin form post was answered:\n%s", got)
	}
	shoot(t, ctx, shots, "refused-cross-origin")
	if after := resyncJobs(t, e); after != before {
		t.Errorf("forged browser posts enqueued %d re-syncs", after-before)
	}

	// Logging out ends the session: pages go to the login, and the
	// console's own forms and River UI's API are refused.
	step(t, ctx, "log out", chromedp.Navigate(e.url+"/ops/"), chromedp.Click(chromedp.CSS("form.logout button")), chromedp.WaitVisible(chromedp.CSS("#token")))
	step(t, ctx, "overview after logout", chromedp.Navigate(e.url+"/ops/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	step(t, ctx, "customer after logout", chromedp.Navigate(e.url+"/ops/customer?q=cust-3"), chromedp.WaitVisible(chromedp.CSS("#token")))
	shoot(t, ctx, shots, "logged-out")
	actx, cancel := context.WithTimeout(ctx, 20*time.Second)
	answers, err := chromedp.Run(actx, chromedp.Evaluate[[]int64](`Promise.all([
			fetch("/ops/resync", {method: "POST", body: new URLSearchParams({customerId: "cust-3", csrf: "stale-token"})}),
			fetch("/riverui/api/jobs?state=running"),
		]).then(rs => rs.map(r => r.status))`, chromedp.EvalAwaitPromise))
	cancel()
	if err != nil {
		t.Fatalf("posting after logout: %v", err)
	}
	if len(answers) != 2 || answers[0] != http.StatusUnauthorized || answers[1] != http.StatusUnauthorized {
		t.Errorf("logged out, the browser's re-sync post and River UI API call answered %v, want [401 401]", answers)
	}
	if after := resyncJobs(t, e); after != before {
		t.Errorf("a logged-out browser enqueued %d re-syncs", after-before)
	}
}

// forgingPages serves a page that auto-submits a re-sync form to the
// console at consoleURL (http://127.0.0.1:PORT), and returns its address
// on another site (http://localhost:…) and on the console's site but
// another origin (http://127.0.0.1:…, another port).
func forgingPages(t *testing.T, consoleURL string) (crossSite, sameSite string) {
	t.Helper()
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>win a prize</title>
<form id="f" method="post" action="%s/ops/resync"><input type="hidden" name="customerId" value="cust-3"></form>
<script>document.getElementById("f").submit()</script>`, consoleURL)
	}))
	t.Cleanup(evil.Close)
	return strings.Replace(evil.URL, "127.0.0.1", "localhost", 1) + "/prize", evil.URL + "/prize"
}

// forgedSubmit opens a forging page and returns the text the console
// answered its post with, once the browser has followed the form there.
func forgedSubmit(t *testing.T, ctx context.Context, page, consoleURL string) string {
	t.Helper()
	step(t, ctx, "open "+page, chromedp.Navigate(page))
	deadline := time.Now().Add(15 * time.Second)
	for !strings.HasPrefix(location(t, ctx), consoleURL+"/ops/resync") {
		if time.Now().After(deadline) {
			t.Fatalf("the forging page %s never posted to the console (at %s)", page, location(t, ctx))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return text(t, ctx, "body")
}

func waitImported(t testing.TB, e *consoleEnv) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		runs, err := e.deps.Ledger.ImportRuns(context.Background(), 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) == 1 && runs[0].Progress.Pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("import not finished after 60s: %+v", runs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// sessionCookie reads the HttpOnly session cookie from the browser, as
// only the browser (not page scripts) can.
func sessionCookie(t *testing.T, ctx context.Context) string {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := chromedp.Call(cctx, network.GetCookies, network.GetCookiesParams{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res.Cookies {
		if c.Name == "storesync_ops" {
			if !c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict {
				t.Errorf("session cookie HttpOnly %t SameSite %q, want HttpOnly and Strict", c.HTTPOnly, c.SameSite)
			}
			return c.Value
		}
	}
	t.Fatal("no session cookie in the browser after login")
	return ""
}

func resyncJobs(t *testing.T, e *consoleEnv) int {
	t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE kind = 'resync'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
