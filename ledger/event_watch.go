package ledger

import (
	"context"
	"sync/atomic"
)

// EventWatch learns whether writes made with a context wrote change-feed
// events, so the job that made them can have the feed fanned out at once
// instead of waiting for the periodic fan-out. Create it with
// WithEventWatch; a nil *EventWatch reports false.
type EventWatch struct{ wrote atomic.Bool }

type eventWatchKey struct{}

// WithEventWatch returns ctx carrying a fresh EventWatch, and the watch.
func WithEventWatch(ctx context.Context) (context.Context, *EventWatch) {
	w := &EventWatch{}
	return context.WithValue(ctx, eventWatchKey{}, w), w
}

// Wrote reports whether an event was written with the watch's context
// (its transaction may since have rolled back: a false alarm costs one
// fan-out pass, a missed one a delayed delivery).
func (w *EventWatch) Wrote() bool { return w != nil && w.wrote.Load() }

// noteEventsWritten marks ctx's watch, if any.
func noteEventsWritten(ctx context.Context) {
	if w, _ := ctx.Value(eventWatchKey{}).(*EventWatch); w != nil {
		w.wrote.Store(true)
	}
}
