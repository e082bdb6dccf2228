package appstore

import (
	"errors"
	"fmt"
)

// berElement is one BER TLV: app receipts made by Xcode (and older devices)
// use BER's indefinite lengths and constructed OCTET STRINGs, which
// encoding/asn1 (DER only) rejects, so the receipt parser reads BER itself.
type berElement struct {
	class       int  // 0 universal, 1 application, 2 context-specific, 3 private
	constructed bool // content is a sequence of elements
	tag         int
	content     []byte // the value, without the end-of-contents octets of an indefinite length
}

// Universal tags the receipt parser needs.
const (
	berTagInteger     = 2
	berTagOctetString = 4
	berTagOID         = 6
	berTagUTF8String  = 12
	berTagSequence    = 16
	berTagSet         = 17
	berTagIA5String   = 22
)

// berMaxDepth bounds nesting. A receipt nests about 9 levels deep; hostile
// input must not recurse without end (stack) or make scanning quadratic.
const berMaxDepth = 24

var errBERTruncated = errors.New("truncated ASN.1 element")

// berNext reads the first element of b and returns it and the bytes after
// it. depth is the caller's nesting level: past berMaxDepth it is an error.
// An indefinite length is resolved by scanning the element's children for
// the end-of-contents marker, so the cost is linear in the element's size
// for each level it is read at (at most berMaxDepth times in all).
func berNext(b []byte, depth int) (berElement, []byte, error) {
	var e berElement
	if depth > berMaxDepth {
		return e, nil, fmt.Errorf("ASN.1 nested deeper than %d levels", berMaxDepth)
	}
	if len(b) < 2 {
		return e, nil, errBERTruncated
	}
	e.class = int(b[0] >> 6)
	e.constructed = b[0]&0x20 != 0
	e.tag = int(b[0] & 0x1f)
	i := 1
	if e.tag == 0x1f { // high tag number form, base 128
		e.tag = 0
		for {
			if i >= len(b) {
				return e, nil, errBERTruncated
			}
			if e.tag > 1<<20 {
				return e, nil, errors.New("ASN.1 tag number too large")
			}
			c := b[i]
			i++
			e.tag = e.tag<<7 | int(c&0x7f)
			if c&0x80 == 0 {
				break
			}
		}
	}
	if i >= len(b) {
		return e, nil, errBERTruncated
	}
	l := b[i]
	i++
	switch {
	case l < 0x80:
		n := int(l)
		if n > len(b)-i {
			return e, nil, errBERTruncated
		}
		e.content = b[i : i+n]
		return e, b[i+n:], nil
	case l == 0x80: // indefinite: children up to the end-of-contents octets 00 00
		if !e.constructed {
			return e, nil, errors.New("ASN.1 primitive element with indefinite length")
		}
		rest := b[i:]
		for {
			if len(rest) >= 2 && rest[0] == 0 && rest[1] == 0 {
				e.content = b[i : len(b)-len(rest)]
				return e, rest[2:], nil
			}
			var err error
			if _, rest, err = berNext(rest, depth+1); err != nil {
				return e, nil, err
			}
		}
	default:
		k := int(l & 0x7f)
		if k > 4 || k > len(b)-i {
			return e, nil, errBERTruncated
		}
		n := 0
		for _, c := range b[i : i+k] {
			n = n<<8 | int(c)
		}
		i += k
		if n < 0 || n > len(b)-i {
			return e, nil, errBERTruncated
		}
		e.content = b[i : i+n]
		return e, b[i+n:], nil
	}
}

// berChildren splits a constructed element's content into its elements.
func berChildren(e berElement, depth int) ([]berElement, error) {
	if !e.constructed {
		return nil, errors.New("ASN.1 element is not constructed")
	}
	var out []berElement
	rest := e.content
	for len(rest) > 0 {
		c, r, err := berNext(rest, depth+1)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
		rest = r
	}
	return out, nil
}

// is reports whether e is the universal type tag.
func (e berElement) is(tag int) bool { return e.class == 0 && e.tag == tag }

// berOctets returns an OCTET STRING's bytes, joining the segments of a
// constructed (BER) one. The result is never longer than the input.
func berOctets(e berElement, depth int) ([]byte, error) {
	if !e.is(berTagOctetString) {
		return nil, errors.New("ASN.1 element is not an OCTET STRING")
	}
	if !e.constructed {
		return e.content, nil
	}
	parts, err := berChildren(e, depth)
	if err != nil {
		return nil, err
	}
	var out []byte
	for _, p := range parts {
		b, err := berOctets(p, depth+1)
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	return out, nil
}

// berSmallInt returns an INTEGER that fits in 32 bits (receipt attribute
// types do); ok is false for anything else.
func berSmallInt(e berElement) (int64, bool) {
	if !e.is(berTagInteger) || e.constructed || len(e.content) == 0 || len(e.content) > 4 {
		return 0, false
	}
	v := int64(int8(e.content[0])) // sign-extend
	for _, c := range e.content[1:] {
		v = v<<8 | int64(c)
	}
	return v, true
}
