package sim

import (
	"sync/atomic"
	"time"
)

// simClock is the simulated clock. It only moves forward, and only when the
// world applies an event or Advance reaches its target, always under the
// world's write lock; readers holding the read lock therefore see a time
// consistent with the data. It is atomic so that code outside the lock
// (control endpoints, stats) can read it too.
type simClock struct{ ms atomic.Int64 }

func (c *simClock) now() time.Time { return time.UnixMilli(c.ms.Load()).UTC() }

// set moves the clock to t; earlier times are ignored so the clock never
// runs backwards.
func (c *simClock) set(t time.Time) {
	ms := t.UnixMilli()
	for {
		cur := c.ms.Load()
		if ms <= cur || c.ms.CompareAndSwap(cur, ms) {
			return
		}
	}
}
