package appstore

import (
	"context"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// Every response fixture of Apple's library, sent by a fake server to the
// endpoint Apple's tests use; the request and the decoded values are
// checked as the applevectors/testdata/CASES.md §7 states.
func TestResponseFixtures(t *testing.T) {
	t.Parallel()
	falseValue := false
	for _, tc := range []struct {
		fixture   string
		method    string
		path      string
		query     url.Values
		body      string // JSON; "" for none
		endpoint  Endpoint
		call      func(ctx context.Context, c *Client) (any, error)
		want      any
		wantError bool
	}{
		{
			fixture: "transactionHistoryResponse.json", method: http.MethodGet, path: "/inApps/v2/history/1234",
			query: url.Values{
				"revision": {"revision_input"}, "startDate": {"123455"}, "endDate": {"123456"},
				"productId": {"com.example.1", "com.example.2"}, "productType": {"CONSUMABLE", "AUTO_RENEWABLE"},
				"sort": {"ASCENDING"}, "subscriptionGroupIdentifier": {"sub_group_id", "sub_group_id_2"},
				"inAppOwnershipType": {"FAMILY_SHARED"}, "revoked": {"false"},
			},
			endpoint: EndpointHistory,
			call: func(ctx context.Context, c *Client) (any, error) {
				r, _, err := c.GetTransactionHistory(ctx, "1234", fullHistoryQuery(&falseValue))
				return r, err
			},
			want: &HistoryResponse{
				Revision: "revision_output", HasMore: true, BundleID: "com.example", AppAppleID: 323232,
				Environment: LocalTesting, SignedTransactions: []string{"signed_transaction_value", "signed_transaction_value2"},
			},
		},
		{
			fixture: "transactionHistoryResponseWithMalformedEnvironment.json", method: http.MethodGet, path: "/inApps/v2/history/1234",
			query: url.Values{
				"revision": {"revision_input"}, "startDate": {"123455"}, "endDate": {"123456"},
				"productId": {"com.example.1", "com.example.2"}, "productType": {"CONSUMABLE", "AUTO_RENEWABLE"},
				"sort": {"ASCENDING"}, "subscriptionGroupIdentifier": {"sub_group_id", "sub_group_id_2"},
				"inAppOwnershipType": {"FAMILY_SHARED"}, "revoked": {"false"},
			},
			endpoint: EndpointHistory,
			call: func(ctx context.Context, c *Client) (any, error) {
				r, _, err := c.GetTransactionHistory(ctx, "1234", fullHistoryQuery(&falseValue))
				return r, err
			},
			want: &HistoryResponse{
				Revision: "revision_output", HasMore: true, BundleID: "com.example", AppAppleID: 323232,
				Environment: "LocalTestingxxx", SignedTransactions: []string{"signed_transaction_value", "signed_transaction_value2"},
			},
		},
		{
			fixture: "transactionHistoryResponseWithMalformedAppAppleId.json", method: http.MethodGet, path: "/inApps/v2/history/1234",
			query:    url.Values{"revision": {"revision_input"}},
			endpoint: EndpointHistory,
			call: func(ctx context.Context, c *Client) (any, error) {
				r, _, err := c.GetTransactionHistory(ctx, "1234", HistoryQuery{Revision: "revision_input"})
				return r, err
			},
			wantError: true,
		},
		{
			fixture: "getAllSubscriptionStatusesResponse.json", method: http.MethodGet, path: "/inApps/v1/subscriptions/4321",
			query: url.Values{"status": {"2", "1"}}, endpoint: EndpointStatuses,
			call: func(ctx context.Context, c *Client) (any, error) {
				r, _, err := c.GetAllSubscriptionStatuses(ctx, "4321", StatusExpired, StatusActive)
				return r, err
			},
			want: &StatusResponse{
				Environment: LocalTesting, BundleID: "com.example", AppAppleID: 5454545,
				Data: []SubscriptionGroupIdentifierItem{
					{SubscriptionGroupIdentifier: "sub_group_one", LastTransactions: []LastTransactionsItem{
						{Status: 1, OriginalTransactionID: "3749183", SignedTransactionInfo: "signed_transaction_one", SignedRenewalInfo: "signed_renewal_one"},
						{Status: 5, OriginalTransactionID: "5314314134", SignedTransactionInfo: "signed_transaction_two", SignedRenewalInfo: "signed_renewal_two"},
					}},
					{SubscriptionGroupIdentifier: "sub_group_two", LastTransactions: []LastTransactionsItem{
						{Status: 2, OriginalTransactionID: "3413453", SignedTransactionInfo: "signed_transaction_three", SignedRenewalInfo: "signed_renewal_three"},
					}},
				},
			},
		},
		{
			fixture: "getNotificationHistoryResponse.json", method: http.MethodPost, path: "/inApps/v1/notifications/history",
			query: url.Values{"paginationToken": {"a036bc0e-52b8-4bee-82fc-8c24cb6715d6"}},
			body: `{"startDate":1698148900000,"endDate":1698148950000,"notificationType":"SUBSCRIBED",` +
				`"notificationSubtype":"INITIAL_BUY","transactionId":"999733843","onlyFailures":true}`,
			endpoint: EndpointNotificationHistory,
			call: func(ctx context.Context, c *Client) (any, error) {
				// Apple's test sets transactionId and notificationType
				// together, which the real API refuses (4000019) and
				// NotificationHistoryRequest checks; send its body raw.
				body := []byte(`{"startDate":1698148900000,"endDate":1698148950000,"notificationType":"SUBSCRIBED","notificationSubtype":"INITIAL_BUY","transactionId":"999733843","onlyFailures":true}`)
				return c.notificationHistoryPage(ctx, body, "a036bc0e-52b8-4bee-82fc-8c24cb6715d6")
			},
			want: &NotificationHistoryResponse{
				PaginationToken: "57715481-805a-4283-8499-1c19b5d6b20a", HasMore: true,
				NotificationHistory: []NotificationHistoryResponseItem{
					{SignedPayload: "signed_payload_one", SendAttempts: []SendAttemptItem{
						{AttemptDate: 1698148900000, SendAttemptResult: SendAttemptNoResponse},
						{AttemptDate: 1698148950000, SendAttemptResult: SendAttemptSuccess},
					}},
					{SignedPayload: "signed_payload_two", SendAttempts: []SendAttemptItem{
						{AttemptDate: 1698148800000, SendAttemptResult: SendAttemptCircularRedirect},
					}},
				},
			},
		},
		{
			fixture: "transactionInfoResponse.json", method: http.MethodGet, path: "/inApps/v1/transactions/1234",
			endpoint: EndpointTransaction,
			call: func(ctx context.Context, c *Client) (any, error) {
				r, _, err := c.GetTransactionInfo(ctx, "1234")
				return r, err
			},
			want: &TransactionInfoResponse{SignedTransactionInfo: "signed_transaction_info_value"},
		},
		{
			fixture: "appTransactionInfoResponse.json", method: http.MethodGet, path: "/inApps/v1/transactions/appTransactions/1234",
			endpoint: EndpointAppTransaction,
			call: func(ctx context.Context, c *Client) (any, error) {
				r, _, err := c.GetAppTransactionInfo(ctx, "1234")
				return r, err
			},
			want: &AppTransactionInfoResponse{SignedAppTransactionInfo: "signed_app_transaction_info_value"},
		},
		{
			fixture: "getRefundHistoryResponse.json", method: http.MethodGet, path: "/inApps/v2/refund/lookup/555555",
			query: url.Values{"revision": {"revision_input"}}, endpoint: EndpointRefundHistory,
			call: func(ctx context.Context, c *Client) (any, error) {
				r, _, err := c.GetRefundHistory(ctx, "555555", "revision_input")
				return r, err
			},
			want: &RefundHistoryResponse{
				SignedTransactions: []string{"signed_transaction_one", "signed_transaction_two"},
				Revision:           "revision_output", HasMore: true,
			},
		},
		{
			fixture: "lookupOrderIdResponse.json", method: http.MethodGet, path: "/inApps/v1/lookup/W002182",
			endpoint: EndpointOrderLookup,
			call: func(ctx context.Context, c *Client) (any, error) {
				r, _, err := c.LookUpOrderID(ctx, "W002182")
				return r, err
			},
			want: &OrderLookupResponse{Status: OrderLookupInvalid, SignedTransactions: []string{"signed_transaction_one", "signed_transaction_two"}},
		},
		{
			fixture: "requestTestNotificationResponse.json", method: http.MethodPost, path: "/inApps/v1/notifications/test",
			endpoint: EndpointTestNotification,
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.RequestTestNotification(ctx)
			},
			want: &SendTestNotificationResponse{TestNotificationToken: "ce3af791-365e-4c60-841b-1674b43c1609"},
		},
		{
			fixture: "getTestNotificationStatusResponse.json", method: http.MethodGet,
			path: "/inApps/v1/notifications/test/8cd2974c-f905-492a-bf9a-b2f47c791d19", endpoint: EndpointTestNotification,
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.GetTestNotificationStatus(ctx, "8cd2974c-f905-492a-bf9a-b2f47c791d19")
			},
			want: &CheckTestNotificationResponse{SignedPayload: "signed_payload", SendAttempts: []SendAttemptItem{
				{AttemptDate: 1698148900000, SendAttemptResult: SendAttemptNoResponse},
				{AttemptDate: 1698148950000, SendAttemptResult: SendAttemptSuccess},
			}},
		},
		{
			fixture: "extendSubscriptionRenewalDateResponse.json", method: http.MethodPut, path: "/inApps/v1/subscriptions/extend/4124214",
			body:     `{"extendByDays":45,"extendReasonCode":1,"requestIdentifier":"fdf964a4-233b-486c-aac1-97d8d52688ac"}`,
			endpoint: EndpointExtendRenewalDate,
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.ExtendSubscriptionRenewalDate(ctx, "4124214", ExtendRenewalDateRequest{
					ExtendByDays: 45, ExtendReasonCode: ExtendReasonCustomerSatisfaction, RequestIdentifier: "fdf964a4-233b-486c-aac1-97d8d52688ac",
				})
			},
			want: &ExtendRenewalDateResponse{OriginalTransactionID: "2312412", WebOrderLineItemID: "9993", Success: true, EffectiveDate: 1698148900000},
		},
		{
			fixture: "extendRenewalDateForAllActiveSubscribersResponse.json", method: http.MethodPost, path: "/inApps/v1/subscriptions/extend/mass",
			body: `{"extendByDays":45,"extendReasonCode":1,"requestIdentifier":"fdf964a4-233b-486c-aac1-97d8d52688ac",` +
				`"storefrontCountryCodes":["USA","MEX"],"productId":"com.example.productId"}`,
			endpoint: EndpointMassExtendRenewalDate,
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.ExtendRenewalDateForAllActiveSubscribers(ctx, MassExtendRenewalDateRequest{
					ExtendByDays: 45, ExtendReasonCode: ExtendReasonCustomerSatisfaction,
					RequestIdentifier: "fdf964a4-233b-486c-aac1-97d8d52688ac", ProductID: "com.example.productId",
					StorefrontCountryCodes: []string{"USA", "MEX"},
				})
			},
			want: &MassExtendRenewalDateResponse{RequestIdentifier: "758883e8-151b-47b7-abd0-60c4d804c2f5"},
		},
		{
			// Apple documents …/extend/mass/{productId}/{requestIdentifier};
			// Apple's library tests pass the arguments swapped, so their
			// expected path has the UUID first. This follows the docs.
			fixture: "getStatusOfSubscriptionRenewalDateExtensionsResponse.json", method: http.MethodGet,
			path:     "/inApps/v1/subscriptions/extend/mass/com.example.product/20fba8a0-2b80-4a7d-a17f-85c1854727f8",
			endpoint: EndpointMassExtendStatus,
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.GetStatusOfSubscriptionRenewalDateExtensions(ctx, "com.example.product", "20fba8a0-2b80-4a7d-a17f-85c1854727f8")
			},
			want: &MassExtendRenewalDateStatusResponse{
				RequestIdentifier: "20fba8a0-2b80-4a7d-a17f-85c1854727f8", Complete: true, CompleteDate: 1698148900000,
				SucceededCount: 30, FailedCount: 2,
			},
		},
	} {
		t.Run(strings.TrimSuffix(tc.fixture, ".json"), func(t *testing.T) {
			t.Parallel()
			body := modelFixture(t, tc.fixture)
			f := newFakeApple(t, func(seenRequest) reply { return reply{status: 200, body: body} })
			b := &recordingBudget{}
			c := newTestClient(t, f, b, nil)
			got, err := tc.call(context.Background(), c)
			if tc.wantError {
				if err == nil {
					t.Fatalf("decoded %+v, want an error", got)
				}
				if IsRetryable(err) {
					t.Errorf("decoding error %v is retryable", err)
				}
			} else if err != nil {
				t.Fatal(err)
			} else if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("decoded\n%+v\nwant\n%+v", got, tc.want)
			}
			seen := f.Seen()
			if len(seen) != 1 {
				t.Fatalf("%d requests, want 1", len(seen))
			}
			s := seen[0]
			if s.Env != Production || s.Method != tc.method || s.Path != tc.path {
				t.Errorf("request %s %s %s, want Production %s %s", s.Env, s.Method, s.Path, tc.method, tc.path)
			}
			wantQuery := tc.query
			if wantQuery == nil {
				wantQuery = url.Values{}
			}
			if !reflect.DeepEqual(s.Query, wantQuery) {
				t.Errorf("query = %v, want %v", s.Query, wantQuery)
			}
			if tc.body == "" {
				if len(s.Body) != 0 {
					t.Errorf("body = %q, want none", s.Body)
				}
			} else {
				jsonEqual(t, s.Body, tc.body)
			}
			checkHeaders(t, s)
			checkBearer(t, c.signer.key, s.Header)
			if w := b.Waits(); !reflect.DeepEqual(w, []budgetCall{{Env: Production, Endpoint: tc.endpoint}}) {
				t.Errorf("budget waits = %v, want one for %s", w, tc.endpoint)
			}
		})
	}
}

