package appstore

import "encoding/json"

// Types, subtypes and enum values are plain strings on purpose: Apple adds
// values without notice, and an unknown one must be kept, never an error.

// NotificationPayload is the decoded signedPayload of an App Store Server
// Notification V2 (ResponseBodyV2DecodedPayload). Exactly one of Data,
// Summary, ExternalPurchaseToken and AppData is set.
type NotificationPayload struct {
	NotificationType      string                 `json:"notificationType"`
	Subtype               string                 `json:"subtype,omitempty"`
	NotificationUUID      string                 `json:"notificationUUID"`
	Version               string                 `json:"version,omitempty"`
	SignedDate            Millis                 `json:"signedDate,omitempty"`
	Data                  *NotificationData      `json:"data,omitempty"`
	Summary               *NotificationSummary   `json:"summary,omitempty"`
	ExternalPurchaseToken *ExternalPurchaseToken `json:"externalPurchaseToken,omitempty"`
	AppData               *AppData               `json:"appData,omitempty"`
}

// NotificationData is the data object of a notification about an in-app
// purchase or subscription.
type NotificationData struct {
	AppAppleID               Int         `json:"appAppleId,omitempty"`
	BundleID                 string      `json:"bundleId,omitempty"`
	BundleVersion            string      `json:"bundleVersion,omitempty"`
	Environment              Environment `json:"environment,omitempty"`
	SignedTransactionInfo    string      `json:"signedTransactionInfo,omitempty"`
	SignedRenewalInfo        string      `json:"signedRenewalInfo,omitempty"`
	Status                   Int         `json:"status,omitempty"`
	ConsumptionRequestReason string      `json:"consumptionRequestReason,omitempty"`
}

// NotificationSummary is the summary of a mass renewal-date extension
// (RENEWAL_EXTENSION / SUMMARY).
type NotificationSummary struct {
	RequestIdentifier      string      `json:"requestIdentifier,omitempty"`
	Environment            Environment `json:"environment,omitempty"`
	AppAppleID             Int         `json:"appAppleId,omitempty"`
	BundleID               string      `json:"bundleId,omitempty"`
	ProductID              string      `json:"productId,omitempty"`
	StorefrontCountryCodes []string    `json:"storefrontCountryCodes,omitempty"`
	SucceededCount         Int         `json:"succeededCount,omitempty"`
	FailedCount            Int         `json:"failedCount,omitempty"`
}

// ExternalPurchaseToken is the payload of an EXTERNAL_PURCHASE_TOKEN
// notification. It carries no environment: an id starting with "SANDBOX"
// belongs to the sandbox.
type ExternalPurchaseToken struct {
	ExternalPurchaseID string `json:"externalPurchaseId,omitempty"`
	TokenCreationDate  Millis `json:"tokenCreationDate,omitempty"`
	AppAppleID         Int    `json:"appAppleId,omitempty"`
	BundleID           string `json:"bundleId,omitempty"`
}

// AppData is the payload of a RESCIND_CONSENT notification.
type AppData struct {
	AppAppleID               Int         `json:"appAppleId,omitempty"`
	BundleID                 string      `json:"bundleId,omitempty"`
	Environment              Environment `json:"environment,omitempty"`
	SignedAppTransactionInfo string      `json:"signedAppTransactionInfo,omitempty"`
}

// Subscription status values (Get All Subscription Statuses, notification
// data.status).
const (
	StatusActive       = 1
	StatusExpired      = 2
	StatusBillingRetry = 3
	StatusGracePeriod  = 4
	StatusRevoked      = 5
)

