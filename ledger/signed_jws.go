package ledger

import (
	"context"
	"fmt"
)

// storedJWS is a transaction's or renewal info's JWS as its row holds it
// (columns jws, jws_chain): compact with its chain's hash, or as Apple
// sent it with chainSHA nil. chain is the chain's text, for the writer to
// store in certificate_chains.
type storedJWS struct {
	jws      string
	chainSHA []byte
	chain    string
}

// compactForStorage is the form a new write stores: CompactJWS when it
// rebuilds exactly, else jws as it came.
func compactForStorage(jws string) storedJWS {
	if c, sha, chain, ok := CompactJWS(jws); ok {
		return storedJWS{jws: c, chainSHA: sha, chain: chain}
	}
	return storedJWS{jws: jws}
}

// rebuildStoredJWS returns Apple's JWS from a row's jws and jws_chain, the
// chain text looked up in chains (from certificateChains). It is the one
// place transactions and renewal info become Apple's text again.
func rebuildStoredJWS(jws string, chainSHA []byte, chains map[string]string) (string, error) {
	if chainSHA == nil {
		return jws, nil
	}
	chain, ok := chains[string(chainSHA)]
	if !ok {
		return "", fmt.Errorf("ledger: certificate chain %x is not in certificate_chains", chainSHA)
	}
	return RebuildJWS(jws, chain)
}

// TransactionJWS returns the signedTransactionInfo the ledger keeps for
// transactionID, byte for byte as Apple signed it (rebuilt from its
// compact form when stored so), for re-verification and exports; or
// ErrNotFound.
func (l *Ledger) TransactionJWS(ctx context.Context, transactionID string) (string, error) {
	return l.storedJWS(ctx, `SELECT jws, jws_chain FROM transactions WHERE transaction_id = $1`, transactionID)
}

// RenewalInfoJWS returns the signedRenewalInfo the ledger keeps for the
// subscription originalTransactionID, byte for byte as Apple signed it; or
// ErrNotFound.
func (l *Ledger) RenewalInfoJWS(ctx context.Context, originalTransactionID string) (string, error) {
	return l.storedJWS(ctx, `SELECT jws, jws_chain FROM renewal_infos WHERE original_transaction_id = $1`, originalTransactionID)
}

// SubscriptionTransactionJWS returns every signedTransactionInfo the
// ledger keeps for the subscription originalTransactionID, latest purchase
// first (transactions_original's order), each as Apple signed it; none for
// an unknown id.
func (l *Ledger) SubscriptionTransactionJWS(ctx context.Context, originalTransactionID string) ([]string, error) {
	rows, err := l.db.Query(ctx, `SELECT jws, jws_chain FROM transactions WHERE original_transaction_id = $1
		ORDER BY purchase_date DESC, transaction_id`, originalTransactionID)
	if err != nil {
		return nil, fmt.Errorf("ledger: reading transactions of %s: %w", originalTransactionID, err)
	}
	defer rows.Close()
	var jws []string
	var shas [][]byte
	for rows.Next() {
		var j string
		var sha []byte
		if err := rows.Scan(&j, &sha); err != nil {
			return nil, fmt.Errorf("ledger: reading transactions of %s: %w", originalTransactionID, err)
		}
		jws, shas = append(jws, j), append(shas, sha)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: reading transactions of %s: %w", originalTransactionID, err)
	}
	chains, err := l.certificateChains(ctx, shas...)
	if err != nil {
		return nil, err
	}
	for i := range jws {
		if jws[i], err = rebuildStoredJWS(jws[i], shas[i], chains); err != nil {
			return nil, fmt.Errorf("ledger: transaction of %s: %w", originalTransactionID, err)
		}
	}
	return jws, nil
}

func (l *Ledger) storedJWS(ctx context.Context, query, id string) (string, error) {
	var jws string
	var sha []byte
	if err := l.db.QueryRow(ctx, query, id).Scan(&jws, &sha); err != nil {
		if isNoRows(err) {
			return "", ErrNotFound
		}
		return "", fmt.Errorf("ledger: reading the JWS of %s: %w", id, err)
	}
	chains, err := l.certificateChains(ctx, sha)
	if err != nil {
		return "", err
	}
	out, err := rebuildStoredJWS(jws, sha, chains)
	if err != nil {
		return "", fmt.Errorf("ledger: JWS of %s: %w", id, err)
	}
	return out, nil
}
