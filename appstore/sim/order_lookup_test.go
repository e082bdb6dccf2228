package sim

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/storesync/storesync/appstore"
)

var orderIDPattern = regexp.MustCompile(`^M[A-Z0-9]{9}$`)

func TestOrderIDsLookUpAndList(t *testing.T) {
	t.Parallel()
	s := startTest(t, unlimited(Options{Seed: 15, Subscribers: 300}))
	seen := map[string]bool{}
	byEnv := map[appstore.Environment][]Order{}
	for _, env := range []appstore.Environment{appstore.Production, appstore.Sandbox} {
		byEnv[env] = s.Orders(env)
		for _, o := range byEnv[env] {
			if !orderIDPattern.MatchString(o.OrderID) || seen[o.OrderID] {
				t.Fatalf("order id %q: malformed or repeated", o.OrderID)
			}
			seen[o.OrderID] = true
			if txIDOfOrder(o.OrderID) != o.TransactionID || s.OrderID(o.TransactionID) != o.OrderID {
				t.Fatalf("order %s does not round-trip to %s", o.OrderID, o.TransactionID)
			}
		}
		if len(byEnv[env]) == 0 {
			t.Fatalf("no %s orders", env)
		}
	}

	// The CSV lists every order, header first, like /sim/ids.
	code, body := controlCall(t, s, "GET", "/sim/orders?env=all", "")
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	if code != 200 || lines[0] != "order_id,original_transaction_id" || len(lines) != 1+len(byEnv[appstore.Production])+len(byEnv[appstore.Sandbox]) {
		t.Fatalf("/sim/orders: %d, %d lines, first %q", code, len(lines), lines[0])
	}
	first := byEnv[appstore.Production][0]
	if lines[1] != first.OrderID+","+first.OriginalTransactionID {
		t.Fatalf("/sim/orders line 1 %q, want %s,%s", lines[1], first.OrderID, first.OriginalTransactionID)
	}
	if code, _ := controlCall(t, s, "GET", "/sim/orders?env=xcode", ""); code != 400 {
		t.Errorf("/sim/orders?env=xcode: %d", code)
	}

	// The client looks orders up; the signed transaction verifies and is
	// the order's. A sandbox order is invalid in production (no fallback:
	// status 1 is an answer, not an error), valid in the sandbox.
	ctx := context.Background()
	for _, env := range []appstore.Environment{appstore.Production, appstore.Sandbox} {
		o := byEnv[env][len(byEnv[env])/2]
		resp, got, err := newClient(t, s, env).LookUpOrderID(ctx, o.OrderID)
		if err != nil || got != env || resp.Status != appstore.OrderLookupValid || len(resp.SignedTransactions) != 1 {
			t.Fatalf("%s LookUpOrderID(%s): %+v %s %v", env, o.OrderID, resp, got, err)
		}
		p, err := newVerifier(t, s, env).VerifyTransaction(resp.SignedTransactions[0])
		if err != nil || p.TransactionID != o.TransactionID || p.OriginalTransactionID != o.OriginalTransactionID {
			t.Fatalf("order %s: %+v %v", o.OrderID, p, err)
		}
	}
	sandboxOrder := byEnv[appstore.Sandbox][0].OrderID
	for _, id := range []string{sandboxOrder, "MNOSUCHORD", "MAAAAAAAAA", "M23456789Z"} {
		resp, _, err := newClient(t, s, appstore.Production).LookUpOrderID(ctx, id)
		if err != nil || resp.Status != appstore.OrderLookupInvalid || len(resp.SignedTransactions) != 0 {
			t.Errorf("production LookUpOrderID(%s): %+v %v, want status 1", id, resp, err)
		}
	}
}
