package appstore

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
)

// compactJWS is a compact-serialized JWS (header.payload.signature) split and
// decoded, NOT verified.
type compactJWS struct {
	// signingInput is "header.payload" exactly as received: the bytes the
	// signature covers.
	signingInput string
	// alg is the header's "alg", or "" when absent or not a string.
	alg string
	// hasX5C reports whether the header holds an "x5c" array.
	hasX5C bool
	// x5c holds the header's certificate strings as sent (standard base64);
	// an entry that is not a JSON string is kept as "" so that it fails as
	// an undecodable certificate, as in Apple's verifier.
	x5c       []string
	header    []byte // decoded header JSON
	payload   []byte // decoded payload: a JSON object
	signature []byte
}

// parseJWS splits and decodes a compact JWS without verifying anything. Any
// failure is a VERIFICATION_FAILURE, as Apple's verifier treats every decode
// error (wrong number of parts, bad base64url, header or payload not a JSON
// object).
func parseJWS(s string) (compactJWS, error) {
	var j compactJWS
	h, rest, ok := strings.Cut(s, ".")
	p, sig, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || strings.IndexByte(sig, '.') >= 0 {
		return j, verificationErr(VerificationFailure, "JWS does not have exactly three dot-separated parts", nil)
	}
	j.signingInput = s[:len(h)+1+len(p)]

	hdr, err := decodeSegment(h)
	if err != nil {
		return j, verificationErr(VerificationFailure, "JWS header is not base64url", err)
	}
	j.header = hdr
	if err := j.decodeHeader(hdr); err != nil {
		return j, verificationErr(VerificationFailure, "JWS header is not a JSON object", err)
	}
	if j.payload, err = decodeSegment(p); err != nil {
		return j, verificationErr(VerificationFailure, "JWS payload is not base64url", err)
	}
	if !isJSONObject(j.payload) {
		return j, verificationErr(VerificationFailure, "JWS payload is not a JSON object", nil)
	}
	if j.signature, err = decodeSegment(sig); err != nil {
		return j, verificationErr(VerificationFailure, "JWS signature is not base64url", err)
	}
	return j, nil
}

// decodeSegment decodes unpadded base64url. Padding ('=') is an error, as
// in Apple's SignedDataVerifier: JWS compact serialization never pads, so
// a padded segment was not produced by Apple's signer.
func decodeSegment(s string) ([]byte, error) {
	b := make([]byte, base64.RawURLEncoding.DecodedLen(len(s)))
	n, err := base64.RawURLEncoding.Decode(b, []byte(s))
	return b[:n], err
}

// isJSONObject reports whether b starts like a JSON object; whether it is
// valid JSON is the decoder's business. It rejects null, which
// json.Unmarshal into a struct would accept, and arrays and scalars, which
// are not payloads either.
func isJSONObject(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}

// decodeHeader reads "alg" and "x5c" from the header JSON. Keys are matched
// exactly, as Apple's libraries do; other keys (kid, typ) are ignored.
func (j *compactJWS) decodeHeader(b []byte) error {
	if j.decodeHeaderFast(string(b)) {
		return nil
	}
	return j.decodeHeaderSlow(b)
}

// decodeHeaderSlow is decodeHeader for any JSON, with encoding/json.
func (j *compactJWS) decodeHeaderSlow(b []byte) error {
	j.alg, j.hasX5C, j.x5c = "", false, nil
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	if m == nil {
		return errors.New("header is null")
	}
	if raw, ok := m["alg"]; ok {
		_ = json.Unmarshal(raw, &j.alg) // not a string: stays "", so not ES256
	}
	var entries []json.RawMessage
	if raw, ok := m["x5c"]; ok && json.Unmarshal(raw, &entries) == nil && entries != nil {
		j.hasX5C = true
		j.x5c = make([]string, len(entries))
		for i, e := range entries {
			_ = json.Unmarshal(e, &j.x5c[i]) // not a string: stays "", an invalid certificate
		}
	}
	return nil
}

var headerKeys = []string{"alg", "x5c"}

// decodeHeaderFast handles the usual header ({"alg":"ES256","x5c":[...]}
// with plain strings) without encoding/json; it returns false for anything
// else and decodeHeader then takes the general path.
func (j *compactJWS) decodeHeaderFast(s string) bool {
	r := jsonReader{s: s}
	ok := r.object(headerKeys, true, func(k int) bool {
		if k == 0 {
			return r.str(&j.alg)
		}
		j.hasX5C = true
		return r.strings(&j.x5c)
	})
	return ok && r.end()
}

// jsonReader is a strict reader for the plain JSON that Apple signs. It is a
// fast path only (encoding/json spends most of a warm notification
// verification scanning the kilobytes of inner JWS strings byte by byte):
// whenever the input is not plainly shaped (escapes or non-ASCII in strings,
// nulls, repeated keys, keys that encoding/json would match ignoring case,
// type mismatches) a method returns false and the caller decodes the whole
// input with encoding/json instead, whose result is authoritative. A fuzz
// test checks that both give the same result whenever the fast path
// succeeds.
type jsonReader struct {
	s string
	i int
}

