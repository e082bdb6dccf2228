package jobs

import (
	"fmt"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/ledger"
)

// statusFacts verifies every signed item of a Get All Subscription Statuses
// answer and turns it into ledger facts: each subscription's latest
// transaction, its renewal info, and its status as of the transaction's
// signedDate (Apple signs the answer when it sends it).
func (d *Deps) statusFacts(resp *appstore.StatusResponse, env appstore.Environment) (ledger.Facts, error) {
	v, err := d.verifierFor(env)
	if err != nil {
		return ledger.Facts{}, err
	}
	var f ledger.Facts
	for _, group := range resp.Data {
		for _, item := range group.LastTransactions {
			tx, err := v.VerifyTransaction(item.SignedTransactionInfo)
			if err != nil {
				return ledger.Facts{}, fmt.Errorf("statuses of %s: signedTransactionInfo: %w", item.OriginalTransactionID, err)
			}
			f.Transactions = append(f.Transactions, ledger.SignedTransaction{Payload: tx, JWS: item.SignedTransactionInfo})
			signed := tx.SignedDate
			if item.SignedRenewalInfo != "" {
				ri, err := v.VerifyRenewalInfo(item.SignedRenewalInfo)
				if err != nil {
					return ledger.Facts{}, fmt.Errorf("statuses of %s: signedRenewalInfo: %w", item.OriginalTransactionID, err)
				}
				f.RenewalInfos = append(f.RenewalInfos, ledger.SignedRenewalInfo{Payload: ri, JWS: item.SignedRenewalInfo})
				signed = max(signed, ri.SignedDate)
			}
			if item.Status >= 1 && item.Status <= 5 {
				otid := item.OriginalTransactionID
				if otid == "" {
					otid = tx.OriginalTransactionID
				}
				f.Statuses = append(f.Statuses, ledger.StatusObservation{OriginalTransactionID: otid, Status: int(item.Status), SignedDate: signed})
			}
		}
	}
	return f, nil
}

// transactionFacts verifies signed transactions (a history or refund
// page) and returns them as ledger facts.
func (d *Deps) transactionFacts(signed []string, env appstore.Environment) (ledger.Facts, error) {
	v, err := d.verifierFor(env)
	if err != nil {
		return ledger.Facts{}, err
	}
	f := ledger.Facts{Transactions: make([]ledger.SignedTransaction, 0, len(signed))}
	for i, jws := range signed {
		tx, err := v.VerifyTransaction(jws)
		if err != nil {
			return ledger.Facts{}, fmt.Errorf("signed transaction %d: %w", i, err)
		}
		f.Transactions = append(f.Transactions, ledger.SignedTransaction{Payload: tx, JWS: jws})
	}
	return f, nil
}
