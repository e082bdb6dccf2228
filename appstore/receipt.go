package appstore

import (
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// ErrReceiptWithoutTransaction is returned (wrapped) when a receipt is well
// formed but names no in-app purchase, as an app receipt of a customer who
// never bought anything: there is nothing to look up at Apple. Apple's
// ReceiptUtility returns null in that case.
var ErrReceiptWithoutTransaction = errors.New("receipt contains no in-app transaction")

// MaxReceiptLength bounds the base64 receipts the parsers accept (4 MiB).
// Real app receipts are kilobytes to a few hundred kilobytes (one entry per
// purchase ever made); the bound keeps hostile input from costing memory.
const MaxReceiptLength = 4 << 20

// App receipt attribute types (Apple's "Receipt Fields").
const (
	receiptTypeInApp                 = 17
	receiptTypeTransactionID         = 1703
	receiptTypeOriginalTransactionID = 1705
)

var (
	oidSignedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidData       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
)

// ExtractTransactionIDFromAppReceipt returns a transaction id from an app
// receipt (the base64 of Bundle.main.appStoreReceiptURL's content, as apps
// sent it to verifyReceipt), the way Apple's ReceiptUtility does: it reads
// the PKCS#7 SignedData's content, the SET of receipt attributes, takes the
// first in-app purchase attribute (type 17) and returns the first of its
// transaction id (1703) or original transaction id (1705) attributes,
// whichever comes first. Any of them is enough: Get Transaction Info or Get
// Transaction History on it leads to the subscription's
// originalTransactionId.
//
// Nothing is verified (no signature, no certificate): use the id only to
// ask Apple's API, which answers only for this app's real transactions.
// Both DER and BER (indefinite lengths, as Xcode writes) are read. A
// receipt with no in-app purchase returns ErrReceiptWithoutTransaction;
// anything malformed, or longer than MaxReceiptLength, returns an error
// saying what is wrong. Base64 may be standard or URL-safe, padded or not,
// with line breaks.
func ExtractTransactionIDFromAppReceipt(appReceipt string) (string, error) {
	der, err := decodeReceiptBase64("app receipt", appReceipt)
	if err != nil {
		return "", err
	}
	const d = 0
	ci, err := berSequence(der, d, "app receipt: PKCS#7 ContentInfo")
	if err != nil {
		return "", err
	}
	if len(ci) < 2 || !isOID(ci[0], oidSignedData) || ci[1].class != 2 || ci[1].tag != 0 {
		return "", errors.New("app receipt: not a PKCS#7 SignedData (is it an app receipt, base64 of the receipt file?)")
	}
	sd, err := berSequence(ci[1].content, d+2, "app receipt: SignedData")
	if err != nil {
		return "", err
	}
	if len(sd) < 3 || !sd[2].is(berTagSequence) {
		return "", errors.New("app receipt: SignedData has no encapsulated content")
	}
	encap, err := berChildren(sd[2], d+3)
	if err != nil {
		return "", fmt.Errorf("app receipt: encapsulated content: %w", err)
	}
	if len(encap) < 2 || !isOID(encap[0], oidData) || encap[1].class != 2 || encap[1].tag != 0 {
		return "", errors.New("app receipt: SignedData content is not PKCS#7 data")
	}
	inner, _, err := berNext(encap[1].content, d+5)
	if err != nil {
		return "", fmt.Errorf("app receipt: content: %w", err)
	}
	payload, err := berOctets(inner, d+5)
	if err != nil {
		return "", fmt.Errorf("app receipt: content: %w", err)
	}
	attrs, err := receiptAttributes(payload, d+6)
	if err != nil {
		return "", fmt.Errorf("app receipt: payload: %w", err)
	}
	for _, a := range attrs {
		if a.typ != receiptTypeInApp {
			continue
		}
		// Apple's libraries look only at the first in-app purchase.
		purchase, err := receiptAttributes(a.value, d+10)
		if err != nil {
			return "", fmt.Errorf("app receipt: in-app purchase: %w", err)
		}
		for _, p := range purchase {
			if p.typ == receiptTypeTransactionID || p.typ == receiptTypeOriginalTransactionID {
				id, err := receiptString(p.value, d+14)
				if err != nil {
					return "", fmt.Errorf("app receipt: transaction id: %w", err)
				}
				return id, nil
			}
		}
		return "", fmt.Errorf("app receipt: %w (its first in-app purchase has no transaction id)", ErrReceiptWithoutTransaction)
	}
	return "", fmt.Errorf("app receipt: %w", ErrReceiptWithoutTransaction)
}

var (
	legacyPurchaseInfo  = regexp.MustCompile(`"purchase-info"\s+=\s+"([a-zA-Z0-9+/=]+)";`)
	legacyTransactionID = regexp.MustCompile(`"transaction-id"\s+=\s+"([a-zA-Z0-9+/=]+)";`)
)

// ExtractTransactionIDFromTransactionReceipt returns the transaction id of
// a legacy StoreKit 1 transaction receipt (SKPaymentTransaction's
// transactionReceipt, deprecated since iOS 7): base64 of an old-style
// property list `{"purchase-info" = "<base64>";}` whose purchase-info
// decodes to one holding `"transaction-id" = "…";`. As Apple's
// ReceiptUtility, it reads only those two fields with patterns and verifies
// nothing. A receipt without them returns ErrReceiptWithoutTransaction;
// bad base64 or a receipt longer than MaxReceiptLength an error.
func ExtractTransactionIDFromTransactionReceipt(transactionReceipt string) (string, error) {
	top, err := decodeReceiptBase64("transaction receipt", transactionReceipt)
	if err != nil {
		return "", err
	}
	m := legacyPurchaseInfo.FindSubmatch(top)
	if m == nil {
		return "", fmt.Errorf("transaction receipt: %w (no \"purchase-info\")", ErrReceiptWithoutTransaction)
	}
	info, err := decodeReceiptBase64("transaction receipt: purchase-info", string(m[1]))
	if err != nil {
		return "", err
	}
	m = legacyTransactionID.FindSubmatch(info)
	if m == nil {
		return "", fmt.Errorf("transaction receipt: %w (no \"transaction-id\" in purchase-info)", ErrReceiptWithoutTransaction)
	}
	return string(m[1]), nil
}

// decodeReceiptBase64 accepts what companies stored: standard or URL-safe
// alphabet, with or without padding, with whitespace (PEM-like wrapping).
func decodeReceiptBase64(what, s string) ([]byte, error) {
	if len(s) > MaxReceiptLength {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d accepted", what, len(s), MaxReceiptLength)
	}
	s = strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		case '-':
			return '+'
		case '_':
			return '/'
		}
		return r
	}, s)
	s = strings.TrimRight(s, "=")
	if s == "" {
		return nil, fmt.Errorf("%s: empty", what)
	}
	b, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%s: not base64 (%v); pass the receipt as the app sent it", what, err)
	}
	return b, nil
}

