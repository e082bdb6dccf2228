package budget

import (
	"context"
	"testing"
	"time"

	"github.com/storesync/storesync/migrations/migrationstest"
)

// TestUsageSeriesFillsEveryStep: use 30 s and 90 s ago lands in the last
// two one-minute steps, every other step is zero, the limit comes along,
// and a bad window is refused.
func TestUsageSeriesFillsEveryStep(t *testing.T) {
	t.Parallel()
	_, pool := migrationstest.NewDatabase(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `
		INSERT INTO apple_budget (app, environment, endpoint, rate, capacity, tokens, refilled_at)
		VALUES ('app', 'Production', 'statuses', 50, 12, 0, now());
		INSERT INTO apple_budget_usage (app, environment, endpoint, second, granted, throttled) VALUES
			('app', 'Production', 'statuses', floor(extract(epoch FROM now()))::bigint - 30, 120, 2),
			('app', 'Production', 'statuses', floor(extract(epoch FROM now()))::bigint - 90, 60, 0)`); err != nil {
		t.Fatal(err)
	}
	series, err := UsageSeries(ctx, pool, 10*time.Minute, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(series) != 1 || series[0].Limit != 50 || len(series[0].Points) != 10 {
		t.Fatalf("series %+v, want one of 10 points with limit 50", series)
	}
	var granted, throttled int64
	for i, p := range series[0].Points {
		granted += p.Granted
		throttled += p.Throttled
		if i < 8 && p.Granted != 0 {
			t.Errorf("step %d: %d granted, want 0", i, p.Granted)
		}
	}
	if granted != 180 || throttled != 2 || series[0].Points[9].Granted != 120 {
		t.Errorf("granted %d throttled %d last %d, want 180, 2, 120", granted, throttled, series[0].Points[9].Granted)
	}
	if _, err := UsageSeries(ctx, pool, time.Minute, time.Hour); err == nil {
		t.Error("a step longer than the window was accepted")
	}
}
