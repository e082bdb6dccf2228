package sim

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/storesync/storesync/appstore"
)

// Order ids are the ids on the customers' emailed receipts, like Apple's
// "MQ6ZN2K8C9": "M" and nine of 32 upper-case letters and digits. Every
// transaction (purchase or renewal) is billed on a receipt of its own, so an
// order holds exactly one transaction of this app's subscriptions.
//
// The id is derived from the transaction id by an invertible scramble, so
// it needs no storage and Look Up Order ID decodes it: 45 bits are the
// transaction's offset within its environment's id range (44 bits) and one
// bit for the environment, so the two environments never share an order id.
const (
	orderAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789" // 32 symbols, no 0/O/1/I
	orderSymbols  = 9
	orderBits     = 5 * orderSymbols
	orderMask     = 1<<orderBits - 1
	orderMul      = 0x13A5_F9C6_4B1D // odd, so invertible mod 2^45
)

// orderMulInv is orderMul's inverse mod 2^64 (hence mod 2^45), by Newton.
var orderMulInv = func() uint64 {
	inv := uint64(orderMul)
	for range 6 {
		inv *= 2 - orderMul*inv
	}
	return inv
}()

// orderIDOf returns the order id of transaction id txID (a decimal
// string), or "" for an id outside both environments' ranges.
func orderIDOf(txID string) string {
	n, err := strconv.ParseUint(txID, 10, 64)
	if err != nil {
		return ""
	}
	var off, bit uint64
	switch {
	case n > productionTxBase:
		off = n - productionTxBase
	case n > sandboxTxBase:
		off, bit = n-sandboxTxBase, 1
	default:
		return ""
	}
	if off >= 1<<(orderBits-1) {
		return ""
	}
	x := ((off<<1 | bit) * orderMul) & orderMask
	b := make([]byte, 1+orderSymbols)
	b[0] = 'M'
	for i := orderSymbols; i >= 1; i-- {
		b[i] = orderAlphabet[x&31]
		x >>= 5
	}
	return string(b)
}

// orderRef inverts orderIDOf: the environment and transaction id of order
// id s; ok is false when s is not one of the simulator's order ids.
func orderRef(s string) (env appstore.Environment, txID string, ok bool) {
	if len(s) != 1+orderSymbols || s[0] != 'M' {
		return "", "", false
	}
	var x uint64
	for i := 1; i < len(s); i++ {
		k := strings.IndexByte(orderAlphabet, s[i])
		if k < 0 {
			return "", "", false
		}
		x = x<<5 | uint64(k)
	}
	y := (x * orderMulInv) & orderMask
	off := y >> 1
	if off == 0 {
		return "", "", false
	}
	if y&1 == 1 {
		return appstore.Sandbox, strconv.FormatUint(sandboxTxBase+off, 10), true
	}
	return appstore.Production, strconv.FormatUint(productionTxBase+off, 10), true
}

// txIDOfOrder is orderRef's transaction id; "" when s is not an order id.
func txIDOfOrder(s string) string {
	_, id, _ := orderRef(s)
	return id
}

// lookupOrder serves Look Up Order ID: status 0 (valid) with every
// transaction of the order, or status 1 (invalid) for an id that names no
// order of this app in this environment, well-formed or not. An invalid
// answer carries an empty signedTransactions array: Apple's documentation
// says the array is left out, its own library's fixture has one, and an
// empty array satisfies clients written for either.
func (s *Simulator) lookupOrder(w http.ResponseWriter, r *http.Request, env appstore.Environment) {
	wd := s.world
	wd.mu.RLock()
	defer wd.mu.RUnlock()
	resp := appstore.OrderLookupResponse{Status: appstore.OrderLookupInvalid, SignedTransactions: []string{}}
	if oenv, id, ok := orderRef(r.PathValue("id")); ok && oenv == env {
		if t := wd.env(env).txByID[id]; t != nil {
			jws, err := wd.signedTx(t, wd.now())
			if err != nil {
				writeError(w, errInternal)
				return
			}
			resp = appstore.OrderLookupResponse{Status: appstore.OrderLookupValid, SignedTransactions: []string{jws}}
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

// Order is one order (receipt) of the simulated app.
type Order struct {
	OrderID               string `json:"orderId"`
	OriginalTransactionID string `json:"originalTransactionId"`
	TransactionID         string `json:"transactionId"`
}

// OrderID returns the order id of a transaction of either environment, for
// Look Up Order ID; "" for an unknown transaction.
func (s *Simulator) OrderID(transactionID string) string {
	w := s.world
	w.mu.RLock()
	defer w.mu.RUnlock()
	for _, e := range w.envs {
		if _, ok := e.txByID[transactionID]; ok {
			return orderIDOf(transactionID)
		}
	}
	return ""
}

// Orders lists every order of env: subscriptions by originalTransactionId,
// each one's transactions oldest first.
func (s *Simulator) Orders(env appstore.Environment) []Order {
	w := s.world
	w.mu.RLock()
	defer w.mu.RUnlock()
	e := w.env(env)
	var out []Order
	for _, otid := range sortedOTIDs(e) {
		for _, t := range e.subByOTID[otid].txs {
			out = append(out, Order{OrderID: orderIDOf(t.id), OriginalTransactionID: otid, TransactionID: t.id})
		}
	}
	return out
}
