package opsui_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/storesync/storesync/jobs/opsui"
)

// TestWrongTokenLooksTheSame: a wrong token gets the same status and page
// whether or not an admin token is configured, so a probe cannot tell
// whether the admin API is on.
func TestWrongTokenLooksTheSame(t *testing.T) {
	t.Parallel()
	deps, client := queueOnlyDeps(t)
	csrfRE := regexp.MustCompile(`name="csrf" value="[^"]*"`)
	var pages []string
	for _, token := range []string{"", adminToken} {
		c, err := opsui.New(context.Background(), deps, client, opsui.Options{AdminToken: token, NoRiverUI: true})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(c)
		jar, _ := cookiejar.New(nil)
		hc := &http.Client{Jar: jar}
		resp, err := hc.Get(srv.URL + "/ops/login")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		csrf := regexp.MustCompile(`name="csrf" value="([^"]*)"`).FindStringSubmatch(string(body))[1]
		resp, err = hc.PostForm(srv.URL+"/ops/login", url.Values{"csrf": {csrf}, "token": {"wrong-token-wrong-token"}, "next": {"/ops/"}})
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("admin token set %t: wrong token answered %d, want 401", token != "", resp.StatusCode)
		}
		pages = append(pages, csrfRE.ReplaceAllString(string(body), ""))
		// Nothing logs in while no admin token is set, not even an empty one.
		if token == "" && !strings.Contains(string(body), "Wrong token.") {
			t.Errorf("no admin token: the login page does not say wrong token:\n%s", body)
		}
	}
	if pages[0] != pages[1] {
		t.Errorf("a wrong token's page differs with and without an admin token:\n%s\n---\n%s", pages[0], pages[1])
	}
}

// TestLogoutEndsCopiedSessions: after logout, a copy of the session's
// cookie (another tab, a proxy's log) is refused like no session at all,
// while another operator's session goes on working.
func TestLogoutEndsCopiedSessions(t *testing.T) {
	t.Parallel()
	deps, client := queueOnlyDeps(t)
	c, err := opsui.New(context.Background(), deps, client, opsui.Options{AdminToken: adminToken, NoRiverUI: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	defer srv.Close()
	e := &consoleEnv{url: srv.URL}
	mine, other := loggedIn(t, e), loggedIn(t, e)
	base, _ := url.Parse(srv.URL + "/ops/")
	var copied *http.Cookie
	for _, ck := range mine.Jar.Cookies(base) {
		if ck.Name == "storesync_ops" {
			copied = ck
		}
	}
	if copied == nil {
		t.Fatal("no session cookie after login")
	}
	// Without following redirects: a refused session is a 303 to the login.
	withCookie := func(ck *http.Cookie) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/ops/", nil)
		req.AddCookie(ck)
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := withCookie(copied); code != http.StatusOK {
		t.Fatalf("the copied cookie before logout: %d, want 200", code)
	}

	code, page := getPage(t, mine, srv.URL+"/ops/")
	m := regexp.MustCompile(`action="/ops/logout" class="logout"><input type="hidden" name="csrf" value="([^"]*)"`).FindStringSubmatch(page)
	if code != http.StatusOK || m == nil {
		t.Fatalf("overview: %d, no logout form:\n%s", code, page)
	}
	resp, err := mine.PostForm(srv.URL+"/ops/logout", url.Values{"csrf": {m[1]}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `id="token"`) {
		t.Fatalf("logout ended on %d, not the login page:\n%s", resp.StatusCode, body)
	}
	if code := withCookie(copied); code != http.StatusSeeOther {
		t.Fatalf("the copied cookie after logout: %d, want 303 to the login", code)
	}
	if code, _ := getPage(t, other, srv.URL+"/ops/"); code != http.StatusOK {
		t.Fatalf("another operator's session after this logout: %d, want 200", code)
	}
}
