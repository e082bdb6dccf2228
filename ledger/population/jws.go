package population

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// jwsColumns returns the stored form of a signed payload for table, in the
// order of that table's JWS columns (jwsColumnNames): every JWS Fill
// writes goes through here, so a change of how the ledger stores JWS (the
// certificate chain kept once, issue 18) changes this function alone.
//
// transactions and renewal_infos keep the compact JWS in jws.
// notifications keep it decoded (ledger/signed_payload.go:
// "header.payloadJSON.signature", so lz4 stores the x5c chain once) in
// signed_payload_decoded, signed_payload NULL; Fill's payloads are always
// plain-ASCII JSON, the condition under which the ledger decodes.
func jwsColumns(table, jws string) []any {
	switch table {
	case "transactions", "renewal_infos":
		return []any{jws}
	case "notifications":
		first := strings.IndexByte(jws, '.')
		last := strings.LastIndexByte(jws, '.')
		payload, err := base64.RawURLEncoding.DecodeString(jws[first+1 : last])
		if first < 0 || first == last || err != nil {
			panic(fmt.Sprintf("population: notification JWS is not header.payload.signature: %.40q", jws))
		}
		return []any{nil, jws[:first+1] + string(payload) + jws[last:]}
	}
	panic("population: no JWS columns for table " + table)
}

// jwsColumnNames are the columns jwsColumns fills, per table.
var jwsColumnNames = map[string][]string{
	"transactions":  {"jws"},
	"renewal_infos": {"jws"},
	"notifications": {"signed_payload", "signed_payload_decoded"},
}
