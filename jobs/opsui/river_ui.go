package opsui

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"riverqueue.com/riverui"
)

// DefaultRiverUIIdleStop is how long River UI's background work runs
// after its last request, unless Options.RiverUIIdleStop says otherwise.
// An open River UI tab polls its API every few seconds, so it never goes
// idle while someone looks.
const DefaultRiverUIIdleStop = 5 * time.Minute

// lazyRiverUI serves River UI, running its background work only while
// someone uses it. From the moment River UI's handler starts it refreshes
// job counts every ten seconds (eight index scans of river_job, and an
// exact count of the whole table every 30 s to 15 min), whether or not
// anyone looks: on a busy serve that is Postgres time taken from the
// webhook and the workers, in every serve process. So the handler is built
// and started on the first request that passed the login, and stopped
// once no request came for idleStop; a later request starts a new one.
// A new handler each time, not a restart, because River UI's Start
// returns without starting while its previous run is still stopping.
type lazyRiverUI struct {
	parent    context.Context // ends every run with serve
	client    *river.Client[pgx.Tx]
	opts      riverui.HandlerOpts
	idleStop  time.Duration
	now       func() time.Time
	checkIdle time.Duration // how often a run looks whether it went idle

	mu       sync.Mutex
	handler  *riverui.Handler // nil while stopped
	stop     context.CancelFunc
	lastUsed time.Time
	starts   int // runs started so far, for tests
}

func newLazyRiverUI(parent context.Context, client *river.Client[pgx.Tx], opts riverui.HandlerOpts, idleStop time.Duration, now func() time.Time) (*lazyRiverUI, error) {
	l := &lazyRiverUI{parent: parent, client: client, opts: opts, idleStop: idleStop, now: now, checkIdle: min(idleStop/4, time.Minute)}
	// Built once now so a configuration River UI refuses fails serve at
	// start, not at an operator's first click; it is never started.
	if _, err := l.build(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *lazyRiverUI) build() (*riverui.Handler, error) {
	opts := l.opts
	opts.Endpoints = riverui.NewEndpoints(l.client, nil)
	return riverui.NewHandler(&opts)
}

func (l *lazyRiverUI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, err := l.running()
	if err != nil {
		http.Error(w, "River UI could not start: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	h.ServeHTTP(w, r)
}

// running returns the running handler, starting one if none runs, and
// marks it used now.
func (l *lazyRiverUI) running() (*riverui.Handler, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lastUsed = l.now()
	if l.handler != nil {
		return l.handler, nil
	}
	h, err := l.build()
	if err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(l.parent)
	if err := h.Start(ctx); err != nil {
		stop()
		return nil, err
	}
	l.handler, l.stop = h, stop
	l.starts++
	go l.stopWhenIdle(ctx, h)
	return h, nil
}

// stopWhenIdle stops run h once no request came for idleStop, or when
// serve ends.
func (l *lazyRiverUI) stopWhenIdle(ctx context.Context, h *riverui.Handler) {
	tick := time.NewTicker(l.checkIdle)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		l.mu.Lock()
		if l.handler == h && l.now().Sub(l.lastUsed) >= l.idleStop {
			l.stop()
			l.handler, l.stop = nil, nil
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
	}
}

// isRunning says whether River UI's background work runs now, and how
// many runs started so far.
func (l *lazyRiverUI) isRunning() (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.handler != nil, l.starts
}
