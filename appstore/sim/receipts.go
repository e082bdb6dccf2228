package sim

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"fmt"
	"math/big"
	"time"

	"github.com/storesync/storesync/appstore"
)

// Receipt is one customer's app receipt, as a company that used
// verifyReceipt kept it: the line of /sim/receipts.
type Receipt struct {
	// AppReceipt is the base64 app receipt (PKCS#7 SignedData signed by
	// the simulator's leaf, with its leaf and intermediate certificates),
	// holding one in-app entry per transaction of the customer, oldest
	// first, as of the simulated now.
	AppReceipt string `json:"appReceipt"`
	// CustomerID is the account's id (Truth's AccountID).
	CustomerID string `json:"customerId"`
	// AppAccountToken is the company's token of the customer (as in
	// /sim/ids): never empty.
	AppAccountToken string `json:"appAccountToken"`
}

// Receipt attribute types written (Apple's "Receipt Fields").
const (
	receiptAttrEnvironment        = 0
	receiptAttrBundleID           = 2
	receiptAttrAppVersion         = 3
	receiptAttrCreationDate       = 12
	receiptAttrInApp              = 17
	receiptAttrQuantity           = 1701
	receiptAttrProductID          = 1702
	receiptAttrTransactionID      = 1703
	receiptAttrPurchaseDate       = 1704
	receiptAttrOriginalTxID       = 1705
	receiptAttrExpiresDate        = 1708
	receiptAttrWebOrderLineItemID = 1711
)

// Receipts returns an app receipt for every customer of env that has a
// transaction, ordered by customer id. A customer's receipt names all of
// its subscriptions (the first in-app entry is its oldest transaction), so
// importing the receipts gives the same ledger as importing /sim/ids.
func (s *Simulator) Receipts(env appstore.Environment) ([]Receipt, error) {
	w := s.world
	w.mu.RLock()
	defer w.mu.RUnlock()
	var out []Receipt
	for _, a := range w.accounts {
		if a.env.env != env || len(a.bySeq) == 0 {
			continue
		}
		r, err := w.appReceipt(a)
		if err != nil {
			return nil, err
		}
		out = append(out, Receipt{AppReceipt: r, CustomerID: a.ID(), AppAccountToken: a.companyToken})
	}
	return out, nil
}

// TransactionReceipt returns a legacy StoreKit 1 transaction receipt
// (SKPaymentTransaction.transactionReceipt) of a transaction of either
// environment, or "" for an unknown transaction. Its "signature" is not a
// real one: nothing reads it (Apple's ReceiptUtility does not either).
func (s *Simulator) TransactionReceipt(transactionID string) string {
	w := s.world
	w.mu.RLock()
	defer w.mu.RUnlock()
	for _, e := range w.envs {
		t := e.txByID[transactionID]
		if t == nil {
			continue
		}
		env := "Production"
		if e.env == appstore.Sandbox {
			env = "Sandbox"
		}
		ms := t.purchase.UnixMilli()
		info := fmt.Sprintf("{\n\t\"original-purchase-date-ms\" = \"%d\";\n\t\"original-transaction-id\" = \"%s\";\n\t\"product-id\" = \"%s\";\n\t\"transaction-id\" = \"%s\";\n\t\"quantity\" = \"1\";\n\t\"purchase-date-ms\" = \"%d\";\n\t\"bid\" = \"%s\";\n}",
			t.sub.txs[0].purchase.UnixMilli(), t.sub.otid, t.product.ID, t.id, ms, w.bundleID)
		top := fmt.Sprintf("{\n\t\"signature\" = \"%s\";\n\t\"purchase-info\" = \"%s\";\n\t\"environment\" = \"%s\";\n\t\"pod\" = \"100\";\n\t\"signing-status\" = \"0\";\n}",
			base64.StdEncoding.EncodeToString([]byte("simulated")), base64.StdEncoding.EncodeToString([]byte(info)), env)
		return base64.StdEncoding.EncodeToString([]byte(top))
	}
	return ""
}

type receiptAttr struct {
	Type    int
	Version int
	Value   []byte
}

func utf8Value(s string) []byte {
	b, _ := asn1.MarshalWithParams(s, "utf8")
	return b
}

func ia5Date(t time.Time) []byte {
	b, _ := asn1.MarshalWithParams(t.UTC().Format("2006-01-02T15:04:05Z"), "ia5")
	return b
}

func intValue(v int64) []byte {
	b, _ := asn1.Marshal(v)
	return b
}

