package opsui

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"time"

	"github.com/storesync/storesync/jobs"
)

var pageNames = []string{"login", "overview", "customer", "resync"}

// parsePages parses each page with the shared layout; a template error is
// a build-time bug, surfaced by New (and every test).
func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"commas": commas,
		"utc":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
		"utcp": func(t *time.Time) string {
			if t == nil {
				return "—"
			}
			return t.UTC().Format("2006-01-02 15:04:05 UTC")
		},
		"pct":     func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) + "%" },
		"latency": jobs.LatencyText,
		"persec":  jobs.RateText,
		"orDash": func(s string) string {
			if s == "" {
				return "—"
			}
			return s
		},
	}
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "assets/layout.html", "assets/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("opsui: parsing %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// render executes a page into a buffer first, so a template error gives a
// clean 500 instead of half a page.
func (c *Console) render(w http.ResponseWriter, status int, name string, data map[string]any) {
	var buf bytes.Buffer
	if err := c.pages[name].Execute(&buf, data); err != nil {
		c.logger.Error("ops console: rendering", "page", name, "err", err)
		http.Error(w, "rendering the page failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// commas formats 1234567 as 1,234,567, as `storesync status` does
// (jobs.Commas); other values as fmt.Sprint.
func commas(v any) string {
	var n int64
	switch x := v.(type) {
	case int64:
		n = x
	case int:
		n = int64(x)
	default:
		return fmt.Sprint(v)
	}
	return jobs.Commas(n)
}
