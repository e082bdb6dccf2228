package ledger

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
)

// A notification's signedPayload is stored decoded when that can be undone
// exactly: "header.payloadJSON.signature", the compact JWS with its middle
// segment base64url-decoded. The inner JWS in the payload then carry the
// same header text as the outer one, so lz4 stores the x5c chain once
// instead of three times (14.8 KB become 4.5 KB; see migration 005).

// strictBase64URL decodes JWS segments, refusing non-zero trailing bits.
var strictBase64URL = base64.RawURLEncoding.Strict()

// decodeSignedPayload returns the decoded form of a compact JWS, or false
// when re-encoding it would not give back jws byte for byte: not three
// segments, a payload segment that is not canonical unpadded base64url, or
// a payload that is not ASCII without NUL (kept out so the text column
// holds it under any server or client encoding). Those are stored as they
// came.
func decodeSignedPayload(jws string) (string, bool) {
	first := strings.IndexByte(jws, '.')
	last := strings.LastIndexByte(jws, '.')
	if first < 0 || first == last {
		return "", false
	}
	segment := jws[first+1 : last]
	payload, err := strictBase64URL.DecodeString(segment)
	// Strict rejects non-zero trailing bits; the length check rejects the
	// line breaks the decoder skips. What passes both is the one encoding
	// of payload.
	if err != nil || base64.RawURLEncoding.EncodedLen(len(payload)) != len(segment) {
		return "", false
	}
	if !isPlainASCII(payload) {
		return "", false
	}
	var b strings.Builder
	b.Grow(first + 1 + len(payload) + len(jws) - last)
	b.WriteString(jws[:first+1])
	b.Write(payload)
	b.WriteString(jws[last:])
	return b.String(), true
}

// encodeSignedPayload rebuilds the compact JWS from decodeSignedPayload's
// form. The header and signature segments hold no '.', so the first and
// last dots delimit the payload whatever its JSON contains.
func encodeSignedPayload(decoded string) (string, error) {
	first := strings.IndexByte(decoded, '.')
	last := strings.LastIndexByte(decoded, '.')
	if first < 0 || first == last {
		return "", errors.New("ledger: stored signed_payload_decoded is not header.payload.signature")
	}
	payload := decoded[first+1 : last]
	b := make([]byte, 0, first+1+base64.RawURLEncoding.EncodedLen(len(payload))+len(decoded)-last)
	b = append(b, decoded[:first+1]...)
	b = base64.RawURLEncoding.AppendEncode(b, []byte(payload))
	b = append(b, decoded[last:]...)
	return string(b), nil
}

// isPlainASCII reports whether b is ASCII without NUL, eight bytes at a
// time (the payload is ~11 KB per notification).
func isPlainASCII(b []byte) bool {
	const high, low = 0x8080808080808080, 0x0101010101010101
	for len(b) >= 8 {
		w := binary.LittleEndian.Uint64(b)
		// w&high: a byte ≥ 0x80; (w-low)&^w&high: a zero byte (given none ≥ 0x80).
		if w&high != 0 || (w-low)&^w&high != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c == 0 || c >= 0x80 {
			return false
		}
	}
	return true
}
