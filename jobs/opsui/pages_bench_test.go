package opsui_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"testing"
)

// BenchmarkPages measures each console page as the server renders it for a
// logged-in operator over a migrated ledger: ns/op is the server time of
// one page (over loopback HTTP), B/page its weight (HTML only; the CSS is
// one cached file, and there are no scripts or images).
//
//	.ci/with-postgres go test -run '^$' -bench Pages ./jobs/opsui/
func BenchmarkPages(b *testing.B) {
	e := newConsoleEnv(b, 200, 1000)
	e.importAll(b)
	waitImported(b, e)
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	get := func(u string) []byte {
		resp, err := hc.Get(u)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			b.Fatalf("GET %s: %d", u, resp.StatusCode)
		}
		return body
	}
	csrf := regexp.MustCompile(`name="csrf" value="([^"]*)"`).FindSubmatch(get(e.url + "/ops/login"))[1]
	resp, err := hc.PostForm(e.url+"/ops/login", url.Values{"csrf": {string(csrf)}, "token": {adminToken}, "next": {"/ops/"}})
	if err != nil || resp.StatusCode != 200 {
		b.Fatalf("login: %v %v", resp, err)
	}
	resp.Body.Close()
	for _, p := range []struct{ name, path string }{
		{"overview", "/ops/"},
		{"customer", "/ops/customer?q=cust-3"},
		{"css", "/ops/ops.css"},
	} {
		b.Run(p.name, func(b *testing.B) {
			var n int
			for b.Loop() {
				n = len(get(e.url + p.path))
			}
			b.ReportMetric(float64(n), "B/page")
		})
	}
}
