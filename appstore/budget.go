package appstore

import (
	"context"
	"time"
)

// Budget hands out permission to send requests to Apple. Every request the
// Client makes first calls Wait, so one Budget shared by every caller keeps
// storesync inside Apple's per-endpoint limits. Implementations: the
// in-process RateBudget here, and the Postgres-backed budget shared by every
// storesync process.
type Budget interface {
	// Wait blocks until one request to endpoint in env may be sent. It
	// returns ctx's error if ctx ends first; no token is spent then.
	Wait(ctx context.Context, env Environment, endpoint Endpoint) error
	// Throttle records that Apple answered 429 and asked for no request to
	// endpoint in env before until. Every later Wait for that endpoint
	// blocks until then.
	Throttle(env Environment, endpoint Endpoint, until time.Time)
}

// Priority orders callers competing for the same budget: interactive work
// (an ops re-sync, a live notification) goes ahead of bulk work (an import,
// a reconciliation sweep).
type Priority int

const (
	// PriorityBulk is the default.
	PriorityBulk Priority = iota
	// PriorityInteractive is served before any waiting bulk caller.
	PriorityInteractive
)

type priorityKey struct{}

// WithPriority returns a context whose Budget waits use p.
func WithPriority(ctx context.Context, p Priority) context.Context {
	return context.WithValue(ctx, priorityKey{}, p)
}

// PriorityFrom returns the priority set by WithPriority, or PriorityBulk.
func PriorityFrom(ctx context.Context) Priority {
	if p, ok := ctx.Value(priorityKey{}).(Priority); ok {
		return p
	}
	return PriorityBulk
}
