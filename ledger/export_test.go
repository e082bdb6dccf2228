package ledger

import "context"

// QueueCountsCapped is QueueCounts with a cap of limit jobs per state, so a
// test can pass the cap with a few jobs.
func QueueCountsCapped(l *Ledger, ctx context.Context, limit int) ([]QueueCount, error) {
	return l.queueCounts(ctx, limit)
}
