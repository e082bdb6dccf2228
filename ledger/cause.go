package ledger

import "context"

// Cause says why the ledger changed: the River job kind that applied the
// facts and, for a notification, Apple's notificationUUID; for an import row,
// its import run. It is recorded on every change-feed event.
type Cause struct {
	Job              string `json:"job,omitempty"`
	NotificationUUID string `json:"notificationUUID,omitempty"`
	ImportRun        int64  `json:"importRun,omitempty"`
}

type causeKey struct{}

// WithCause returns ctx carrying c for the ledger writes made with it.
// Fields of c left empty keep those of a cause already in ctx, so a job
// middleware can set the job kind and the worker add its notification.
func WithCause(ctx context.Context, c Cause) context.Context {
	old := CauseOf(ctx)
	if c.Job == "" {
		c.Job = old.Job
	}
	if c.NotificationUUID == "" {
		c.NotificationUUID = old.NotificationUUID
	}
	if c.ImportRun == 0 {
		c.ImportRun = old.ImportRun
	}
	return context.WithValue(ctx, causeKey{}, c)
}

// CauseOf returns the cause ctx carries; the zero Cause when none (a change
// made outside any job, such as a test or a command run by hand).
func CauseOf(ctx context.Context) Cause {
	c, _ := ctx.Value(causeKey{}).(Cause)
	return c
}
