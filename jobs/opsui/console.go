package opsui

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"riverqueue.com/riverui"

	"github.com/storesync/storesync/jobs"
)

//go:embed assets/*.html assets/*.css
var assets embed.FS

// Options configures New.
type Options struct {
	// AdminToken is STORESYNC_ADMIN_TOKEN, typed once at /ops/login. Empty:
	// the console still answers, but no login succeeds (the same answer as
	// a wrong token, so a probe cannot tell whether admin is enabled).
	AdminToken string
	// SessionTTL is how long a login lasts; default 12h.
	SessionTTL time.Duration
	// SecureCookies marks cookies Secure (set it behind HTTPS). Off by
	// default because `serve` itself speaks plain HTTP on localhost.
	SecureCookies bool
	// ResyncWait is how long POST /ops/resync waits for the job before
	// showing a page that refreshes until it finishes; default 5s.
	ResyncWait time.Duration
	// NoRiverUI leaves /riverui out (tests of the console alone).
	NoRiverUI bool
	// RiverUIIdleStop is how long River UI's background work (job counts
	// refreshed every ten seconds) runs after its last request; it starts
	// again with the next one. Default DefaultRiverUIIdleStop.
	RiverUIIdleStop time.Duration
	// Now is the clock of sessions and "ago" labels; default time.Now.
	Now func() time.Time
}

// Console serves /ops and /riverui. Create it with New.
type Console struct {
	deps    *jobs.Deps
	client  *river.Client[pgx.Tx]
	auth    *auth
	opts    Options
	pages   map[string]*template.Template
	riverUI *lazyRiverUI
	mux     *http.ServeMux
	logger  *slog.Logger
}

// New builds the console. deps needs Ledger (its pool is what the budget
// usage is read from); client inserts re-syncs and backs River UI, whose
// background caches run only while someone uses it, and never after ctx
// ends. It fails only when River UI cannot be built.
func New(ctx context.Context, deps *jobs.Deps, client *river.Client[pgx.Tx], opts Options) (*Console, error) {
	if deps == nil || deps.Ledger == nil || client == nil {
		return nil, errors.New("opsui: New needs deps with a Ledger and a River client")
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = 12 * time.Hour
	}
	if opts.ResyncWait <= 0 {
		opts.ResyncWait = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RiverUIIdleStop < 0 {
		return nil, fmt.Errorf("opsui: Options.RiverUIIdleStop %s is negative: use 0 for the default (%s)", opts.RiverUIIdleStop, DefaultRiverUIIdleStop)
	}
	if opts.RiverUIIdleStop == 0 {
		opts.RiverUIIdleStop = DefaultRiverUIIdleStop
	}
	c := &Console{deps: deps, client: client, opts: opts, auth: newAuth(opts.AdminToken, opts.SessionTTL, opts.Now, opts.SecureCookies)}
	var err error
	if c.pages, err = parsePages(); err != nil {
		return nil, err
	}
	c.logger = deps.Logger
	if c.logger == nil {
		c.logger = slog.Default()
	}
	if !opts.NoRiverUI {
		c.riverUI, err = newLazyRiverUI(ctx, client, riverui.HandlerOpts{Logger: c.logger, Prefix: "/riverui"}, opts.RiverUIIdleStop, opts.Now)
		if err != nil {
			return nil, err
		}
	}
	c.routes()
	return c, nil
}

func (c *Console) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /ops", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ops/", http.StatusFound) })
	m.HandleFunc("GET /ops/login", c.loginPage)
	m.HandleFunc("POST /ops/login", c.login)
	m.HandleFunc("GET /ops/ops.css", c.css)
	m.Handle("POST /ops/logout", c.page(c.logout))
	m.Handle("GET /ops/{$}", c.page(c.overview))
	m.Handle("GET /ops/customer", c.page(c.customer))
	m.Handle("POST /ops/resync", c.page(c.resync))
	m.Handle("GET /ops/resync/{jobId}", c.page(c.resyncResult))
	m.Handle("/ops/", c.page(func(w http.ResponseWriter, r *http.Request, _ string) { http.NotFound(w, r) }))
	if c.riverUI != nil {
		m.Handle("/riverui", c.guardRiverUI(c.riverUI))
		m.Handle("/riverui/", c.guardRiverUI(c.riverUI))
	}
	c.mux = m
}

// ServeHTTP serves /ops/… and /riverui/…; anything else is 404.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "same-origin")
	c.mux.ServeHTTP(w, r)
}

