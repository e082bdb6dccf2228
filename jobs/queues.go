package jobs

// Queues. Interactive work (ops re-sync) and live notifications have their
// own queues so a migration of a million rows never delays them; the budget
// also serves their requests to Apple first.
const (
	QueueInteractive   = "interactive"
	QueueNotifications = "notifications"
	QueueBulk          = "bulk"
	// QueueBulkHistory pages the histories of imports, apart from bulk's
	// statuses so that each runs at its own endpoint's limit.
	QueueBulkHistory = "bulk_history"
	QueueMaintenance = "maintenance"
)

// Job priorities (River: 1 is worked first).
const (
	PriorityInteractive = 1
	PriorityLive        = 2
	PriorityBulk        = 3
	PriorityMaintenance = 4
)