func (r *jsonReader) ws() {
	for r.i < len(r.s) {
		switch r.s[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// eat skips whitespace and consumes c if it comes next.
func (r *jsonReader) eat(c byte) bool {
	r.ws()
	if r.i < len(r.s) && r.s[r.i] == c {
		r.i++
		return true
	}
	return false
}

// end reports whether only whitespace remains.
func (r *jsonReader) end() bool {
	r.ws()
	return r.i == len(r.s)
}

// plain reads a string of printable ASCII without escapes, returning it as
// a substring of the input (no copy).
func (r *jsonReader) plain() (string, bool) {
	if !r.eat('"') {
		return "", false
	}
	s, start := r.s, r.i
	// Eight bytes at a time: stop at the first word holding a quote, a
	// backslash, a control character or a non-ASCII byte, then finish
	// byte by byte.
	i := start
	for ; i+8 <= len(s); i += 8 {
		w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		if hasSpecialByte(w) {
			break
		}
	}
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			r.i = i + 1
			return s[start:i], true
		case c < 0x20 || c == '\\' || c >= 0x80:
			return "", false
		}
	}
	return "", false
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// hasSpecialByte reports whether any byte of w is '"', '\\', < 0x20 or
// >= 0x80 (the classic "has zero byte" bit trick, applied per condition).
func hasSpecialByte(w uint64) bool {
	hasZero := func(x uint64) uint64 { return (x - lsb) &^ x & msb }
	return (hasZero(w^(lsb*'"'))|hasZero(w^(lsb*'\\'))|((w-lsb*0x20)&^w)|w)&msb != 0
}

func (r *jsonReader) str(dst *string) bool {
	s, ok := r.plain()
	*dst = s
	return ok
}

func (r *jsonReader) env(dst *Environment) bool {
	s, ok := r.plain()
	*dst = Environment(s)
	return ok
}

// strings reads an array of plain strings; [] gives an empty, non-nil
// slice, as encoding/json does.
func (r *jsonReader) strings(dst *[]string) bool {
	if !r.eat('[') {
		return false
	}
	out := make([]string, 0, 4)
	if r.eat(']') {
		*dst = out
		return true
	}
	for {
		s, ok := r.plain()
		if !ok {
			return false
		}
		out = append(out, s)
		if r.eat(',') {
			continue
		}
		if !r.eat(']') {
			return false
		}
		*dst = out
		return true
	}
}

// number reads a JSON number literal, checked against the JSON grammar.
func (r *jsonReader) number() (string, bool) {
	r.ws()
	s, i := r.s, r.i
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case digits() == 0:
		return "", false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return "", false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return "", false
		}
	}
	lit := s[r.i:i]
	r.i = i
	return lit, true
}

// int reads a number the way Int and Millis decode one.
func (r *jsonReader) int() (int64, bool) {
	lit, ok := r.number()
	if !ok {
		return 0, false
	}
	v, err := parseLenientInt([]byte(lit))
	return v, err == nil
}

func (r *jsonReader) integer(dst *Int) bool {
	v, ok := r.int()
	*dst = Int(v)
	return ok
}

func (r *jsonReader) millis(dst *Millis) bool {
	v, ok := r.int()
	*dst = Millis(v)
	return ok
}

// skip passes over a value of a key the caller does not want. It finds the
// value's extent, then lets encoding/json check that it is valid JSON.
func (r *jsonReader) skip() bool {
	r.ws()
	s, start, i := r.s, r.i, r.i
	if i >= len(s) {
		return false
	}
	str := func() bool { // i at the opening quote
		for i++; i < len(s); i++ {
			switch s[i] {
			case '\\':
				i++
			case '"':
				i++
				return true
			}
		}
		return false
	}
	switch s[i] {
	case '"':
		if !str() {
			return false
		}
	case '{', '[':
		depth := 0
	scan:
		for i < len(s) {
			switch s[i] {
			case '"':
				if !str() {
					return false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					i++
					break scan
				}
			}
			i++
		}
		if depth != 0 {
			return false
		}
	default:
		for i < len(s) && !strings.ContainsRune(",}] \t\r\n", rune(s[i])) {
			i++
		}
	}
	r.i = i
	return json.Valid([]byte(s[start:i]))
}

// object reads an object, calling field with the index in known of each
// known key (field must consume the value) and skipping other keys. With
// exactKeysOnly unset it gives up, as encoding/json's result could differ, on
// a repeated known key and on an unknown key equal to a known one ignoring
// case.
func (r *jsonReader) object(known []string, exactKeysOnly bool, field func(k int) bool) bool {
	if !r.eat('{') {
		return false
	}
	if r.eat('}') {
		return true
	}
	var seen uint64
	for {
		key, ok := r.plain()
		if !ok || !r.eat(':') {
			return false
		}
		k := -1
		for i, kn := range known {
			if kn == key {
				k = i
				break
			}
		}
		switch {
		case k >= 0:
			if seen&(1<<k) != 0 {
				return false
			}
			seen |= 1 << k
			if !field(k) {
				return false
			}
		default:
			if !exactKeysOnly {
				for _, kn := range known {
					if strings.EqualFold(kn, key) {
						return false
					}
				}
			}
			if !r.skip() {
				return false
			}
		}
		if r.eat(',') {
			continue
		}
		return r.eat('}')
	}
}
