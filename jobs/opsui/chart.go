package opsui

import (
	"fmt"
	"html/template"
	"strconv"
	"strings"

	"github.com/storesync/storesync/ledger/budget"
)

// Chart geometry, in SVG user units (the SVG scales to its container).
const (
	chartW, chartH         = 640, 180
	padL, padR, padT, padB = 52, 12, 22, 30
	plotW, plotH           = chartW - padL - padR, chartH - padT - padB
)

// budgetChart draws one endpoint's calls per second (the step's average)
// against its limit, with the step's 429s as red ticks along the bottom.
// It is drawn on the server so the page needs no JavaScript; every string
// put into the SVG is escaped.
func budgetChart(s budget.Series) template.HTML {
	n := len(s.Points)
	step := s.Step.Seconds()
	maxY := s.Limit * 1.15
	var max429 int64
	for _, p := range s.Points {
		if v := float64(p.Granted) / step; v > maxY {
			maxY = v * 1.1
		}
		max429 = max(max429, p.Throttled)
	}
	if maxY <= 0 {
		maxY = 1
	}
	x := func(i int) float64 { return padL + float64(plotW)*float64(i)/float64(max(n-1, 1)) }
	y := func(v float64) float64 { return padT + float64(plotH)*(1-v/maxY) }

	var b strings.Builder
	title := fmt.Sprintf("%s %s %s", s.App, s.Environment, s.Endpoint)
	fmt.Fprintf(&b, `<figure class="chart"><svg viewBox="0 0 %d %d" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`,
		chartW, chartH, template.HTMLEscapeString("Apple calls per second, "+title))
	fmt.Fprintf(&b, `<text x="%d" y="14" class="t">%s — calls/s (avg per %s), limit %s/s</text>`, padL,
		template.HTMLEscapeString(title), s.Step, trimFloat(s.Limit, 2))
	// Axes and y ticks: 0, half the limit, the limit, the top.
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" class="axis"/>`, padL, padT, padL, padT+plotH)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" class="axis"/>`, padL, padT+plotH, padL+plotW, padT+plotH)
	for _, v := range []float64{0, maxY / 2, maxY} {
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" class="yl">%s</text>`, padL-6, y(v)+4, trimFloat(v, 1))
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" class="grid"/>`, padL, y(v), padL+plotW, y(v))
	}
	if s.Limit > 0 {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" class="limit"/><text x="%d" y="%.1f" class="ll">limit</text>`,
			padL, y(s.Limit), padL+plotW, y(s.Limit), padL+plotW-30, y(s.Limit)-3)
	}
	// x labels: first, middle and last step, UTC.
	if n > 0 {
		for _, i := range []int{0, n / 2, n - 1} {
			anchor := "middle"
			if i == 0 {
				anchor = "start"
			} else if i == n-1 {
				anchor = "end"
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" class="xl" text-anchor="%s">%s</text>`, x(i), chartH-8, anchor,
				s.Points[i].Start.UTC().Format("15:04 UTC"))
		}
	}
	// The calls line.
	var pts strings.Builder
	for i, p := range s.Points {
		fmt.Fprintf(&pts, "%.1f,%.1f ", x(i), y(float64(p.Granted)/step))
	}
	fmt.Fprintf(&b, `<polyline points="%s" class="calls"/>`, strings.TrimSpace(pts.String()))
	// 429s: a red tick per step that had any, taller with more.
	for i, p := range s.Points {
		if p.Throttled > 0 {
			h := 4 + 14*float64(p.Throttled)/float64(max429)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="2" height="%.1f" class="t429"><title>%d × 429 at %s</title></rect>`,
				x(i)-1, float64(padT+plotH)-h, h, p.Throttled, p.Start.UTC().Format("15:04"))
		}
	}
	b.WriteString(`</svg>`)
	var total, total429 int64
	for _, p := range s.Points {
		total += p.Granted
		total429 += p.Throttled
	}
	fmt.Fprintf(&b, `<figcaption>%s calls, %s × 429 in the window (red ticks)</figcaption></figure>`, commas(total), commas(total429))
	return template.HTML(b.String())
}

func trimFloat(f float64, prec int) string {
	s := strconv.FormatFloat(f, 'f', prec, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}
