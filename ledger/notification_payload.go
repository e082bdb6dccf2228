package ledger

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/storesync/storesync/appstore"
)

// storedPayload is a notification's signedPayload as a row holds it
// (notifications and kept_aside_notifications): exactly one of Signed and
// Decoded, and ChainSHA/Chain when its certificate chain is stored once in
// certificate_chains. The forms, best first:
//
//   - Decoded with a chain: the outer JWS compacted (CompactJWS) and its
//     payload segment decoded (decodeSignedPayload), with every nested
//     signedTransactionInfo/signedRenewalInfo JWS signed with the same
//     chain compacted too. About 2.5 KB instead of 15.
//   - Signed with a chain: the outer JWS compacted, its payload as sent.
//   - Decoded without a chain (migration 005's form).
//   - Signed as it came.
//
// Each form is kept only when rebuildPayload gives back the exact bytes.
type storedPayload struct {
	Signed, Decoded string
	ChainSHA        []byte
	Chain           string
}

// nestedJWSKeys are the payload members holding JWS signed with the
// notification's chain. Apple's JSON has no space around ':', and a JWS no
// '"' or '\', so the value is the text up to the next '"'.
var nestedJWSKeys = []string{`"signedTransactionInfo":"`, `"signedRenewalInfo":"`}

// encodePayload returns the smallest stored form of signedPayload that
// rebuilds to it byte for byte. It never fails: the last resort is
// signedPayload itself.
func encodePayload(signedPayload string) storedPayload {
	return encodePayloadDecoded(signedPayload, nil)
}

// encodePayloadDecoded is encodePayload given what the verifier decoded of
// signedPayload (nil: decode here), so the webhook's write decodes
// nothing twice. It returns the same form whether or not decoded is
// given: decoded only replaces base64url decodes whose result the
// whole's rebuild check then confirms.
func encodePayloadDecoded(signedPayload string, decoded *appstore.DecodedJWS) storedPayload {
	// The fast path checks only the whole (one rebuild), then falls back
	// to forms each checked on their own.
	if p, ok := encodePayloadWhole(signedPayload, decoded); ok {
		return p
	}
	compact, sha, chain, ok := CompactJWS(signedPayload)
	if !ok {
		if d, ok := decodeSignedPayload(signedPayload); ok {
			return storedPayload{Decoded: d}
		}
		return storedPayload{Signed: signedPayload}
	}
	if d, ok := decodeSignedPayload(compact); ok {
		d = mapNestedJWS(d, func(jws string) string {
			if c, _, nestedChain, ok := CompactJWS(jws); ok && nestedChain == chain {
				return c
			}
			return jws
		})
		p := storedPayload{Decoded: d, ChainSHA: sha, Chain: chain}
		if back, err := p.rebuild(); err == nil && back == signedPayload {
			return p
		}
	}
	// CompactJWS verified this form.
	return storedPayload{Signed: compact, ChainSHA: sha, Chain: chain}
}

// encodePayloadWhole is encodePayload's best form (Decoded with a chain)
// built without checking its parts, then kept only if the whole rebuilds
// to signedPayload: that check also confirms the segments given decoded
// (a wrong or non-canonical one re-encodes to other text).
func encodePayloadWhole(signedPayload string, decoded *appstore.DecodedJWS) (storedPayload, bool) {
	var header, payload []byte
	if decoded != nil {
		header, payload = decoded.Header, decoded.Payload
	}
	compact, sha, chain, ok := compactJWSHeader(signedPayload, header, false)
	if !ok {
		return storedPayload{}, false
	}
	var d string
	if payload != nil {
		d, ok = withPayload(compact, payload)
	} else {
		d, ok = decodeSignedPayload(compact)
	}
	if !ok {
		return storedPayload{}, false
	}
	// A nested JWS signed with the notification's chain carries the outer
	// header segment as is; compactJWS would give it the outer's compact
	// header, so it gets that without decoding the header again.
	outerSeg := signedPayload[:strings.IndexByte(signedPayload, '.')]
	compactSeg := compact[:strings.IndexByte(compact, '.')]
	d = mapNestedJWS(d, func(jws string) string {
		if seg, rest, found := strings.Cut(jws, "."); found && seg == outerSeg && strings.Count(rest, ".") == 1 {
			return compactSeg + "." + rest
		}
		if c, _, nestedChain, ok := compactJWS(jws, false); ok && nestedChain == chain {
			return c
		}
		return jws
	})
	p := storedPayload{Decoded: d, ChainSHA: sha, Chain: chain}
	if back, err := p.rebuild(); err == nil && back == signedPayload {
		return p, true
	}
	return storedPayload{}, false
}

