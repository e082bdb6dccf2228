package population

import (
	"testing"
	"time"

	"github.com/storesync/storesync/appstore/sim"
)

// BenchmarkBuild is Fill's Go side alone: one subscription's rows built
// and signed per op, no database, so a slow Fill can be told apart from a
// slow Postgres (compare with BenchmarkMillion/generate's subscriptions/s).
//
//	go test -run '^$' -bench Build ./ledger/population/
func BenchmarkBuild(b *testing.B) {
	ca, err := sim.NewCA()
	if err != nil {
		b.Fatal(err)
	}
	o, err := Options{Subscriptions: 1, CA: ca, Now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}.withDefaults()
	if err != nil {
		b.Fatal(err)
	}
	bd := &builder{o: o, importRun: 1, importAt: o.Now.AddDate(0, 0, -35)}
	c := &chunk{rows: map[string][][]any{}}
	i := 0
	var sigs int64
	for b.Loop() {
		if i%chunkSize == 0 {
			sigs += c.signatures
			c = &chunk{rows: map[string][][]any{}}
		}
		if err := bd.build(c, i); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(sigs+c.signatures)/float64(i), "signatures/subscription")
}