// appReceipt builds and signs a's app receipt. Called with w.mu held.
func (w *world) appReceipt(a *account) (string, error) {
	env := "Production"
	if a.env.env == appstore.Sandbox {
		env = "ProductionSandbox"
	}
	attrs := []receiptAttr{
		{receiptAttrEnvironment, 1, utf8Value(env)},
		{receiptAttrBundleID, 1, utf8Value(w.bundleID)},
		{receiptAttrAppVersion, 1, utf8Value("1")},
		{receiptAttrCreationDate, 1, ia5Date(w.now())},
	}
	for _, t := range a.bySeq {
		entry := []receiptAttr{
			{receiptAttrQuantity, 1, intValue(1)},
			{receiptAttrProductID, 1, utf8Value(t.product.ID)},
			{receiptAttrTransactionID, 1, utf8Value(t.id)},
			{receiptAttrPurchaseDate, 1, ia5Date(t.purchase)},
			{receiptAttrOriginalTxID, 1, utf8Value(t.sub.otid)},
			{receiptAttrExpiresDate, 1, ia5Date(t.expires)},
			{receiptAttrWebOrderLineItemID, 1, intValue(webOrderNumber(t.webOrder))},
		}
		set, err := asn1.MarshalWithParams(entry, "set")
		if err != nil {
			return "", fmt.Errorf("sim: receipt entry: %w", err)
		}
		attrs = append(attrs, receiptAttr{receiptAttrInApp, 1, set})
	}
	payload, err := asn1.MarshalWithParams(attrs, "set")
	if err != nil {
		return "", fmt.Errorf("sim: receipt payload: %w", err)
	}
	der, err := w.ca.signPKCS7(payload)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(der), nil
}

func webOrderNumber(s string) int64 {
	var n int64
	for _, c := range s {
		if c < '0' || c > '9' || n > (1<<62)/10 {
			return 0
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

var (
	oidPKCS7Data       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidPKCS7SignedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidSHA256          = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
)

type pkcs7AlgorithmID struct {
	Algorithm asn1.ObjectIdentifier
}

type pkcs7IssuerAndSerial struct {
	Issuer asn1.RawValue
	Serial *big.Int
}

type pkcs7SignerInfo struct {
	Version   int
	SID       pkcs7IssuerAndSerial
	DigestAlg pkcs7AlgorithmID
	SigAlg    pkcs7AlgorithmID
	Signature []byte
}

type pkcs7Encap struct {
	ContentType asn1.ObjectIdentifier
	Content     []byte `asn1:"explicit,tag:0"`
}

type pkcs7SignedData struct {
	Version      int
	DigestAlgs   []pkcs7AlgorithmID `asn1:"set"`
	Encap        pkcs7Encap
	Certificates asn1.RawValue
	SignerInfos  []pkcs7SignerInfo `asn1:"set"`
}

type pkcs7ContentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue
}

// signPKCS7 wraps content in a DER PKCS#7 SignedData signed by the leaf
// key (ECDSA over SHA-256 of the content, no signed attributes), carrying
// the leaf and intermediate certificates, as Apple's receipts carry
// Apple's. Real receipts use RSA; nothing in storesync verifies them.
func (c *CA) signPKCS7(content []byte) ([]byte, error) {
	digest := sha256.Sum256(content)
	sig, err := ecdsa.SignASN1(rand.Reader, c.leafKey, digest[:])
	if err != nil {
		return nil, fmt.Errorf("sim: signing a receipt: %w", err)
	}
	sd := pkcs7SignedData{
		Version:    1,
		DigestAlgs: []pkcs7AlgorithmID{{oidSHA256}},
		Encap:      pkcs7Encap{ContentType: oidPKCS7Data, Content: content},
		Certificates: asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true,
			Bytes: append(append([]byte(nil), c.Leaf.Raw...), c.Intermediate.Raw...)},
		SignerInfos: []pkcs7SignerInfo{{
			Version:   1,
			SID:       pkcs7IssuerAndSerial{Issuer: asn1.RawValue{FullBytes: c.Leaf.RawIssuer}, Serial: c.Leaf.SerialNumber},
			DigestAlg: pkcs7AlgorithmID{oidSHA256},
			SigAlg:    pkcs7AlgorithmID{oidECDSAWithSHA256},
			Signature: sig,
		}},
	}
	sdDER, err := asn1.Marshal(sd)
	if err != nil {
		return nil, fmt.Errorf("sim: receipt SignedData: %w", err)
	}
	return asn1.Marshal(pkcs7ContentInfo{
		ContentType: oidPKCS7SignedData,
		Content:     asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: sdDER},
	})
}

// receiptCSVHeader is the header of /sim/receipts.
var receiptCSVHeader = []string{"app_receipt", "customer_id", "app_account_token"}
