package ledger

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/applevectors"
	"github.com/storesync/storesync/appstore/sim"
)

// TestEncodePayloadDecodedStoresTheSameForm: the webhook's write (given
// what the verifier decoded), a bulk loader's (CompactNotificationPayload)
// and the form written before the verifier handed anything on
// (encodePayloadBefore, the code this change replaced) store the same
// columns for the same signedPayload, for Apple's vectors, simulator
// notifications and inputs a wrong or lenient decode could mislead.
func TestEncodePayloadDecodedStoresTheSameForm(t *testing.T) {
	t.Parallel()
	inputs := map[string]string{}
	for _, name := range []string{"testNotification", "transactionInfo", "renewalInfo", "wrongBundleId", "missingX5CHeaderClaim"} {
		inputs["apple/"+name] = strings.TrimSpace(applevectors.Text(t, "tests/resources/mock_signed_data/"+name))
	}
	ca, err := sim.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	other, err := sim.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	sn := simNotification(t, ca, 1)
	inputs["sim"] = sn
	// A nested JWS signed with another chain keeps its own chain inside.
	foreign := simNotification(t, other, 2)
	inputs["sim/foreign nested"] = foreign
	h, p, s := splitJWS(t, sn)
	// A last character with non-zero trailing bits decodes (leniently) to
	// the same bytes as the canonical one, but must be stored as it came.
	inputs["sim/non-canonical payload"] = h + "." + flipTrailingBits(p) + "." + s
	inputs["sim/non-canonical header"] = flipTrailingBits(h) + "." + p + "." + s
	for name, signed := range inputs {
		want := encodePayloadBefore(signed)
		for hintName, hint := range hintsFor(t, signed) {
			got := encodePayloadDecoded(signed, hint)
			if got.Signed != want.Signed || got.Decoded != want.Decoded || !bytes.Equal(got.ChainSHA, want.ChainSHA) || got.Chain != want.Chain {
				t.Errorf("%s, %s: stored form differs from the one written before", name, hintName)
			}
			if back, err := got.rebuild(); err != nil || back != signed {
				t.Errorf("%s, %s: rebuilt differs (%v)", name, hintName, err)
			}
		}
		gs, gd, gsha, gc := CompactNotificationPayload(signed)
		if gs != want.Signed || gd != want.Decoded || !bytes.Equal(gsha, want.ChainSHA) || gc != want.Chain {
			t.Errorf("%s: CompactNotificationPayload differs from the form written before", name)
		}
	}
	if p := encodePayloadDecoded(sn, nil); p.Decoded == "" || p.ChainSHA == nil {
		t.Error("sim: not stored in the best form (decoded, chain once)")
	}
}

// hintsFor returns the decoded forms a caller may hand on with signed: none,
// the verifier's (lenient base64url, as appstore decodes), and wrong ones,
// which must cost only the decode they were meant to save.
func hintsFor(t *testing.T, signed string) map[string]*appstore.DecodedJWS {
	h, p, _ := splitJWS(t, signed)
	header, _ := base64.RawURLEncoding.DecodeString(h)
	payload, _ := base64.RawURLEncoding.DecodeString(p)
	return map[string]*appstore.DecodedJWS{
		"no hint":        nil,
		"verifier's":     {Header: header, Payload: payload},
		"wrong header":   {Header: append(bytes.Clone(header), ' '), Payload: payload},
		"wrong payload":  {Header: header, Payload: bytes.Replace(payload, []byte(`"`), []byte(`'`), 1)},
		"empty segments": {Header: []byte{}, Payload: []byte{}},
	}
}

func splitJWS(t *testing.T, jws string) (h, p, s string) {
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %.40q", jws)
	}
	return parts[0], parts[1], parts[2]
}

// flipTrailingBits sets a trailing (ignored) bit of seg's last character,
// when its length leaves any.
func flipTrailingBits(seg string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	if len(seg)%4 == 0 {
		return seg
	}
	i := strings.IndexByte(alphabet, seg[len(seg)-1])
	return seg[:len(seg)-1] + string(alphabet[i|1])
}

// encodePayloadBefore is encodePayload as it was before the verifier
// handed its decoded form on (and before rebuild remembered a header):
// the reference the stored form must keep matching.
func encodePayloadBefore(signedPayload string) storedPayload {
	if compact, sha, chain, ok := compactJWS(signedPayload, false); ok {
		if d, ok := decodeSignedPayload(compact); ok {
			d = mapNestedJWS(d, func(jws string) string {
				if c, _, nestedChain, ok := compactJWS(jws, false); ok && nestedChain == chain {
					return c
				}
				return jws
			})
			p := storedPayload{Decoded: d, ChainSHA: sha, Chain: chain}
			if back, err := rebuildBefore(p); err == nil && back == signedPayload {
				return p
			}
		}
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
		if back, err := rebuildBefore(p); err == nil && back == signedPayload {
			return p
		}
	}
	return storedPayload{Signed: compact, ChainSHA: sha, Chain: chain}
}

// rebuildBefore is storedPayload.rebuild without its header memo.
func rebuildBefore(p storedPayload) (string, error) {
	if p.Decoded == "" {
		if p.ChainSHA == nil {
			return p.Signed, nil
		}
		return RebuildJWS(p.Signed, p.Chain)
	}
	if p.ChainSHA == nil {
		return encodeSignedPayload(p.Decoded)
	}
	var nestedErr error
	decoded := mapNestedJWS(p.Decoded, func(jws string) string {
		if !isCompactJWS(jws) {
			return jws
		}
		full, err := RebuildJWS(jws, p.Chain)
		if err != nil {
			nestedErr = err
		}
		return full
	})
	if nestedErr != nil {
		return "", nestedErr
	}
	outer, err := encodeSignedPayload(decoded)
	if err != nil {
		return "", err
	}
	return RebuildJWS(outer, p.Chain)
}
