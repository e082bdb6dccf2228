package sim

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/csv"
	"strings"
	"testing"

	"github.com/storesync/storesync/appstore"
)

// The receipts parse with storesync's own parser (Apple's ReceiptUtility
// rules) to the customer's oldest transaction, are signed by the CA's leaf,
// and /sim/receipts lists one per customer.
func TestReceiptsParseToTheCustomersTransactions(t *testing.T) {
	t.Parallel()
	s := startTest(t, unlimited(Options{Seed: 9, Subscribers: 120}))
	truths := map[string]string{} // otid → account
	for _, tr := range s.Truth() {
		truths[tr.OriginalTransactionID] = tr.AccountID
	}
	total := 0
	for _, env := range []appstore.Environment{appstore.Production, appstore.Sandbox} {
		rs, err := s.Receipts(env)
		if err != nil {
			t.Fatal(err)
		}
		total += len(rs)
		for _, r := range rs {
			id, err := appstore.ExtractTransactionIDFromAppReceipt(r.AppReceipt)
			if err != nil {
				t.Fatalf("%s: %v", r.CustomerID, err)
			}
			otid := s.world.env(env).txByID[id].sub.otid
			if truths[otid] != r.CustomerID {
				t.Fatalf("%s: receipt's first transaction %s belongs to %s", r.CustomerID, id, truths[otid])
			}
			if r.AppAccountToken == "" {
				t.Fatalf("%s: no company token", r.CustomerID)
			}
			legacy := s.TransactionReceipt(id)
			if got, err := appstore.ExtractTransactionIDFromTransactionReceipt(legacy); err != nil || got != id {
				t.Fatalf("transaction receipt of %s: %q, %v", id, got, err)
			}
		}
	}
	if total == 0 {
		t.Fatal("no receipts")
	}

	// The signature verifies with the leaf certificate carried in the receipt.
	rs, _ := s.Receipts(appstore.Production)
	der, _ := base64.StdEncoding.DecodeString(rs[0].AppReceipt)
	var ci pkcs7ContentInfo
	if _, err := asn1.Unmarshal(der, &ci); err != nil {
		t.Fatal(err)
	}
	var sd pkcs7SignedData
	if _, err := asn1.Unmarshal(ci.Content.Bytes, &sd); err != nil {
		t.Fatal(err)
	}
	certs, err := x509.ParseCertificates(sd.Certificates.Bytes)
	if err != nil || len(certs) != 2 {
		t.Fatalf("certificates: %d, %v", len(certs), err)
	}
	digest := sha256.Sum256(sd.Encap.Content)
	if !ecdsa.VerifyASN1(certs[0].PublicKey.(*ecdsa.PublicKey), digest[:], sd.SignerInfos[0].Signature) {
		t.Fatal("receipt signature does not verify with its leaf")
	}

	code, body := controlCall(t, s, "GET", "/sim/receipts?env=all", "")
	recs, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
	if code != 200 || err != nil || strings.Join(recs[0], ",") != "app_receipt,customer_id,app_account_token" || len(recs) != 1+total {
		t.Fatalf("/sim/receipts: %d, %v, %d rows", code, err, len(recs))
	}
}
