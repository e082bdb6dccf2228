package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
)

// Certificates once (migration 011). Every JWS Apple signs carries its x5c
// certificate chain in the protected header, about 4 KB of base64 that is
// the same for every transaction, renewal info and notification signed with
// one leaf certificate. The ledger keeps each distinct chain once in
// certificate_chains, keyed by the SHA-256 of its exact text, and stores
// each JWS compact: the header with the chain's array text cut out,
// re-encoded, plus the chain's hash.
//
// The cut is textual, never a JSON re-serialisation, so rebuilding gives
// back the bytes Apple signed (the signature covers the header segment as
// sent). CompactJWS only answers ok when that holds for its input; anything
// else is stored as it came.

// CompactJWS returns jws without its x5c certificate chain: compact is
// "H.payload.signature" where H is the base64url (no padding) of the
// header's JSON bytes with the chain's array text (from '[' to ']', after
// the first `"x5c"` key and its ':') cut out; chain is that array text,
// chainSHA its SHA-256 (32 bytes), the key of certificate_chains. Rebuild
// with RebuildJWS(compact, chain).
//
// ok is false, and nothing else is returned, whenever RebuildJWS would not
// give back jws byte for byte or the chain is not plain ASCII JSON: not
// three dot-separated segments, a header segment that is not canonical
// unpadded base64url, a header without an `"x5c": [...]` array or whose
// rest is not ASCII, or any other non-canonical input. Callers then store
// jws as it came. It never panics; it allocates about len(jws) bytes.
//
// It is the one encoder of the stored form: the ledger's writes, the online
// compaction and bulk loaders (COPY) all call it, so every writer stores
// the same bytes for the same JWS. A writer stores compact in the JWS
// column and chainSHA in its chain column (transactions.jws_chain,
// renewal_infos.jws_chain), and inserts (chainSHA, chain) into
// certificate_chains (ON CONFLICT DO NOTHING) in the same transaction: no
// foreign key checks that (migration 011). For a notification's
// signedPayload use CompactNotificationPayload.
func CompactJWS(jws string) (compact string, chainSHA []byte, chain string, ok bool) {
	return compactJWS(jws, true)
}

// compactJWS is CompactJWS; without verify it skips the rebuild check, for
// a caller that checks a larger whole (encodePayload) and falls back to
// verified forms when that fails.
func compactJWS(jws string, verify bool) (compact string, chainSHA []byte, chain string, ok bool) {
	return compactJWSHeader(jws, nil, verify)
}

// compactJWSHeader is compactJWS given jws's header already decoded (nil:
// decode it here). A decoded header is taken on trust: only a caller that
// then checks the result rebuilds to jws (verify, or a larger whole) may
// pass one, since a non-canonical segment decodes to the same bytes.
func compactJWSHeader(jws string, header []byte, verify bool) (compact string, chainSHA []byte, chain string, ok bool) {
	dot1 := strings.IndexByte(jws, '.')
	if dot1 < 0 {
		return "", nil, "", false
	}
	rest := jws[dot1+1:]
	dot2 := strings.IndexByte(rest, '.')
	if dot2 < 0 || strings.IndexByte(rest[dot2+1:], '.') >= 0 {
		return "", nil, "", false
	}
	if c, ok := compactedHeaders.load(jws[:dot1]); ok {
		h := c.(*compactedHeader)
		return h.compact + jws[dot1:], h.chainSHA, h.chain, true
	}
	if header == nil {
		if header, ok = decodeCanonical(jws[:dot1]); !ok {
			return "", nil, "", false
		}
	}
	at, ok := x5cValueAt(header)
	if !ok || at >= len(header) || header[at] != '[' {
		return "", nil, "", false
	}
	end, ok := jsonArrayEnd(header, at)
	if !ok {
		return "", nil, "", false
	}
	chain = string(header[at:end])
	cut := make([]byte, 0, len(header)-len(chain))
	cut = append(append(cut, header[:at]...), header[end:]...)
	// ASCII keeps the SQL rebuild (storesync_jws) and the text column
	// independent of encodings; json.Valid keeps non-chains out of
	// certificate_chains.
	if !isPlainASCII(cut) || !isPlainASCII(header[at:end]) || !isJSONChain(header[at:end]) {
		return "", nil, "", false
	}
	compactSeg := base64.RawURLEncoding.EncodeToString(cut)
	compact = compactSeg + jws[dot1:]
	if verify {
		if back, err := RebuildJWS(compact, chain); err != nil || back != jws {
			return "", nil, "", false
		}
	}
	sum := sha256.Sum256([]byte(chain))
	if verify {
		// Only a checked result: the rest of compact is jws's own, so the
		// same header segment compacts, and rebuilds, the same way in any
		// JWS.
		compactedHeaders.store(jws[:dot1], &compactedHeader{compact: compactSeg, chainSHA: sum[:], chain: chain})
	}
	return compact, sum[:], chain, true
}

// compactedHeader is what compactJWSHeader made of a header segment.
type compactedHeader struct {
	compact  string // the compact header segment
	chainSHA []byte // shared by every caller: never written to
	chain    string
}

// rebuiltHeaderKey is RebuildJWS's input as far as the header goes.
type rebuiltHeaderKey struct{ compact, chain string }

// compactedHeaders and rebuiltHeaders remember compaction and rebuild
// results by header segment, process-wide. Both are functions of the
// header segment alone (and, for a rebuild, the chain), and Apple signs
// everything of one environment with one leaf certificate for months, so
// nearly every JWS the ledger writes or reads has one of a handful of
// header segments. Decoding, scanning, re-encoding and hashing its 4 KB
// chain each time was the larger part of compaction, and processing does
// it twice per notification: it rebuilds the nested JWS stored compact to
// verify them, and compacts them again to store them as transaction and
// renewal info.
var (
	compactedHeaders segmentCache // full header segment → *compactedHeader
	rebuiltHeaders   segmentCache // rebuiltHeaderKey → full header segment
)

