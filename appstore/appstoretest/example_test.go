package appstoretest_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/appstoretest"
)

// A simulator with 100 customers: call Get All Subscription Statuses the
// way Apple's API is called, compare with the truth, move time on.
func Example() {
	sim, err := appstoretest.New(appstoretest.Options{Seed: 1, Subscribers: 100})
	if err != nil {
		panic(err)
	}
	base, err := sim.Start("127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer sim.Close()

	otid := sim.OriginalTransactionIDs(appstore.Production)[0]
	token, err := sim.Token() // or mint your own JWT with sim.PrivateKeyPEM()
	if err != nil {
		panic(err)
	}
	req, _ := http.NewRequest("GET", base+"/inApps/v1/subscriptions/"+otid, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	var statuses appstore.StatusResponse
	if err := json.NewDecoder(resp.Body).Decode(&statuses); err != nil {
		panic(err)
	}
	truth, _ := sim.TruthOf(otid)
	item := statuses.Data[0].LastTransactions[0]
	fmt.Println(resp.StatusCode, item.OriginalTransactionID == otid, int(item.Status) == truth.StatusCode)

	report := sim.Advance(24 * time.Hour)
	fmt.Println(report.From.Format(time.RFC3339), "->", report.To.Format(time.RFC3339))
	// Output:
	// 200 true true
	// 2026-11-01T00:00:00Z -> 2026-11-02T00:00:00Z
}