// withPayload is decodeSignedPayload given the payload segment already
// decoded: jws with its middle segment replaced by payload, or false when
// payload is not ASCII without NUL. Whether payload is the segment's one
// encoding is left to the caller's rebuild check.
func withPayload(jws string, payload []byte) (string, bool) {
	first := strings.IndexByte(jws, '.')
	last := strings.LastIndexByte(jws, '.')
	if first < 0 || first == last || !isPlainASCII(payload) {
		return "", false
	}
	var b strings.Builder
	b.Grow(first + 1 + len(payload) + len(jws) - last)
	b.WriteString(jws[:first+1])
	b.Write(payload)
	b.WriteString(jws[last:])
	return b.String(), true
}

// rebuild returns the signedPayload p stores. It is the one place a
// notification's stored form becomes Apple's JWS again; an error names
// what is inconsistent in the row.
func (p storedPayload) rebuild() (string, error) {
	if p.Decoded == "" {
		if p.ChainSHA == nil {
			return p.Signed, nil
		}
		return RebuildJWS(p.Signed, p.Chain)
	}
	if p.ChainSHA == nil {
		return encodeSignedPayload(p.Decoded)
	}
	decoded, m, err := p.withNestedRebuilt()
	if err != nil {
		return "", err
	}
	outer, err := encodeSignedPayload(decoded)
	if err != nil {
		return "", err
	}
	if full, ok := m.rebuilt(outer); ok {
		return full, nil
	}
	return RebuildJWS(outer, p.Chain)
}

// payloadJSON returns the JSON of the payload segment of the
// signedPayload p stores in its Decoded form, nested JWS rebuilt as Apple
// signed them: what decoding rebuild's result gives back, without
// encoding that 13 KB segment for a reader to decode it again. false when
// p holds the Signed form (stored as it came: only its rebuild is Apple's
// text).
func (p storedPayload) payloadJSON() (string, bool, error) {
	if p.Decoded == "" {
		return "", false, nil
	}
	decoded, m := p.Decoded, (*headerMemo)(nil)
	if p.ChainSHA != nil {
		var err error
		if decoded, m, err = p.withNestedRebuilt(); err != nil {
			return "", false, err
		}
	}
	first := strings.IndexByte(decoded, '.')
	last := strings.LastIndexByte(decoded, '.')
	if first < 0 || first == last {
		return "", false, errors.New("ledger: stored signed_payload_decoded is not header.payload.signature")
	}
	if m != nil && m.compact != decoded[:first] {
		// The outer header is not rebuilt (the reader does not need it), but
		// a row whose rebuild fails still fails here, as it does there.
		if _, err := RebuildJWS(decoded[:first+1], p.Chain); err != nil {
			return "", false, err
		}
	}
	return decoded[first+1 : last], true, nil
}

// withNestedRebuilt is p.Decoded (p has a chain) with every nested JWS
// compacted with p's chain rebuilt, and the memo of the header rebuilt.
func (p storedPayload) withNestedRebuilt() (string, *headerMemo, error) {
	var nestedErr error
	m := new(headerMemo)
	decoded := mapNestedJWS(p.Decoded, func(jws string) string {
		if full, ok := m.rebuilt(jws); ok {
			return full
		}
		if !isCompactJWS(jws) {
			return jws
		}
		full, err := RebuildJWS(jws, p.Chain)
		if err != nil {
			nestedErr = err
		}
		m.remember(jws, full)
		return full
	})
	if nestedErr != nil {
		return "", nil, nestedErr
	}
	return decoded, m, nil
}

// headerMemo remembers the last compact header segment rebuilt with a
// row's chain and its full form: a notification's nested JWS and its
// outer one share that segment, and RebuildJWS's result is that full
// segment followed by the rest of its input as is, so the header is
// decoded and re-encoded once instead of three times.
type headerMemo struct{ compact, full string }

// remember records the header segments of compact and of full, its
// RebuildJWS result.
func (m *headerMemo) remember(compact, full string) {
	c, f := strings.IndexByte(compact, '.'), strings.IndexByte(full, '.')
	if c > 0 && f > 0 && full[f:] == compact[c:] {
		m.compact, m.full = compact[:c], full[:f]
	}
}

