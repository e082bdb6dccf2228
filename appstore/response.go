package appstore

// Response bodies of the App Store Server API endpoints storesync calls.

// StatusResponse is the body of Get All Subscription Statuses.
type StatusResponse struct {
	Environment Environment                       `json:"environment,omitempty"`
	BundleID    string                            `json:"bundleId,omitempty"`
	AppAppleID  Int                               `json:"appAppleId,omitempty"`
	Data        []SubscriptionGroupIdentifierItem `json:"data"`
}

// SubscriptionGroupIdentifierItem groups the latest transaction of each
// subscription in one subscription group.
type SubscriptionGroupIdentifierItem struct {
	SubscriptionGroupIdentifier string                 `json:"subscriptionGroupIdentifier"`
	LastTransactions            []LastTransactionsItem `json:"lastTransactions"`
}

// LastTransactionsItem is the latest signed state of one subscription.
type LastTransactionsItem struct {
	Status                Int    `json:"status"`
	OriginalTransactionID string `json:"originalTransactionId"`
	SignedTransactionInfo string `json:"signedTransactionInfo"`
	SignedRenewalInfo     string `json:"signedRenewalInfo"`
}

// HistoryResponse is one page of Get Transaction History (v2). Keep Revision
// to ask for the next page, or, on the last page, for changes since.
type HistoryResponse struct {
	Revision           string      `json:"revision"`
	HasMore            bool        `json:"hasMore"`
	BundleID           string      `json:"bundleId,omitempty"`
	AppAppleID         Int         `json:"appAppleId,omitempty"`
	Environment        Environment `json:"environment,omitempty"`
	SignedTransactions []string    `json:"signedTransactions"`
}

// TransactionInfoResponse is the body of Get Transaction Info.
type TransactionInfoResponse struct {
	SignedTransactionInfo string `json:"signedTransactionInfo"`
}

// NotificationHistoryRequest is the body of Get Notification History. The
// identical body must be sent with every page of one query. Empty filters
// are omitted: Apple rejects an empty transactionId.
type NotificationHistoryRequest struct {
	StartDate           Millis `json:"startDate"`
	EndDate             Millis `json:"endDate"`
	NotificationType    string `json:"notificationType,omitempty"`
	NotificationSubtype string `json:"notificationSubtype,omitempty"`
	TransactionID       string `json:"transactionId,omitempty"`
	OnlyFailures        bool   `json:"onlyFailures,omitempty"`
}

// NotificationHistoryResponse is one page of Get Notification History.
type NotificationHistoryResponse struct {
	PaginationToken     string                            `json:"paginationToken,omitempty"`
	HasMore             bool                              `json:"hasMore"`
	NotificationHistory []NotificationHistoryResponseItem `json:"notificationHistory"`
}

// NotificationHistoryResponseItem is one notification as Apple sent it, with
// its delivery attempts (at most six).
type NotificationHistoryResponseItem struct {
	SignedPayload string            `json:"signedPayload"`
	SendAttempts  []SendAttemptItem `json:"sendAttempts,omitempty"`
}

// SendAttemptItem is one delivery attempt of a notification.
type SendAttemptItem struct {
	AttemptDate       Millis `json:"attemptDate"`
	SendAttemptResult string `json:"sendAttemptResult"`
}

// RefundHistoryResponse is one page of Get Refund History (v2).
type RefundHistoryResponse struct {
	SignedTransactions []string `json:"signedTransactions"`
	Revision           string   `json:"revision"`
	HasMore            bool     `json:"hasMore"`
}

// OrderLookupResponse is the body of Look Up Order ID; Status 0 is valid,
// 1 invalid.
type OrderLookupResponse struct {
	Status             Int      `json:"status"`
	SignedTransactions []string `json:"signedTransactions"`
}

// SendTestNotificationResponse is the body of Request a Test Notification.
type SendTestNotificationResponse struct {
	TestNotificationToken string `json:"testNotificationToken"`
}

// CheckTestNotificationResponse is the body of Get Test Notification Status.
type CheckTestNotificationResponse struct {
	SignedPayload string            `json:"signedPayload"`
	SendAttempts  []SendAttemptItem `json:"sendAttempts,omitempty"`
}

// ErrorResponse is the JSON body of a non-2xx answer (absent on 401).
type ErrorResponse struct {
	ErrorCode    Int    `json:"errorCode"`
	ErrorMessage string `json:"errorMessage"`
}