// berSequence reads b's first element, which must be a SEQUENCE, and
// returns its children.
func berSequence(b []byte, depth int, what string) ([]berElement, error) {
	e, _, err := berNext(b, depth)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if !e.is(berTagSequence) {
		return nil, fmt.Errorf("%s: not an ASN.1 SEQUENCE", what)
	}
	c, err := berChildren(e, depth)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return c, nil
}

func isOID(e berElement, want asn1.ObjectIdentifier) bool {
	if !e.is(berTagOID) || e.constructed {
		return false
	}
	var got asn1.ObjectIdentifier
	// Re-wrap as DER (a short OID always fits a one-byte length).
	if len(e.content) > 127 {
		return false
	}
	der := append([]byte{berTagOID, byte(len(e.content))}, e.content...)
	if _, err := asn1.Unmarshal(der, &got); err != nil {
		return false
	}
	return got.Equal(want)
}

// receiptAttribute is one `SEQUENCE { type INTEGER, version INTEGER,
// value OCTET STRING }` of a receipt's (or an in-app purchase's) SET.
type receiptAttribute struct {
	typ   int64
	value []byte
}

// receiptAttributes reads a SET of receipt attributes. Entries whose type
// does not fit 32 bits are kept with type -1 (no attribute storesync reads
// has such a type), as Apple's parsers skip what they do not know.
func receiptAttributes(b []byte, depth int) ([]receiptAttribute, error) {
	// Like Apple's parsers, read the first element and ignore what follows.
	set, _, err := berNext(b, depth)
	if err != nil {
		return nil, err
	}
	if !set.is(berTagSet) {
		return nil, errors.New("not an ASN.1 SET of attributes")
	}
	items, err := berChildren(set, depth)
	if err != nil {
		return nil, err
	}
	out := make([]receiptAttribute, 0, len(items))
	for _, it := range items {
		if !it.is(berTagSequence) {
			return nil, errors.New("attribute is not a SEQUENCE")
		}
		f, err := berChildren(it, depth+1)
		if err != nil {
			return nil, err
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("attribute has %d fields, want 3 (type, version, value)", len(f))
		}
		typ, ok := berSmallInt(f[0])
		if !ok {
			typ = -1
		}
		v, err := berOctets(f[2], depth+2)
		if err != nil {
			return nil, fmt.Errorf("attribute %d value: %w", typ, err)
		}
		out = append(out, receiptAttribute{typ: typ, value: v})
	}
	return out, nil
}

// receiptString decodes an attribute value holding a UTF8String or
// IA5String (transaction ids are UTF8String).
func receiptString(b []byte, depth int) (string, error) {
	e, _, err := berNext(b, depth)
	if err != nil {
		return "", err
	}
	if e.constructed || !(e.is(berTagUTF8String) || e.is(berTagIA5String)) {
		return "", errors.New("not a UTF8String or IA5String")
	}
	if !utf8.Valid(e.content) {
		return "", errors.New("not valid UTF-8")
	}
	if len(e.content) == 0 {
		// Apple would return "", which no API call accepts: say so here.
		return "", errors.New("empty")
	}
	return string(e.content), nil
}