func fullHistoryQuery(revoked *bool) HistoryQuery {
	return HistoryQuery{
		Revision: "revision_input", StartDate: 123455, EndDate: 123456,
		ProductIDs:                   []string{"com.example.1", "com.example.2"},
		ProductTypes:                 []string{ProductTypeConsumable, ProductTypeAutoRenewable},
		Sort:                         SortAscending,
		SubscriptionGroupIdentifiers: []string{"sub_group_id", "sub_group_id_2"},
		InAppOwnershipType:           OwnershipFamilyShared,
		Revoked:                      revoked,
	}
}

// Every error fixture: decoded into an *APIError with status, code and
// message, classified as Apple's naming says.
func TestErrorFixtures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		fixture   string
		status    int
		code      int64
		message   string
		call      func(ctx context.Context, c *Client) error
		endpoint  Endpoint
		retryable bool
		notFound  bool
	}{
		{"apiTooManyRequestsException.json", 429, ErrorCodeRateLimitExceeded, "Rate limit exceeded.",
			func(ctx context.Context, c *Client) error { _, err := c.RequestTestNotification(ctx); return err },
			EndpointTestNotification, false, false},
		{"apiException.json", 500, ErrorCodeGeneralInternal, "An unknown error occurred.",
			func(ctx context.Context, c *Client) error { _, err := c.RequestTestNotification(ctx); return err },
			EndpointTestNotification, true, false},
		{"apiUnknownError.json", 400, 9990000, "Testing error.",
			func(ctx context.Context, c *Client) error { _, err := c.RequestTestNotification(ctx); return err },
			EndpointTestNotification, false, false},
		{"transactionIdNotFoundError.json", 404, ErrorCodeTransactionIDNotFound, "Transaction id not found.",
			func(ctx context.Context, c *Client) error {
				_, _, err := c.GetAppTransactionInfo(ctx, "not_found_id")
				return err
			},
			EndpointAppTransaction, false, true},
		{"appTransactionDoesNotExistError.json", 404, ErrorCodeAppTransactionDoesNotExist, "No AppTransaction exists for the customer.",
			func(ctx context.Context, c *Client) error {
				_, _, err := c.GetAppTransactionInfo(ctx, "1234")
				return err
			},
			EndpointAppTransaction, false, false},
		{"invalidTransactionIdError.json", 400, ErrorCodeInvalidTransactionID, "Invalid transaction id.",
			func(ctx context.Context, c *Client) error { _, _, err := c.GetTransactionInfo(ctx, "1234"); return err },
			EndpointTransaction, false, false},
		{"invalidAppAccountTokenUUIDError.json", 400, ErrorCodeInvalidAppAccountTokenUUID, "",
			func(ctx context.Context, c *Client) error {
				return c.SetAppAccountToken(ctx, "49571273", "7389a31a-fb6d-4569-a2a6-db7d85d84813")
			},
			EndpointAppAccountToken, false, false},
		{"familyTransactionNotSupportedError.json", 400, ErrorCodeFamilyTransactionNotSupported, "",
			func(ctx context.Context, c *Client) error {
				return c.SetAppAccountToken(ctx, "49571273", "7389a31a-fb6d-4569-a2a6-db7d85d84813")
			},
			EndpointAppAccountToken, false, false},
		{"transactionIdNotOriginalTransactionId.json", 400, ErrorCodeTransactionIDIsNotOriginalTransactionID, "",
			func(ctx context.Context, c *Client) error {
				return c.SetAppAccountToken(ctx, "49571273", "7389a31a-fb6d-4569-a2a6-db7d85d84813")
			},
			EndpointAppAccountToken, false, false},
	} {
		t.Run(strings.TrimSuffix(tc.fixture, ".json"), func(t *testing.T) {
			t.Parallel()
			body := modelFixture(t, tc.fixture)
			f := newFakeApple(t, func(seenRequest) reply { return reply{status: tc.status, body: body} })
			b := &recordingBudget{}
			c := newTestClient(t, f, b, nil)
			err := tc.call(context.Background(), c)
			e := asAPIError(t, err)
			if e.HTTPStatus != tc.status || e.Code != tc.code || e.Endpoint != tc.endpoint || e.Environment != Production {
				t.Errorf("got %+v, want status %d code %d endpoint %s in Production", e, tc.status, tc.code, tc.endpoint)
			}
			if tc.message != "" && e.Message != tc.message {
				t.Errorf("message %q, want %q", e.Message, tc.message)
			}
			if e.Message == "" {
				t.Error("empty message")
			}
			if e.Retryable() != tc.retryable || IsRetryable(err) != tc.retryable {
				t.Errorf("Retryable %v IsRetryable %v, want %v", e.Retryable(), IsRetryable(err), tc.retryable)
			}
			if e.NotFound() != tc.notFound {
				t.Errorf("NotFound %v, want %v", e.NotFound(), tc.notFound)
			}
			if e.RateLimited() != (tc.status == 429) {
				t.Errorf("RateLimited %v", e.RateLimited())
			}
			if s := f.Seen(); len(s) != 1 {
				t.Fatalf("%d requests, want 1 (the client must not retry)", len(s))
			} else if s[0].Method == http.MethodPut {
				jsonEqual(t, s[0].Body, `{"appAccountToken":"7389a31a-fb6d-4569-a2a6-db7d85d84813"}`)
				if s[0].Path != "/inApps/v1/transactions/49571273/appAccountToken" {
					t.Errorf("path %s", s[0].Path)
				}
			}
			if len(b.Waits()) != 1 {
				t.Errorf("budget waits %v, want 1", b.Waits())
			}
		})
	}
}
