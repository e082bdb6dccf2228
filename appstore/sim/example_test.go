package sim_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/sim"
)

// A simulator with 100 customers: call Get All Subscription Statuses the
// way Apple's API is called, compare with the truth, move time on.
func Example() {
	simulator, err := sim.New(sim.Options{Seed: 1, Subscribers: 100})
	if err != nil {
		panic(err)
	}
	base, err := simulator.Start("127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer simulator.Close()

	otid := simulator.OriginalTransactionIDs(appstore.Production)[0]
	token, err := simulator.Token() // or mint your own JWT with simulator.PrivateKeyPEM()
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
	truth, _ := simulator.TruthOf(otid)
	item := statuses.Data[0].LastTransactions[0]
	fmt.Println(resp.StatusCode, item.OriginalTransactionID == otid, int(item.Status) == truth.StatusCode)

	report := simulator.Advance(24 * time.Hour)
	fmt.Println(report.From.Format(time.RFC3339), "->", report.To.Format(time.RFC3339))
	// Output:
	// 200 true true
	// 2026-11-01T00:00:00Z -> 2026-11-02T00:00:00Z
}
