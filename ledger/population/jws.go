package population

import (
	"github.com/storesync/storesync/ledger"
)

// jwsColumns returns the stored form of a signed payload for table, in the
// order of that table's JWS columns (jwsColumnNames), and the certificate
// chain the row names (chainSHA nil: none; else chain is the
// certificate_chains text to store under chainSHA). Every JWS Fill writes
// goes through here, and here only through the ledger's own encoders, so
// generated rows read back exactly like rows the ledger wrote.
//
// transactions and renewal_infos keep ledger.CompactJWS's form (the JWS
// without its x5c chain, and the chain's hash), or the JWS as it is when
// that form would not rebuild it exactly. notifications keep
// ledger.CompactNotificationPayload's columns (decoded payload, nested
// JWS compacted, one chain reference).
func jwsColumns(table, jws string) (cols []any, chainSHA []byte, chain string) {
	switch table {
	case "transactions", "renewal_infos":
		compact, sha, text, ok := ledger.CompactJWS(jws)
		if !ok {
			return []any{jws, nil}, nil, ""
		}
		return []any{compact, sha}, sha, text
	case "notifications":
		signed, decoded, sha, text := ledger.CompactNotificationPayload(jws)
		return []any{nullString(signed), nullString(decoded), nullBytes(sha)}, sha, text
	}
	panic("population: no JWS columns for table " + table)
}

// jwsColumnNames are the columns jwsColumns fills, per table.
var jwsColumnNames = map[string][]string{
	"transactions":  {"jws", "jws_chain"},
	"renewal_infos": {"jws", "jws_chain"},
	"notifications": {"signed_payload", "signed_payload_decoded", "payload_chain"},
}

func nullBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}
