package jobs

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
)

// feedNudgeWindow is the least time between two fan-outs asked for by one
// process: a busy import writes events in hundreds of jobs a second, and
// one fan-out pass serves them all.
const feedNudgeWindow = 20 * time.Millisecond

// feedNudger asks for a fan-out (EventFanOutArgs, unique while waiting or
// running) after a job wrote change-feed events, so events reach the
// endpoints without waiting for the periodic fan-out, and even where none
// is scheduled. Requests within feedNudgeWindow of the last become one
// trailing request at the window's end, never none: the last writer's
// events always get a fan-out after their commit.
type feedNudger struct {
	logger   *slog.Logger
	mu       sync.Mutex
	last     time.Time
	trailing bool
}

// nudge asks client for a fan-out now, or at the end of the window.
func (n *feedNudger) nudge(client *river.Client[pgx.Tx]) {
	n.mu.Lock()
	if n.trailing {
		n.mu.Unlock()
		return
	}
	wait := time.Until(n.last.Add(feedNudgeWindow))
	if wait <= 0 {
		n.last = time.Now()
		n.mu.Unlock()
		n.insert(client)
		return
	}
	n.trailing = true
	n.mu.Unlock()
	time.AfterFunc(wait, func() {
		n.mu.Lock()
		n.trailing, n.last = false, time.Now()
		n.mu.Unlock()
		n.insert(client)
	})
}

// insert enqueues the fan-out; a unique conflict (one already waits or
// runs) is the common, successful case. A failure only delays delivery
// until the periodic fan-out, so it is logged, not returned.
func (n *feedNudger) insert(client *river.Client[pgx.Tx]) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := client.Insert(ctx, EventFanOutArgs{}, nil); err != nil {
		n.logger.Warn("asking for an event fan-out failed: the periodic fan-out will deliver", "err", err)
	}
}