// segmentCache is a bounded, concurrent map: beyond segmentCacheMax
// entries (a handful are expected; more would be many leaf certificates)
// results are computed every time instead of remembered.
type segmentCache struct {
	m    sync.Map
	size atomic.Int64
}

const segmentCacheMax = 64

func (c *segmentCache) load(key any) (any, bool) { return c.m.Load(key) }

func (c *segmentCache) store(key, value any) {
	if c.size.Load() >= segmentCacheMax {
		return
	}
	if _, loaded := c.m.LoadOrStore(key, value); !loaded {
		c.size.Add(1)
	}
}

// RebuildJWS returns the JWS that CompactJWS compacted into compact, given
// its chain (the certificate_chains text whose hash the row stores): the
// chain is spliced back after the first `"x5c":` of the decoded header and
// the header re-encoded with unpadded base64url. An error says what is
// wrong with compact: not a JWS, a header that is not base64url, or one
// with no chain left out (it already holds an array, or has no x5c key).
func RebuildJWS(compact, chain string) (string, error) {
	dot := strings.IndexByte(compact, '.')
	if dot < 0 {
		return "", errors.New("ledger: compact JWS has no '.': want header.payload.signature")
	}
	key := rebuiltHeaderKey{compact: compact[:dot], chain: chain}
	if full, ok := rebuiltHeaders.load(key); ok {
		return full.(string) + compact[dot:], nil
	}
	header, err := base64.RawURLEncoding.DecodeString(compact[:dot])
	if err != nil {
		return "", fmt.Errorf("ledger: compact JWS header is not unpadded base64url: %w", err)
	}
	at, ok := x5cValueAt(header)
	if !ok || (at < len(header) && header[at] == '[') {
		return "", errors.New(`ledger: compact JWS header has no "x5c": whose chain was left out`)
	}
	full := make([]byte, 0, len(header)+len(chain))
	full = append(append(append(full, header[:at]...), chain...), header[at:]...)
	seg := base64.RawURLEncoding.EncodeToString(full)
	rebuiltHeaders.store(key, seg)
	return seg + compact[dot:], nil
}

// isCompactJWS reports whether s looks like a CompactJWS result: a
// base64url header whose first "x5c" key is followed by no array. The
// nested JWS of a notification are rebuilt only when they do.
func isCompactJWS(s string) bool {
	dot := strings.IndexByte(s, '.')
	if dot < 0 {
		return false
	}
	header, err := base64.RawURLEncoding.DecodeString(s[:dot])
	if err != nil {
		return false
	}
	at, ok := x5cValueAt(header)
	return ok && (at >= len(header) || header[at] != '[')
}

// decodeCanonical decodes a base64url segment, refusing every input that
// RawURLEncoding would not give back as is (padding, line breaks,
// non-zero trailing bits).
func decodeCanonical(seg string) ([]byte, bool) {
	b, err := strictBase64URL.DecodeString(seg)
	if err != nil || base64.RawURLEncoding.EncodedLen(len(b)) != len(seg) {
		return nil, false
	}
	return b, true
}

// x5cValueAt returns the index just after `"x5c"`, JSON whitespace, ':'
// and JSON whitespace, at the first occurrence of `"x5c"` in header; false
// when there is none or no ':' follows it. Compaction and rebuild both use
// the first occurrence, so they agree whatever else the header holds.
func x5cValueAt(header []byte) (int, bool) {
	i := bytes.Index(header, x5cKey)
	if i < 0 {
		return 0, false
	}
	i += len(x5cKey)
	i = skipJSONSpace(header, i)
	if i >= len(header) || header[i] != ':' {
		return 0, false
	}
	return skipJSONSpace(header, i+1), true
}

func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// jsonArrayEnd returns the index after the ']' closing the array opening at
// b[start], skipping strings (with their escapes) and nested arrays; false
// when it is not closed.
func jsonArrayEnd(b []byte, start int) (int, bool) {
	depth := 0
	for i := start; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		case '[':
			depth++
		case ']':
			if depth--; depth == 0 {
				return i + 1, true
			}
		}
	}
	return 0, false
}

var x5cKey = []byte(`"x5c"`)

// isJSONChain reports whether b is valid JSON (json.Valid). An x5c chain
// is an array of base64 strings, recognised here in one pass; anything
// else is left to json.Valid, so the answer is json.Valid's either way.
func isJSONChain(b []byte) bool {
	if isArrayOfPlainStrings(b) {
		return true
	}
	return json.Valid(b)
}

// isArrayOfPlainStrings reports whether b is `[` then zero or more
// strings of base64 characters separated by `,`, then `]`, with JSON
// whitespace between tokens: a subset of valid JSON.
func isArrayOfPlainStrings(b []byte) bool {
	i := skipJSONSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return false
	}
	i = skipJSONSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return skipJSONSpace(b, i+1) == len(b)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return false
		}
		for i++; i < len(b) && isBase64Char(b[i]); i++ {
		}
		if i >= len(b) || b[i] != '"' {
			return false
		}
		i = skipJSONSpace(b, i+1)
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case ']':
			return skipJSONSpace(b, i+1) == len(b)
		case ',':
			i = skipJSONSpace(b, i+1)
		default:
			return false
		}
	}
}

func isBase64Char(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '='
}