// rebuilt is RebuildJWS(jws, chain) when jws's header segment is the one
// remembered; false otherwise.
func (m *headerMemo) rebuilt(jws string) (string, bool) {
	dot := strings.IndexByte(jws, '.')
	if m.compact == "" || dot < 0 || jws[:dot] != m.compact {
		return "", false
	}
	return m.full + jws[dot:], true
}

// rowPayload is storedPayload from a row's columns (signed_payload,
// signed_payload_decoded, payload_chain), with the chain text looked up in
// chains; an error names the missing chain.
func rowPayload(signed, decoded *string, chainSHA []byte, chains map[string]string) (storedPayload, error) {
	var p storedPayload
	if signed != nil {
		p.Signed = *signed
	}
	if decoded != nil {
		p.Decoded = *decoded
	}
	if chainSHA != nil {
		chain, ok := chains[string(chainSHA)]
		if !ok {
			return p, fmt.Errorf("ledger: certificate chain %x is not in certificate_chains", chainSHA)
		}
		p.ChainSHA, p.Chain = chainSHA, chain
	}
	return p, nil
}

// mapNestedJWS returns decoded ("header.payloadJSON.signature") with the
// value of every nestedJWSKeys member of the payload replaced by f(value).
// Values holding a '\' are left alone: f only ever sees plain JWS text.
func mapNestedJWS(decoded string, f func(string) string) string {
	first := strings.IndexByte(decoded, '.')
	last := strings.LastIndexByte(decoded, '.')
	if first < 0 || first == last {
		return decoded
	}
	var b strings.Builder
	done := 0 // decoded[:done] is written to b, or nothing is yet
	// Keys are found in payload order, whichever comes first.
	at := first + 1
	for {
		k, kl := -1, 0
		for _, key := range nestedJWSKeys {
			if i := strings.Index(decoded[at:last], key); i >= 0 && (k < 0 || at+i < k) {
				k, kl = at+i, len(key)
			}
		}
		if k < 0 {
			break
		}
		start := k + kl
		end := strings.IndexByte(decoded[start:last], '"')
		if end < 0 {
			break
		}
		end += start
		value := decoded[start:end]
		at = end
		if strings.IndexByte(value, '\\') >= 0 {
			continue
		}
		if nv := f(value); nv != value {
			if done == 0 {
				b.Grow(len(decoded))
			}
			b.WriteString(decoded[done:start])
			b.WriteString(nv)
			done = end
		}
	}
	if done == 0 {
		return decoded
	}
	b.WriteString(decoded[done:])
	return b.String()
}

// rebuildPayload returns the signedPayload a notifications or
// kept_aside_notifications row stores in its signed_payload,
// signed_payload_decoded and payload_chain columns. It is the one read
// path of stored notifications.
func (l *Ledger) rebuildPayload(ctx context.Context, signed, decoded *string, chainSHA []byte) (string, error) {
	p, err := l.storedPayload(ctx, signed, decoded, chainSHA)
	if err != nil {
		return "", err
	}
	return p.rebuild()
}

// storedPayload is rowPayload with the chain looked up.
func (l *Ledger) storedPayload(ctx context.Context, signed, decoded *string, chainSHA []byte) (storedPayload, error) {
	var chains map[string]string
	if chainSHA != nil {
		var err error
		if chains, err = l.certificateChains(ctx, chainSHA); err != nil {
			return storedPayload{}, err
		}
	}
	return rowPayload(signed, decoded, chainSHA, chains)
}

// CompactNotificationPayload returns the columns a notifications (or
// kept_aside_notifications) row stores for signedPayload, as the ledger's
// own writes store them: exactly one of signed (signed_payload) and
// decoded (signed_payload_decoded) is non-empty, and chainSHA (payload_chain)
// is nil when the chain stays inside; chain is the certificate_chains text
// to insert, in the same transaction, under chainSHA. Bulk loaders (COPY)
// call it so their rows read back like any other; the ledger rebuilds
// signedPayload byte for byte from them (the form is chosen only when it
// does). An empty signedPayload returns empty signed and decoded.
func CompactNotificationPayload(signedPayload string) (signed, decoded string, chainSHA []byte, chain string) {
	p := encodePayload(signedPayload)
	return p.Signed, p.Decoded, p.ChainSHA, p.Chain
}
