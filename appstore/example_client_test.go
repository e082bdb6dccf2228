package appstore_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/storesync/storesync/appstore"
)

// fakeAppStore stands in for Apple in the examples: two pages of history
// for customer "1000", nothing known about anyone else.
func fakeAppStore() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/inApps/v2/history/1000" && r.URL.Query().Get("revision") == "":
			fmt.Fprint(w, `{"revision":"r1","hasMore":true,"environment":"Production","signedTransactions":["jws-a","jws-b"]}`)
		case r.URL.Path == "/inApps/v2/history/1000":
			fmt.Fprint(w, `{"revision":"r2","hasMore":false,"environment":"Production","signedTransactions":["jws-c"]}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"errorCode":4040010,"errorMessage":"Transaction id not found."}`)
		}
	}))
}

func Example() {
	srv := fakeAppStore()
	defer srv.Close()

	// In production the key comes from the .p8 file:
	// key, err := appstore.ParsePrivateKey(pemBytes)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	client, err := appstore.NewClient(appstore.ClientOptions{
		KeyID:       "2X9R4HXF34",
		IssuerID:    "57246542-96fe-1a63-e053-0824d011072a",
		BundleID:    "com.example.app",
		PrivateKey:  key,
		Environment: appstore.Production,
		BaseURL:     srv.URL, // omit to talk to Apple
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()

	// Page through a customer's whole history; each page arrives as soon
	// as Apple sends it. Keep the last revision for the next sync.
	var revision string
	for page, err := range client.TransactionHistory(ctx, "1000", appstore.HistoryQuery{Sort: appstore.SortAscending}) {
		if err != nil {
			fmt.Println("history:", err)
			return
		}
		fmt.Println(page.Environment, page.SignedTransactions)
		revision = page.Revision
	}
	fmt.Println("next sync starts at revision", revision)

	// Errors from Apple are *APIError; jobs decide what to do.
	_, _, err = client.GetTransactionInfo(ctx, "999")
	var apiErr *appstore.APIError
	if errors.As(err, &apiErr) {
		switch {
		case apiErr.RateLimited():
			fmt.Println("snooze until", apiErr.RetryAfter.Format(time.RFC3339))
		case apiErr.NotFound():
			fmt.Println("unknown transaction:", apiErr.Code)
		case appstore.IsRetryable(err):
			fmt.Println("retry later")
		}
	}
	// Output:
	// Production [jws-a jws-b]
	// Production [jws-c]
	// next sync starts at revision r2
	// unknown transaction: 4040010
}

// A shared RateBudget keeps every client of the app within Apple's limits,
// serving interactive work first.
func ExampleNewRateBudget() {
	budget := appstore.NewRateBudget(appstore.DefaultRateLimits(appstore.Production, 0.5, nil), 1)
	// Sandbox fallback needs the sandbox's (10%) limits too.
	budget.SetLimits(appstore.Sandbox, appstore.DefaultRateLimits(appstore.Sandbox, 0.5, nil))
	fmt.Println(budget.Limit(appstore.Production, appstore.EndpointHistory), budget.Limit(appstore.Sandbox, appstore.EndpointHistory))

	ctx := appstore.WithPriority(context.Background(), appstore.PriorityInteractive)
	if err := budget.Wait(ctx, appstore.Production, appstore.EndpointStatuses); err != nil {
		fmt.Println(err)
	}
	// Output: 25 2.5
}
