package sim

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
)

func TestCAChainIsShapedLikeApples(t *testing.T) {
	t.Parallel()
	ca, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	if !ca.Root.IsCA || !bytes.Equal(ca.Root.RawIssuer, ca.Root.RawSubject) {
		t.Error("root is not a self-signed CA")
	}
	if !ca.Intermediate.IsCA || ca.Intermediate.MaxPathLen != 0 || !ca.Intermediate.MaxPathLenZero {
		t.Errorf("intermediate: IsCA %v, MaxPathLen %d (zero %v); want a CA with path length 0",
			ca.Intermediate.IsCA, ca.Intermediate.MaxPathLen, ca.Intermediate.MaxPathLenZero)
	}
	if ca.Leaf.IsCA {
		t.Error("leaf is a CA")
	}
	for _, c := range []struct {
		name string
		cert *x509.Certificate
		oid  []int
	}{{"intermediate", ca.Intermediate, OIDAppleIntermediate}, {"leaf", ca.Leaf, OIDAppleLeaf}} {
		found := false
		for _, e := range c.cert.Extensions {
			if e.Id.Equal(c.oid) {
				found = true
				if !bytes.Equal(e.Value, []byte{0x05, 0x00}) {
					t.Errorf("%s marker value %x, want ASN.1 NULL 0500", c.name, e.Value)
				}
			}
		}
		if !found {
			t.Errorf("%s lacks marker extension %v", c.name, c.oid)
		}
	}
	if ca.Intermediate.Subject.CommonName != "Simulated Apple Worldwide Developer Relations Certification Authority" {
		t.Errorf("intermediate CN %q", ca.Intermediate.Subject.CommonName)
	}
	if ca.Leaf.Subject.CommonName != "Simulated Prod ECC Mac App Store and iTunes Store Receipt Signing" {
		t.Errorf("leaf CN %q", ca.Leaf.Subject.CommonName)
	}
	for _, c := range []*x509.Certificate{ca.Root, ca.Intermediate, ca.Leaf} {
		if c.NotBefore.After(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)) || c.NotAfter.Before(time.Date(2045, 1, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("%s valid %s..%s, want 2020..2045", c.Subject.CommonName, c.NotBefore, c.NotAfter)
		}
		if len(c.SubjectKeyId) == 0 {
			t.Errorf("%s has no subject key id", c.Subject.CommonName)
		}
	}
	blk, _ := pem.Decode(ca.RootPEM())
	if blk == nil || !bytes.Equal(blk.Bytes, ca.RootDER()) {
		t.Error("RootPEM does not hold RootDER")
	}
}

func TestCASaveLoadRoundTrip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.RootDER(), b.RootDER()) || !bytes.Equal(a.Leaf.Raw, b.Leaf.Raw) {
		t.Fatal("second LoadOrCreateCA made a new chain instead of loading the saved one")
	}
	// The loaded chain signs with the saved leaf key.
	s, err := New(Options{Subscribers: 5, CA: b})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	jws, err := b.Sign(map[string]any{"signedDate": s.Now().UnixMilli()})
	if err != nil {
		t.Fatal(err)
	}
	verifyJWS(t, s, jws, nil)
}

// TestSignedDataVerifies checks every kind of signed item the API returns
// with crypto/x509 and ecdsa, as a client's verifier would.
func TestSignedDataVerifies(t *testing.T) {
	t.Parallel()
	s := startTest(t, unlimited(Options{Seed: 3, Subscribers: 50}))
	ids := s.OriginalTransactionIDs(appstore.Production)
	var st appstore.StatusResponse
	call(t, s, "GET", "/inApps/v1/subscriptions/"+ids[0], nil).decode(t, &st)
	item := st.Data[0].LastTransactions[0]
	var tx appstore.TransactionPayload
	verifyJWS(t, s, item.SignedTransactionInfo, &tx)
	var rn appstore.RenewalInfoPayload
	verifyJWS(t, s, item.SignedRenewalInfo, &rn)
	if tx.SignedDate.Time() != s.Now() || rn.SignedDate.Time() != s.Now() {
		t.Errorf("signedDate %v / %v, want the simulated now %v", tx.SignedDate.Time(), rn.SignedDate.Time(), s.Now())
	}
	if tx.BundleID != s.BundleID() || tx.Environment != appstore.Production || rn.Environment != appstore.Production {
		t.Errorf("bundle %q env %q/%q", tx.BundleID, tx.Environment, rn.Environment)
	}
	var info appstore.TransactionInfoResponse
	call(t, s, "GET", "/inApps/v1/transactions/"+ids[0], nil).decode(t, &info)
	verifyJWS(t, s, info.SignedTransactionInfo, &tx)
	if tx.TransactionID != ids[0] {
		t.Errorf("transaction info for %s returned %s", ids[0], tx.TransactionID)
	}
}
