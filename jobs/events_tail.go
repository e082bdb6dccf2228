package jobs

import (
	"context"
	"time"

	"github.com/storesync/storesync/ledger"
)

// TailEvents calls fn for every change-feed event after position after, in
// order, sequencing new events as it goes, and returns the last position
// seen. Without follow it returns once the feed is exhausted; with follow it
// polls every poll (default 1s) until ctx ends, returning ctx's error.
// An error from fn stops it.
func TailEvents(ctx context.Context, l *ledger.Ledger, after int64, follow bool, poll time.Duration, fn func(ledger.Event) error) (int64, error) {
	if poll <= 0 {
		poll = time.Second
	}
	for {
		if _, err := l.SequenceEvents(ctx); err != nil {
			return after, err
		}
		for {
			evs, err := l.Events(ctx, after, 500)
			if err != nil {
				return after, err
			}
			for _, e := range evs {
				if err := fn(e); err != nil {
					return after, err
				}
				after = e.ID
			}
			if len(evs) < 500 {
				break
			}
		}
		if !follow {
			return after, nil
		}
		select {
		case <-ctx.Done():
			return after, ctx.Err()
		case <-time.After(poll):
		}
	}
}
