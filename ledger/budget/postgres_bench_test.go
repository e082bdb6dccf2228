package budget

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/migrations/migrationstest"
)

// BenchmarkPostgresBudgetUtilization measures how much of the limit the
// shared budget itself hands out when callers always wait: 1, 2 and 4
// budgets (processes) on one database, 30 callers each, L = 50/s, for
// 10 s after a 1 s warm-up. It separates the
// budget's own losses (lease round trips, sleeps) from those of the workers
// in BenchmarkMigrateServeProcesses. Goal: ≥ 97% of L, never above L plus
// the bucket's burst.
func BenchmarkPostgresBudgetUtilization(b *testing.B) {
	for _, procs := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("procs=%d", procs), func(b *testing.B) {
			_, pool := migrationstest.NewDatabase(b)
			const limit = 50.0
			var budgets []*Postgres
			for range procs {
				bud, err := NewPostgres(PostgresOptions{Pool: pool, App: "com.example.bench",
					Limits: map[appstore.Environment]map[appstore.Endpoint]float64{appstore.Production: {appstore.EndpointHistory: limit}}})
				if err != nil {
					b.Fatal(err)
				}
				budgets = append(budgets, bud)
			}
			for range b.N {
				ctx, cancel := context.WithCancel(context.Background())
				var grants atomic.Int64
				var wg sync.WaitGroup
				for _, bud := range budgets {
					for range 30 {
						wg.Add(1)
						go func() {
							defer wg.Done()
							for bud.Wait(ctx, appstore.Production, appstore.EndpointHistory) == nil {
								grants.Add(1)
							}
						}()
					}
				}
				time.Sleep(time.Second) // the bucket's initial burst is spent
				from, start := grants.Load(), time.Now()
				time.Sleep(10 * time.Second)
				got, elapsed := grants.Load()-from, time.Since(start).Seconds()
				cancel()
				wg.Wait()
				b.ReportMetric(float64(got)/(limit*elapsed)*100, "%L")
			}
		})
	}
}
