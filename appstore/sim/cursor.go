package sim

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"net/url"
	"slices"
	"strings"
)

// pageToken is the content of an opaque paging token: a transaction
// history or refund history revision, or a notification-history
// paginationToken. Tokens are MACed with a key derived from the seed, so a
// forged or garbled token is detected, and they carry a hash of the query
// they belong to (scope), so a token from another query is rejected.
type pageToken struct {
	kind   byte   // tokenHistory, tokenRefund, tokenNotifications
	page   uint32 // 1-based page the token asks for
	pos    uint64 // history: modification sequence cursor; notifications: log index
	issued int64  // wall time ms when issued (notification history expiry)
	scope  [8]byte
}

const (
	tokenHistory       byte = 'h'
	tokenRefund        byte = 'r'
	tokenNotifications byte = 'n'
	tokenLen                = 1 + 4 + 8 + 8 + 8 + 8
)

func (s *Simulator) sealToken(t pageToken) string {
	b := make([]byte, 0, tokenLen)
	b = append(b, t.kind)
	b = binary.BigEndian.AppendUint32(b, t.page)
	b = binary.BigEndian.AppendUint64(b, t.pos)
	b = binary.BigEndian.AppendUint64(b, uint64(t.issued))
	b = append(b, t.scope[:]...)
	b = append(b, s.tokenMAC(b)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// openToken decodes a token of kind; false for anything forged, garbled
// or of another kind. The scope is checked by the caller.
func (s *Simulator) openToken(str string, kind byte) (pageToken, bool) {
	b, err := base64.RawURLEncoding.DecodeString(str)
	if err != nil || len(b) != tokenLen || b[0] != kind {
		return pageToken{}, false
	}
	body, mac := b[:tokenLen-8], b[tokenLen-8:]
	if !hmac.Equal(mac, s.tokenMAC(body)) {
		return pageToken{}, false
	}
	t := pageToken{kind: kind}
	t.page = binary.BigEndian.Uint32(body[1:])
	t.pos = binary.BigEndian.Uint64(body[5:])
	t.issued = int64(binary.BigEndian.Uint64(body[13:]))
	copy(t.scope[:], body[21:29])
	return t, true
}

func (s *Simulator) tokenMAC(b []byte) []byte {
	m := hmac.New(sha256.New, s.tokenKey)
	m.Write(b)
	return m.Sum(nil)[:8]
}

// scopeOf hashes the parts that identify one query.
func scopeOf(parts ...string) [8]byte {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	var out [8]byte
	copy(out[:], h[:8])
	return out
}

// canonicalQuery renders q without skip, keys and values sorted, so the
// same parameters in another order give the same scope.
func canonicalQuery(q url.Values, skip string) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		if k != skip {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var sb strings.Builder
	for _, k := range keys {
		vs := slices.Clone(q[k])
		slices.Sort(vs)
		for _, v := range vs {
			sb.WriteString(url.QueryEscape(k))
			sb.WriteByte('=')
			sb.WriteString(url.QueryEscape(v))
			sb.WriteByte('&')
		}
	}
	return sb.String()
}
