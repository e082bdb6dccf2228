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
	// QueueBulkReceipts resolves the receipts of an import (Get Transaction
	// Info) and QueueBulkTokens sets appAccountTokens at Apple: each spends
	// its own endpoint's budget, so their jobs, while they wait for it,
	// must not hold the slots of the statuses jobs their answers feed.
	QueueBulkReceipts = "bulk_receipts"
	QueueBulkTokens   = "bulk_tokens"
	QueueMaintenance  = "maintenance"
)

// Job priorities (River: 1 is worked first).
const (
	PriorityInteractive = 1
	PriorityLive        = 2
	PriorityBulk        = 3
	PriorityMaintenance = 4
)