// TransactionPayload is a decoded signedTransactionInfo
// (JWSTransactionDecodedPayload). Every field is optional.
type TransactionPayload struct {
	TransactionID               string          `json:"transactionId,omitempty"`
	OriginalTransactionID       string          `json:"originalTransactionId,omitempty"`
	WebOrderLineItemID          string          `json:"webOrderLineItemId,omitempty"`
	BundleID                    string          `json:"bundleId,omitempty"`
	ProductID                   string          `json:"productId,omitempty"`
	SubscriptionGroupIdentifier string          `json:"subscriptionGroupIdentifier,omitempty"`
	PurchaseDate                Millis          `json:"purchaseDate,omitempty"`
	OriginalPurchaseDate        Millis          `json:"originalPurchaseDate,omitempty"`
	ExpiresDate                 Millis          `json:"expiresDate,omitempty"`
	Quantity                    Int             `json:"quantity,omitempty"`
	Type                        string          `json:"type,omitempty"`
	AppAccountToken             string          `json:"appAccountToken,omitempty"`
	InAppOwnershipType          string          `json:"inAppOwnershipType,omitempty"`
	SignedDate                  Millis          `json:"signedDate,omitempty"`
	RevocationReason            *Int            `json:"revocationReason,omitempty"`
	RevocationDate              Millis          `json:"revocationDate,omitempty"`
	IsUpgraded                  bool            `json:"isUpgraded,omitempty"`
	OfferType                   Int             `json:"offerType,omitempty"`
	OfferIdentifier             string          `json:"offerIdentifier,omitempty"`
	Environment                 Environment     `json:"environment,omitempty"`
	Storefront                  string          `json:"storefront,omitempty"`
	StorefrontID                string          `json:"storefrontId,omitempty"`
	TransactionReason           string          `json:"transactionReason,omitempty"`
	Price                       Int             `json:"price,omitempty"`
	Currency                    string          `json:"currency,omitempty"`
	OfferDiscountType           string          `json:"offerDiscountType,omitempty"`
	AppTransactionID            string          `json:"appTransactionId,omitempty"`
	OfferPeriod                 string          `json:"offerPeriod,omitempty"`
	RevocationType              string          `json:"revocationType,omitempty"`
	RevocationPercentage        Int             `json:"revocationPercentage,omitempty"`
	BillingPlanType             string          `json:"billingPlanType,omitempty"`
	AdvancedCommerceInfo        json.RawMessage `json:"advancedCommerceInfo,omitempty"`
	CommitmentInfo              json.RawMessage `json:"commitmentInfo,omitempty"`
}

// RenewalInfoPayload is a decoded signedRenewalInfo
// (JWSRenewalInfoDecodedPayload). It has no bundleId.
type RenewalInfoPayload struct {
	ExpirationIntent            Int             `json:"expirationIntent,omitempty"`
	OriginalTransactionID       string          `json:"originalTransactionId,omitempty"`
	AutoRenewProductID          string          `json:"autoRenewProductId,omitempty"`
	ProductID                   string          `json:"productId,omitempty"`
	AutoRenewStatus             Int             `json:"autoRenewStatus"`
	IsInBillingRetryPeriod      bool            `json:"isInBillingRetryPeriod,omitempty"`
	PriceIncreaseStatus         *Int            `json:"priceIncreaseStatus,omitempty"`
	GracePeriodExpiresDate      Millis          `json:"gracePeriodExpiresDate,omitempty"`
	OfferType                   Int             `json:"offerType,omitempty"`
	OfferIdentifier             string          `json:"offerIdentifier,omitempty"`
	SignedDate                  Millis          `json:"signedDate,omitempty"`
	Environment                 Environment     `json:"environment,omitempty"`
	RecentSubscriptionStartDate Millis          `json:"recentSubscriptionStartDate,omitempty"`
	RenewalDate                 Millis          `json:"renewalDate,omitempty"`
	RenewalPrice                Int             `json:"renewalPrice,omitempty"`
	Currency                    string          `json:"currency,omitempty"`
	OfferDiscountType           string          `json:"offerDiscountType,omitempty"`
	EligibleWinBackOfferIDs     []string        `json:"eligibleWinBackOfferIds,omitempty"`
	AppAccountToken             string          `json:"appAccountToken,omitempty"`
	AppTransactionID            string          `json:"appTransactionId,omitempty"`
	OfferPeriod                 string          `json:"offerPeriod,omitempty"`
	RenewalBillingPlanType      string          `json:"renewalBillingPlanType,omitempty"`
	AdvancedCommerceInfo        json.RawMessage `json:"advancedCommerceInfo,omitempty"`
	CommitmentInfo              json.RawMessage `json:"commitmentInfo,omitempty"`
}
