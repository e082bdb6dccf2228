package httpapi

import (
	"net/http"
	"strconv"

	"github.com/storesync/storesync/ledger"
)

// maxEventsLimit bounds one page of GET /v1/events.
const maxEventsLimit = 1000

// eventsPage is the JSON of GET /v1/events.
type eventsPage struct {
	Events []ledger.Event `json:"events"`
	// Next is the cursor to pass as after= next time: the last event's id,
	// or the request's after when there was nothing new.
	Next int64 `json:"next"`
}

// events serves the change feed: GET /v1/events?after=CURSOR&limit=N
// answers up to N (default 100, at most 1000) events with an id greater
// than CURSOR (default 0, the beginning), in id order. Poll with the
// answer's next; an empty page means nothing new yet. Ids are stable: the
// same cursor always gives the same events, and none appears later with a
// smaller id than one already returned.
func (b *backend) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after, limit := int64(0), 100
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "after: want a cursor (an event id, 0 for the beginning)"})
			return
		}
		after = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxEventsLimit {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "limit: want a number from 1 to 1000"})
			return
		}
		limit = n
	}
	ctx := r.Context()
	if _, err := b.deps.Ledger.SequenceEvents(ctx); err != nil {
		b.fail(w, "sequencing events", err)
		return
	}
	evs, err := b.deps.Ledger.Events(ctx, after, limit)
	if err != nil {
		b.fail(w, "reading events", err)
		return
	}
	page := eventsPage{Events: evs, Next: after}
	if page.Events == nil {
		page.Events = []ledger.Event{}
	}
	if n := len(evs); n > 0 {
		page.Next = evs[n-1].ID
	}
	writeJSON(w, http.StatusOK, page)
}

func (b *backend) fail(w http.ResponseWriter, what string, err error) {
	writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": what})
	if b.deps.Logger != nil {
		b.deps.Logger.Error(what, "error", err)
	}
}
