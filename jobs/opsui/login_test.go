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