// Wrap routes /ops and /riverui to the console and everything else to
// api (the webhook, /healthz, /metrics, /admin), which stay reachable
// without a login.
func (c *Console) Wrap(api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if p == "/ops" || strings.HasPrefix(p, "/ops/") || p == "/riverui" || strings.HasPrefix(p, "/riverui/") {
			c.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

// page requires a session: without one a GET is redirected to the login
// page and anything else gets 401. A POST must also carry the session's
// CSRF token (403 otherwise), so a cross-site form cannot act for a
// logged-in operator even where SameSite is not enforced.
func (c *Console) page(h func(w http.ResponseWriter, r *http.Request, session string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, ok := c.session(w, r)
		if !ok {
			return
		}
		if s == "" {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				http.Redirect(w, r, "/ops/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			http.Error(w, "login required", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
			if !c.auth.checkCSRF(r, s) {
				http.Error(w, "missing or wrong CSRF token: reload the page and try again", http.StatusForbidden)
				return
			}
		}
		w.Header().Set("Cache-Control", "no-store")
		h(w, r, s)
	})
}

// session returns the request's session: "" when it has none, or an
// expired, forged or logged-out one. When the ledger cannot say whether
// the session was logged out it answers 503 itself and returns false: a
// logged-out cookie must not work because Postgres is slow.
func (c *Console) session(w http.ResponseWriter, r *http.Request) (string, bool) {
	s := c.auth.session(r)
	if s == "" {
		return "", true
	}
	id, _ := sessionID(s)
	out, err := c.deps.Ledger.OpsLoggedOut(r.Context(), id)
	if err != nil {
		c.logger.Error("ops console: checking the session", "err", err)
		http.Error(w, "the ops console could not check your login against the database: try again in a moment", http.StatusServiceUnavailable)
		return "", false
	}
	if out {
		return "", true
	}
	return s, true
}

// guardRiverUI puts River UI behind the session: its pages redirect to
// the login, its API answers 401, and its state-changing API calls
// (cancel, retry, delete) must come from our own origin.
func (c *Console) guardRiverUI(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, ok := c.session(w, r)
		if !ok {
			return
		}
		if s == "" {
			if strings.HasPrefix(r.URL.Path, "/riverui/api/") || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
				http.Error(w, "login required", http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, "/ops/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !sameOrigin(r) {
			http.Error(w, "cross-site request refused", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (c *Console) css(w http.ResponseWriter, r *http.Request) {
	b, _ := assets.ReadFile("assets/ops.css")
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "max-age=3600")
	_, _ = w.Write(b)
}

// safeNext keeps a post-login redirect on this site's console.
func safeNext(next string) string {
	if (strings.HasPrefix(next, "/ops/") || strings.HasPrefix(next, "/riverui")) && !strings.HasPrefix(next, "//") && !strings.Contains(next, "\\") {
		return next
	}
	return "/ops/"
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.renderLogin(w, r, http.StatusOK, "")
}

func (c *Console) renderLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	tok := randomString()
	c.auth.setCookie(w, loginCookie, tok, "/ops/login", 600)
	w.Header().Set("Cache-Control", "no-store")
	c.render(w, status, "login", map[string]any{
		"Title": "Log in", "CSRF": tok, "Next": safeNext(r.FormValue("next")), "Error": msg,
	})
}

// login checks the typed token. A wrong token, and any token while no
// admin token is configured, get the same 401 page.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	lc, err := r.Cookie(loginCookie)
	if err != nil || lc.Value == "" || r.PostFormValue(csrfField) != lc.Value {
		c.renderLogin(w, r, http.StatusForbidden, "The login form expired: please try again.")
		return
	}
	if !c.auth.checkToken(r.PostFormValue("token")) {
		c.logger.Warn("ops console: failed login", "remote", r.RemoteAddr)
		c.renderLogin(w, r, http.StatusUnauthorized, "Wrong token.")
		return
	}
	c.auth.setCookie(w, loginCookie, "", "/ops/login", -1)
	c.auth.setCookie(w, sessionCookie, c.auth.newSession(), "/", int(c.opts.SessionTTL/time.Second))
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

// logout ends the session everywhere: the browser's cookie is cleared and
// the session is recorded as logged out, so that copies of the cookie no
// longer work in any serve process. If that cannot be recorded the cookie
// is kept, so the operator can try again.
func (c *Console) logout(w http.ResponseWriter, r *http.Request, session string) {
	id, expires := sessionID(session)
	if err := c.deps.Ledger.RecordOpsLogout(r.Context(), id, expires); err != nil {
		c.logger.Error("ops console: logging out", "err", err)
		http.Error(w, "logging out failed: the database did not record it, so the session still works; try again", http.StatusServiceUnavailable)
		return
	}
	c.auth.setCookie(w, sessionCookie, "", "/", -1)
	http.Redirect(w, r, "/ops/login", http.StatusSeeOther)
}
