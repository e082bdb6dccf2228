package appstore

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"path"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore/applevectors"
)

// testChain is Apple's test PKI from the Java library's resources: a CA, an
// intermediate and a leaf with the right Apple OIDs, with private keys, so
// tests can sign their own JWS with a chain that verifies.
type testChain struct {
	caKey, interKey, leafKey *ecdsa.PrivateKey
	ca, inter, leaf          *x509.Certificate
	caDER                    []byte
	x5c                      []string // standard base64 DER: leaf, intermediate, CA
}

const certsDir = "java/src/test/resources/certs/"

func loadTestChain(t testing.TB) *testChain {
	t.Helper()
	c := &testChain{
		caKey:    testECKey(t, certsDir+"testCA.key"),
		interKey: testECKey(t, certsDir+"testIntermediate.key"),
		leafKey:  testECKey(t, certsDir+"testLeaf.key"),
		ca:       testCert(t, certsDir+"testCA.pem"),
		inter:    testCert(t, certsDir+"testIntermediate.pem"),
		leaf:     testCert(t, certsDir+"testLeaf.pem"),
	}
	c.caDER = applevectors.Bytes(t, "tests/resources/certs/testCA.der")
	c.x5c = []string{b64(c.leaf.Raw), b64(c.inter.Raw), b64(c.ca.Raw)}
	return c
}

func b64(der []byte) string { return base64.StdEncoding.EncodeToString(der) }

func testECKey(t testing.TB, rel string) *ecdsa.PrivateKey {
	t.Helper()
	blk, _ := pem.Decode(applevectors.Bytes(t, rel))
	if blk == nil {
		t.Fatalf("%s: no PEM block", rel)
	}
	k, err := x509.ParseECPrivateKey(blk.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return k
}

func testCert(t testing.TB, rel string) *x509.Certificate {
	t.Helper()
	certs, err := parseCertificates(applevectors.Bytes(t, rel))
	if err != nil || len(certs) != 1 {
		t.Fatalf("%s: %v", rel, err)
	}
	return certs[0]
}

// sign makes an ES256 JWS of payload with the test leaf and its chain.
func (c *testChain) sign(t testing.TB, payload []byte) string {
	t.Helper()
	return signJWS(t, c.leafKey, map[string]any{"alg": "ES256", "x5c": c.x5c}, payload)
}

// signJWS makes a compact JWS with any header, signed ES256 by key (raw
// r||s, as JWS requires).
func signJWS(t testing.TB, key *ecdsa.PrivateKey, header any, payload []byte) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(payload)
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// sandboxModel returns one of Apple's tests/resources/models payloads with
// its environment switched from LocalTesting to Sandbox, so it can be
// verified on the full path (applevectors/testdata/CASES.md §6).
func sandboxModel(t testing.TB, name string) []byte {
	t.Helper()
	b := applevectors.Bytes(t, "tests/resources/models/"+name)
	out := bytes.ReplaceAll(b, []byte(`"LocalTesting"`), []byte(`"Sandbox"`))
	if name != "signedExternalPurchaseTokenNotification.json" && name != "signedExternalPurchaseTokenSandboxNotification.json" && bytes.Equal(out, b) {
		t.Fatalf("%s: no LocalTesting environment to switch", name)
	}
	return out
}

// newTestVerifier trusts the test CA, in Sandbox for com.example.
func newTestVerifier(t testing.TB, c *testChain, edit func(*VerifierOptions)) *Verifier {
	t.Helper()
	opts := VerifierOptions{
		RootCertificates: [][]byte{c.caDER},
		Environment:      Sandbox,
		BundleID:         "com.example",
		AppAppleID:       41234,
	}
	if edit != nil {
		edit(&opts)
	}
	v, err := NewVerifier(opts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func wantStatus(t *testing.T, what string, err error, want VerificationStatus) {
	t.Helper()
	if got := StatusOf(err); got != want {
		t.Fatalf("%s: status %v (%v), want %v", what, got, err, want)
	}
	if want != VerificationOK {
		var ve *VerificationError
		if !errors.As(err, &ve) || ve.Reason == "" {
			t.Fatalf("%s: %v is not a *VerificationError with a reason", what, err)
		}
	}
}

type signedDataCase struct {
	File     string `json:"file"`
	Literal  string `json:"literal"`
	Kind     string `json:"kind"`
	Verifier struct {
		TrustedRoot string      `json:"trustedRoot"`
		Environment Environment `json:"environment"`
		BundleID    string      `json:"bundleId"`
		AppAppleID  int64       `json:"appAppleId"`
	} `json:"verifier"`
	Expect          string                     `json:"expect"`
	ExpectFields    map[string]json.RawMessage `json:"expectFields"`
	EffectiveDateMs int64                      `json:"effectiveDateMs"`
}

// TestSignedDataCases runs every case of derived/signed-data-cases.json: the
// stored mock_signed_data and xcode JWS files with the outcome Apple's tests
// expect, and the decoded fields.
func TestSignedDataCases(t *testing.T) {
	t.Parallel()
	var f struct{ Cases []signedDataCase }
	if err := json.Unmarshal(applevectors.Bytes(t, "derived/signed-data-cases.json"), &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) < 14 {
		t.Fatalf("%d cases, want at least 14", len(f.Cases))
	}
	for i, c := range f.Cases {
		name := fmt.Sprintf("%02d_%s_%s", i, path.Base(c.File+c.Literal), c.Verifier.Environment)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			jws := c.Literal
			if c.File != "" {
				jws = string(applevectors.Bytes(t, c.File))
			}
			opts := VerifierOptions{Environment: c.Verifier.Environment, BundleID: c.Verifier.BundleID, AppAppleID: c.Verifier.AppAppleID}
			if c.Verifier.TrustedRoot != "" {
				opts.RootCertificates = [][]byte{applevectors.Bytes(t, c.Verifier.TrustedRoot)}
			}
			v, err := NewVerifier(opts)
			if err != nil {
				t.Fatal(err)
			}
			got, err := verifyKind(v, c.Kind, jws, time.Time{})
			switch {
			case strings.HasPrefix(c.Expect, "OK"):
				wantStatus(t, "verify", err, VerificationOK)
			case strings.HasPrefix(c.Expect, "any VerificationException"):
				var ve *VerificationError
				if !errors.As(err, &ve) {
					t.Fatalf("err %v, want a *VerificationError", err)
				}
				return
			default:
				if StatusOf(err).String() != c.Expect || err == nil {
					t.Fatalf("status %v (%v), want %s", StatusOf(err), err, c.Expect)
				}
				return
			}
			checkFields(t, got, c.ExpectFields)

			if c.EffectiveDateMs != 0 {
				// The chain is checked at signedDate, not now: it still
				// verifies when "now" is after the test certificates
				// expired, and fails when that time is forced.
				late := time.Date(2042, 4, 12, 0, 0, 0, 0, time.UTC)
				v2, err := NewVerifier(VerifierOptions{RootCertificates: opts.RootCertificates, Environment: opts.Environment,
					BundleID: opts.BundleID, AppAppleID: opts.AppAppleID, Now: func() time.Time { return late }})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := verifyKind(v2, c.Kind, jws, time.Time{}); err != nil {
					t.Errorf("with now in 2042: %v, want OK (effective time is signedDate)", err)
				}
				_, err = verifyKind(v2, c.Kind, jws, late)
				wantStatus(t, "at 2042", err, VerificationFailure)
			}
		})
	}
}

// verifyKind verifies jws as the payload kind named in the case tables.
// Apple's AppTransaction has no public verifier here (storesync never
// receives one); its vectors run through the shared checks, decoding into
// a map.
func verifyKind(v *Verifier, kind, jws string, at time.Time) (any, error) {
	switch kind {
	case "notification":
		return v.VerifyNotificationAt(jws, at)
	case "transaction":
		return v.VerifyTransactionAt(jws, at)
	case "renewalInfo":
		return v.VerifyRenewalInfoAt(jws, at)
	case "appTransaction":
		var m map[string]any
		err := v.verifySigned(jws, at, func(j *compactJWS) (Millis, error) { return 0, json.Unmarshal(j.payload, &m) })
		return m, err
	}
	return nil, fmt.Errorf("unknown kind %q", kind)
}

// checkFields compares dotted paths of got, as JSON, with want; a null
// expectation means absent, and an absent field (omitempty) reads as false.
func checkFields(t *testing.T, got any, want map[string]json.RawMessage) {
	t.Helper()
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	for path, w := range want {
		var cur any = m
		for _, k := range strings.Split(path, ".") {
			obj, _ := cur.(map[string]any)
			cur = obj[k]
		}
		if string(w) == "null" {
			if cur != nil {
				t.Errorf("%s = %v, want absent", path, cur)
			}
			continue
		}
		var wv any
		d := json.NewDecoder(bytes.NewReader(w))
		d.UseNumber()
		if err := d.Decode(&wv); err != nil {
			t.Fatal(err)
		}
		if cur == nil && wv == false {
			continue
		}
		if fmt.Sprint(cur) != fmt.Sprint(wv) {
			t.Errorf("%s = %v, want %v", path, cur, wv)
		}
	}
}

// TestSignedModels signs Apple's signed*.json payload models with the test
// leaf (environment switched to Sandbox) and checks the verified, decoded
// values listed in applevectors/testdata/CASES.md §6.
func TestSignedModels(t *testing.T) {
	t.Parallel()
	c := loadTestChain(t)
	v := newTestVerifier(t, c, nil)

	t.Run("signedNotification", func(t *testing.T) {
		t.Parallel()
		n, err := v.VerifyNotification(c.sign(t, sandboxModel(t, "signedNotification.json")))
		if err != nil {
			t.Fatal(err)
		}
		if n.NotificationType != "SUBSCRIBED" || n.Subtype != "INITIAL_BUY" || n.NotificationUUID != "002e14d5-51f5-4503-b5a8-c3a1af68eb20" ||
			n.Version != "2.0" || n.SignedDate != 1698148900000 || n.Summary != nil || n.ExternalPurchaseToken != nil || n.AppData != nil {
			t.Errorf("notification %+v", n)
		}
		d := n.Data
		if d == nil || d.Environment != Sandbox || d.AppAppleID != 41234 || d.BundleID != "com.example" || d.BundleVersion != "1.2.3" ||
			d.SignedTransactionInfo != "signed_transaction_info_value" || d.SignedRenewalInfo != "signed_renewal_info_value" ||
			d.Status != StatusActive || d.ConsumptionRequestReason != "" {
			t.Errorf("data %+v", d)
		}
	})
	t.Run("signedConsumptionRequestNotification", func(t *testing.T) {
		t.Parallel()
		n, err := v.VerifyNotification(c.sign(t, sandboxModel(t, "signedConsumptionRequestNotification.json")))
		if err != nil {
			t.Fatal(err)
		}
		if n.NotificationType != "CONSUMPTION_REQUEST" || n.Subtype != "" || n.Data == nil ||
			n.Data.ConsumptionRequestReason != "UNINTENDED_PURCHASE" || n.Data.AppAppleID != 41234 {
			t.Errorf("notification %+v data %+v", n, n.Data)
		}
	})
	t.Run("signedSummaryNotification", func(t *testing.T) {
		t.Parallel()
		n, err := v.VerifyNotification(c.sign(t, sandboxModel(t, "signedSummaryNotification.json")))
		if err != nil {
			t.Fatal(err)
		}
		s := n.Summary
		if n.NotificationType != "RENEWAL_EXTENSION" || n.Subtype != "SUMMARY" || n.Data != nil || s == nil ||
			s.Environment != Sandbox || s.AppAppleID != 41234 || s.BundleID != "com.example" || s.ProductID != "com.example.product" ||
			s.RequestIdentifier != "efb27071-45a4-4aca-9854-2a1e9146f265" ||
			!reflect.DeepEqual(s.StorefrontCountryCodes, []string{"CAN", "USA", "MEX"}) || s.SucceededCount != 5 || s.FailedCount != 2 {
			t.Errorf("notification %+v summary %+v", n, s)
		}
	})
	t.Run("signedExternalPurchaseTokenNotification", func(t *testing.T) {
		t.Parallel()
		jws := c.sign(t, sandboxModel(t, "signedExternalPurchaseTokenNotification.json"))
		// No SANDBOX prefix: the identity check uses Production.
		prod := newTestVerifier(t, c, func(o *VerifierOptions) { o.Environment, o.AppAppleID = Production, 55555 })
		n, err := prod.VerifyNotification(jws)
		if err != nil {
			t.Fatal(err)
		}
		e := n.ExternalPurchaseToken
		if n.NotificationType != "EXTERNAL_PURCHASE_TOKEN" || n.Subtype != "UNREPORTED" || e == nil ||
			e.ExternalPurchaseID != "b2158121-7af9-49d4-9561-1f588205523e" || e.TokenCreationDate != 1698148950000 ||
			e.AppAppleID != 55555 || e.BundleID != "com.example" {
			t.Errorf("notification %+v token %+v", n, e)
		}
		_, err = v.VerifyNotification(jws)
		wantStatus(t, "Sandbox verifier", err, InvalidEnvironment)
		if env, err := PeekNotificationEnvironment(jws); env != Production || err != nil {
			t.Errorf("peek: %q, %v", env, err)
		}
	})
	t.Run("signedExternalPurchaseTokenSandboxNotification", func(t *testing.T) {
		t.Parallel()
		jws := c.sign(t, sandboxModel(t, "signedExternalPurchaseTokenSandboxNotification.json"))
		sb := newTestVerifier(t, c, func(o *VerifierOptions) { o.AppAppleID = 0 })
		n, err := sb.VerifyNotification(jws)
		if err != nil {
			t.Fatal(err)
		}
		if e := n.ExternalPurchaseToken; e == nil || e.ExternalPurchaseID != "SANDBOX_b2158121-7af9-49d4-9561-1f588205523e" || e.AppAppleID != 55555 {
			t.Errorf("token %+v", n.ExternalPurchaseToken)
		}
		prod := newTestVerifier(t, c, func(o *VerifierOptions) { o.Environment, o.AppAppleID = Production, 55555 })
		_, err = prod.VerifyNotification(jws)
		wantStatus(t, "Production verifier", err, InvalidEnvironment)
	})
	t.Run("signedRescindConsentNotification", func(t *testing.T) {
		t.Parallel()
		n, err := v.VerifyNotification(c.sign(t, sandboxModel(t, "signedRescindConsentNotification.json")))
		if err != nil {
			t.Fatal(err)
		}
		a := n.AppData
		if n.NotificationType != "RESCIND_CONSENT" || n.Subtype != "" || n.Data != nil || n.Summary != nil || n.ExternalPurchaseToken != nil ||
			a == nil || a.AppAppleID != 41234 || a.BundleID != "com.example" || a.Environment != Sandbox ||
			a.SignedAppTransactionInfo != "signed_app_transaction_info_value" {
			t.Errorf("notification %+v appData %+v", n, a)
		}
	})
	for _, name := range []string{"signedTransaction.json", "signedTransactionWithRevocation.json"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tx, err := v.VerifyTransaction(c.sign(t, sandboxModel(t, name)))
			if err != nil {
				t.Fatal(err)
			}
			if tx.OriginalTransactionID != "12345" || tx.TransactionID != "23456" || tx.WebOrderLineItemID != "34343" ||
				tx.BundleID != "com.example" || tx.ProductID != "com.example.product" || tx.SubscriptionGroupIdentifier != "55555" ||
				tx.OriginalPurchaseDate != 1698148800000 || tx.PurchaseDate != 1698148900000 || tx.RevocationDate != 1698148950000 ||
				tx.ExpiresDate != 1698149000000 || tx.Quantity != 1 || tx.Type != "Auto-Renewable Subscription" ||
				tx.AppAccountToken != "7e3fb20b-4cdb-47cc-936d-99d65f608138" || tx.InAppOwnershipType != "PURCHASED" ||
				tx.SignedDate != 1698148900000 || tx.RevocationReason == nil || *tx.RevocationReason != 1 ||
				tx.OfferIdentifier != "abc.123" || !tx.IsUpgraded || tx.OfferType != 1 || tx.Storefront != "USA" ||
				tx.StorefrontID != "143441" || tx.TransactionReason != "PURCHASE" || tx.Environment != Sandbox ||
				tx.Price != 10990 || tx.Currency != "USD" || tx.OfferDiscountType != "PAY_AS_YOU_GO" ||
				tx.AppTransactionID != "71134" || tx.OfferPeriod != "P1Y" {
				t.Errorf("transaction %+v", tx)
			}
			withRevocation := name == "signedTransactionWithRevocation.json"
			if withRevocation != (tx.RevocationType == "REFUND_PRORATED" && tx.RevocationPercentage == 50000) {
				t.Errorf("revocationType %q percentage %d", tx.RevocationType, tx.RevocationPercentage)
			}
			if withRevocation {
				return // the revocation model has no commitmentInfo
			}
			var commitment struct {
				BillingPeriodNumber   int   `json:"billingPeriodNumber"`
				CommitmentExpiresDate int64 `json:"commitmentExpiresDate"`
				CommitmentPrice       int   `json:"commitmentPrice"`
				TotalBillingPeriods   int   `json:"totalBillingPeriods"`
			}
			if err := json.Unmarshal(tx.CommitmentInfo, &commitment); err != nil || commitment.BillingPeriodNumber != 3 ||
				commitment.CommitmentExpiresDate != 1698150000000 || commitment.CommitmentPrice != 119880 || commitment.TotalBillingPeriods != 12 {
				t.Errorf("commitmentInfo %s: %+v %v", tx.CommitmentInfo, commitment, err)
			}
		})
	}
	t.Run("signedRenewalInfo", func(t *testing.T) {
		t.Parallel()
		// Renewal info has no bundleId: a verifier for another app accepts it.
		other := newTestVerifier(t, c, func(o *VerifierOptions) { o.BundleID = "com.other" })
		r, err := other.VerifyRenewalInfo(c.sign(t, sandboxModel(t, "signedRenewalInfo.json")))
		if err != nil {
			t.Fatal(err)
		}
		if r.ExpirationIntent != 1 || r.OriginalTransactionID != "12345" || r.AutoRenewProductID != "com.example.product.2" ||
			r.ProductID != "com.example.product" || r.AutoRenewStatus != 1 || !r.IsInBillingRetryPeriod ||
			r.PriceIncreaseStatus == nil || *r.PriceIncreaseStatus != 0 || r.GracePeriodExpiresDate != 1698148900000 ||
			r.OfferType != 2 || r.OfferIdentifier != "abc.123" || r.SignedDate != 1698148800000 || r.Environment != Sandbox ||
			r.RecentSubscriptionStartDate != 1698148800000 || r.RenewalDate != 1698148850000 || r.RenewalPrice != 9990 ||
			r.Currency != "USD" || r.OfferDiscountType != "PAY_AS_YOU_GO" ||
			!reflect.DeepEqual(r.EligibleWinBackOfferIDs, []string{"eligible1", "eligible2"}) || r.AppTransactionID != "71134" ||
			r.OfferPeriod != "P1Y" || r.AppAccountToken != "7e3fb20b-4cdb-47cc-936d-99d65f608138" || r.RenewalBillingPlanType != "MONTHLY" {
			t.Errorf("renewal info %+v", r)
		}
	})
}

// TestLocalTestingSkipsSignature mirrors Apple's own model tests: payloads
// signed by a random key without x5c decode in the LocalTesting
// environment, where only bundle and environment are checked.
func TestLocalTestingSkipsSignature(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(VerifierOptions{Environment: LocalTesting, BundleID: "com.example"})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(name string) string {
		return signJWS(t, key, map[string]string{"alg": "ES256", "typ": "JWT"}, applevectors.Bytes(t, "tests/resources/models/"+name))
	}
	if n, err := v.VerifyNotification(sign("signedNotification.json")); err != nil || n.Data.Environment != LocalTesting {
		t.Errorf("notification: %v", err)
	}
	if tx, err := v.VerifyTransaction(sign("signedTransaction.json")); err != nil || tx.TransactionID != "23456" {
		t.Errorf("transaction: %v", err)
	}
	if r, err := v.VerifyRenewalInfo(sign("signedRenewalInfo.json")); err != nil || r.AutoRenewStatus != 1 {
		t.Errorf("renewal info: %v", err)
	}
	// Still checked: bundle and environment.
	wrongBundle := newVerifierOrFatal(t, VerifierOptions{Environment: LocalTesting, BundleID: "com.other"})
	_, err = wrongBundle.VerifyTransaction(sign("signedTransaction.json"))
	wantStatus(t, "wrong bundle", err, InvalidAppIdentifier)
	xcode := newVerifierOrFatal(t, VerifierOptions{Environment: Xcode, BundleID: "com.example"})
	_, err = xcode.VerifyTransaction(sign("signedTransaction.json"))
	wantStatus(t, "LocalTesting payload, Xcode verifier", err, InvalidEnvironment)
	// And the same unsigned data fails in Sandbox.
	sb := newVerifierOrFatal(t, VerifierOptions{Environment: Sandbox, BundleID: "com.example"})
	_, err = sb.VerifyTransaction(sign("signedTransaction.json"))
	wantStatus(t, "Sandbox verifier", err, VerificationFailure)
}

func newVerifierOrFatal(t *testing.T, o VerifierOptions) *Verifier {
	t.Helper()
	v, err := NewVerifier(o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestRejections covers forged, malformed and misconfigured input.
func TestRejections(t *testing.T) {
	t.Parallel()
	c := loadTestChain(t)
	v := newTestVerifier(t, c, nil)
	payload := sandboxModel(t, "signedNotification.json")
	good := c.sign(t, payload)
	if _, err := v.VerifyNotification(good); err != nil {
		t.Fatalf("baseline: %v", err)
	}
	parts := strings.Split(good, ".")
	enc := base64.RawURLEncoding.EncodeToString
	header := func(h any) string {
		b, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		return enc(b)
	}
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hs256 := func() string {
		input := header(map[string]any{"alg": "HS256", "x5c": c.x5c}) + "." + parts[1]
		m := hmac.New(sha256.New, []byte(c.x5c[0]))
		m.Write([]byte(input))
		return input + "." + enc(m.Sum(nil))
	}()
	tampered := bytes.Replace(payload, []byte(`SUBSCRIBED`), []byte(`DID_RENEW`), 1)
	if bytes.Equal(tampered, payload) {
		t.Fatal("tampering changed nothing")
	}
	badOIDLeaf := testCert(t, certsDir+"testInvalidOIDLeaf.pem")
	badOIDInter := testCert(t, certsDir+"testInvalidOIDIntermediate.pem")
	leafUnderBadInter := testCert(t, certsDir+"testInvalidIntermediateLeaf.pem")
	flipped := []byte(good)
	flipped[len(flipped)-5] ^= 0x01
	if flipped[len(flipped)-5] == '.' || bytes.Equal(flipped, []byte(good)) {
		t.Fatal("bad bit flip")
	}
	derSig := func() string {
		sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
		sig, err := ecdsa.SignASN1(rand.Reader, c.leafKey, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		return parts[0] + "." + parts[1] + "." + enc(sig)
	}()

	for _, tc := range []struct {
		name string
		jws  string
		want VerificationStatus
	}{
		{"tampered payload", parts[0] + "." + enc(tampered) + "." + parts[2], VerificationFailure},
		{"flipped signature bit", string(flipped), VerificationFailure},
		{"signed by another key", signJWS(t, otherKey, map[string]any{"alg": "ES256", "x5c": c.x5c}, payload), VerificationFailure},
		{"DER signature", derSig, VerificationFailure},
		{"empty signature", parts[0] + "." + parts[1] + ".", VerificationFailure},
		{"alg none", header(map[string]any{"alg": "none", "x5c": c.x5c}) + "." + parts[1] + ".", VerificationFailure},
		{"alg none, original signature", header(map[string]any{"alg": "none", "x5c": c.x5c}) + "." + parts[1] + "." + parts[2], VerificationFailure},
		{"alg HS256", hs256, VerificationFailure},
		{"alg RS256", signJWS(t, c.leafKey, map[string]any{"alg": "RS256", "x5c": c.x5c}, payload), VerificationFailure},
		{"alg es256", signJWS(t, c.leafKey, map[string]any{"alg": "es256", "x5c": c.x5c}, payload), VerificationFailure},
		{"alg missing", signJWS(t, c.leafKey, map[string]any{"x5c": c.x5c}, payload), VerificationFailure},
		{"alg not a string", signJWS(t, c.leafKey, map[string]any{"alg": 256, "x5c": c.x5c}, payload), VerificationFailure},
		{"x5c missing", signJWS(t, c.leafKey, map[string]any{"alg": "ES256"}, payload), VerificationFailure},
		{"x5c empty", signJWS(t, c.leafKey, map[string]any{"alg": "ES256", "x5c": []string{}}, payload), VerificationFailure},
		{"x5c not an array", signJWS(t, c.leafKey, map[string]any{"alg": "ES256", "x5c": c.x5c[0]}, payload), VerificationFailure},
		{"X5C upper case", signJWS(t, c.leafKey, map[string]any{"alg": "ES256", "X5C": c.x5c}, payload), VerificationFailure},
		{"two certificates", signJWS(t, c.leafKey, map[string]any{"alg": "ES256", "x5c": c.x5c[:2]}, payload), InvalidChainLength},
		{"four certificates", signJWS(t, c.leafKey, map[string]any{"alg": "ES256", "x5c": append(append([]string{}, c.x5c...), c.x5c[2])}, payload), InvalidChainLength},
		{"x5c entry not a string", signJWS(t, c.leafKey, map[string]any{"alg": "ES256", "x5c": []any{1, c.x5c[1], c.x5c[2]}}, payload), InvalidCertificate},
		{"x5c entry base64url", signJWS(t, c.leafKey, map[string]any{"alg": "ES256", "x5c": []string{enc(c.leaf.Raw), c.x5c[1], c.x5c[2]}}, payload), InvalidCertificate},
		{"leaf without Apple OID", signJWS(t, c.leafKey, map[string]any{"alg": "ES256", "x5c": []string{b64(badOIDLeaf.Raw), c.x5c[1], c.x5c[2]}}, payload), VerificationFailure},
		{"intermediate without Apple OID", signJWS(t, c.leafKey, map[string]any{"alg": "ES256", "x5c": []string{b64(leafUnderBadInter.Raw), b64(badOIDInter.Raw), c.x5c[2]}}, payload), VerificationFailure},
		{"leaf and intermediate swapped", signJWS(t, c.leafKey, map[string]any{"alg": "ES256", "x5c": []string{c.x5c[1], c.x5c[0], c.x5c[2]}}, payload), VerificationFailure},
		{"signed by the intermediate itself", signJWS(t, c.interKey, map[string]any{"alg": "ES256", "x5c": []string{c.x5c[1], c.x5c[1], c.x5c[2]}}, payload), VerificationFailure},
		{"signed in 2042", c.sign(t, bytes.Replace(payload, []byte("1698148900000"), []byte("2280946846000"), 1)), VerificationFailure},
		{"truncated", good[:len(good)/2], VerificationFailure},
		{"truncated before signature", parts[0] + "." + parts[1], VerificationFailure},
		{"four parts", good + ".x", VerificationFailure},
		{"empty", "", VerificationFailure},
		{"payload not JSON", c.sign(t, []byte("not json")), VerificationFailure},
		{"payload null", c.sign(t, []byte("null")), VerificationFailure},
		{"payload array", c.sign(t, []byte(`[{"data":{}}]`)), VerificationFailure},
		{"payload wrong type", c.sign(t, []byte(`{"signedDate":"yesterday","data":{"bundleId":"com.example"}}`)), VerificationFailure},
		{"header not JSON", enc([]byte("{")) + "." + parts[1] + "." + parts[2], VerificationFailure},
		{"header not base64url", "!!" + parts[0] + "." + parts[1] + "." + parts[2], VerificationFailure},
		{"payload base64 with +/", parts[0] + "." + strings.NewReplacer("-", "+", "_", "/").Replace(parts[1]) + "x+/" + "." + parts[2], VerificationFailure},
		{"no identity", c.sign(t, []byte(`{"notificationType":"TEST","signedDate":1698148900000}`)), InvalidAppIdentifier},
	} {
		_, err := v.VerifyNotification(tc.jws)
		if StatusOf(err) != tc.want || err == nil {
			t.Errorf("%s: status %v (%v), want %v", tc.name, StatusOf(err), err, tc.want)
		}
	}

	// A chain under a root we do not trust: the default (Apple's G3).
	apple := newVerifierOrFatal(t, VerifierOptions{Environment: Sandbox, BundleID: "com.example"})
	_, err = apple.VerifyNotification(good)
	wantStatus(t, "test chain, Apple root", err, VerificationFailure)
	// Expired at the effective time (explicit).
	_, err = v.VerifyNotificationAt(good, time.Date(2042, 4, 12, 0, 0, 0, 0, time.UTC))
	wantStatus(t, "at 2042", err, VerificationFailure)
}

// TestIdentityChecks covers bundle, app Apple id and environment, and their
// order (identifier before environment).
func TestIdentityChecks(t *testing.T) {
	t.Parallel()
	c := loadTestChain(t)
	tx := c.sign(t, sandboxModel(t, "signedTransaction.json"))
	ri := c.sign(t, sandboxModel(t, "signedRenewalInfo.json"))
	n := c.sign(t, sandboxModel(t, "signedNotification.json"))
	prodPayload := bytes.ReplaceAll(sandboxModel(t, "signedNotification.json"), []byte(`"Sandbox"`), []byte(`"Production"`))
	prodN := c.sign(t, prodPayload)
	summary := c.sign(t, sandboxModel(t, "signedSummaryNotification.json"))
	appData := c.sign(t, sandboxModel(t, "signedRescindConsentNotification.json"))
	// data: null falls through to summary, as in Apple's verifier.
	nullData := c.sign(t, bytes.Replace(sandboxModel(t, "signedSummaryNotification.json"), []byte(`{`), []byte(`{"data":null,`), 1))

	sandbox := func(edit func(*VerifierOptions)) *Verifier { return newTestVerifier(t, c, edit) }
	prod := func(appID int64) *Verifier {
		return newTestVerifier(t, c, func(o *VerifierOptions) { o.Environment, o.AppAppleID = Production, appID })
	}
	otherBundle := func(o *VerifierOptions) { o.BundleID = "com.example.x" }

	for _, tc := range []struct {
		name string
		run  func() error
		want VerificationStatus
	}{
		{"transaction ok", func() error { _, err := sandbox(nil).VerifyTransaction(tx); return err }, VerificationOK},
		{"transaction other bundle", func() error { _, err := sandbox(otherBundle).VerifyTransaction(tx); return err }, InvalidAppIdentifier},
		{"transaction other environment", func() error { _, err := prod(41234).VerifyTransaction(tx); return err }, InvalidEnvironment},
		{"transaction other bundle and environment", func() error {
			v := newTestVerifier(t, c, func(o *VerifierOptions) { o.Environment, o.AppAppleID, o.BundleID = Production, 1, "com.x" })
			_, err := v.VerifyTransaction(tx)
			return err
		}, InvalidAppIdentifier},
		{"renewal info other bundle", func() error { _, err := sandbox(otherBundle).VerifyRenewalInfo(ri); return err }, VerificationOK},
		{"renewal info other environment", func() error { _, err := prod(41234).VerifyRenewalInfo(ri); return err }, InvalidEnvironment},
		{"notification other bundle", func() error { _, err := sandbox(otherBundle).VerifyNotification(n); return err }, InvalidAppIdentifier},
		{"notification other app id in Sandbox", func() error {
			_, err := sandbox(func(o *VerifierOptions) { o.AppAppleID = 999 }).VerifyNotification(n)
			return err
		}, VerificationOK},
		{"notification Production ok", func() error { _, err := prod(41234).VerifyNotification(prodN); return err }, VerificationOK},
		{"notification Production other app id", func() error { _, err := prod(999).VerifyNotification(prodN); return err }, InvalidAppIdentifier},
		{"notification Production other app id and environment", func() error { _, err := prod(999).VerifyNotification(n); return err }, InvalidAppIdentifier},
		{"notification Sandbox payload, Production verifier", func() error { _, err := prod(41234).VerifyNotification(n); return err }, InvalidEnvironment},
		{"summary other bundle", func() error { _, err := sandbox(otherBundle).VerifyNotification(summary); return err }, InvalidAppIdentifier},
		{"summary other environment", func() error { _, err := prod(41234).VerifyNotification(summary); return err }, InvalidEnvironment},
		{"appData ok", func() error { _, err := sandbox(nil).VerifyNotification(appData); return err }, VerificationOK},
		{"appData other bundle", func() error { _, err := sandbox(otherBundle).VerifyNotification(appData); return err }, InvalidAppIdentifier},
		{"data null falls to summary", func() error { _, err := sandbox(nil).VerifyNotification(nullData); return err }, VerificationOK},
	} {
		err := tc.run()
		if StatusOf(err) != tc.want {
			t.Errorf("%s: status %v (%v), want %v", tc.name, StatusOf(err), err, tc.want)
		}
	}
}

// TestChainCacheUse shows a warm verification uses the cache (it no longer
// needs the roots) yet still checks the signature and the effective time,
// and that a disabled cache is not used.
func TestChainCacheUse(t *testing.T) {
	t.Parallel()
	c := loadTestChain(t)
	jws := c.sign(t, sandboxModel(t, "signedNotification.json"))
	forged := signJWS(t, c.caKey, map[string]any{"alg": "ES256", "x5c": c.x5c}, sandboxModel(t, "signedNotification.json"))

	v := newTestVerifier(t, c, nil)
	if _, err := v.VerifyNotification(jws); err != nil {
		t.Fatal(err)
	}
	if n := v.shared.cache.len(); n != 1 {
		t.Fatalf("cache holds %d chains, want 1", n)
	}
	v.shared.roots = nil // a miss would now be INVALID_CERTIFICATE
	if _, err := v.VerifyNotification(jws); err != nil {
		t.Fatalf("warm verification did not use the cache: %v", err)
	}
	sibling := v.WithEnvironment(Production)
	if _, err := sibling.VerifyNotification(jws); StatusOf(err) != InvalidEnvironment {
		t.Fatalf("sibling does not share the cache: %v", err)
	}
	_, err := v.VerifyNotification(forged)
	wantStatus(t, "forged signature, cached chain", err, VerificationFailure)
	// Outside the cached validity window the cache is not used, so the
	// rootless verifier fails to rebuild the chain.
	_, err = v.VerifyNotificationAt(jws, time.Date(2042, 1, 1, 0, 0, 0, 0, time.UTC))
	wantStatus(t, "cached chain, effective time after expiry", err, InvalidCertificate)

	cold := newTestVerifier(t, c, func(o *VerifierOptions) { o.ChainCacheSize = -1 })
	if _, err := cold.VerifyNotification(jws); err != nil {
		t.Fatal(err)
	}
	cold.shared.roots = nil
	_, err = cold.VerifyNotification(jws)
	wantStatus(t, "disabled cache", err, InvalidCertificate)
}

// TestConcurrentVerification runs verifications of several chains from
// many goroutines through a cache smaller than the number of chains (run
// with -race).
func TestConcurrentVerification(t *testing.T) {
	t.Parallel()
	c := loadTestChain(t)
	v := newTestVerifier(t, c, func(o *VerifierOptions) { o.ChainCacheSize = 2 })
	payload := sandboxModel(t, "signedNotification.json")
	// Four chains (a fresh leaf each) through a two-entry cache.
	var jwss []string
	for i := range 4 {
		leaf, key := mintLeaf(t, c, fmt.Sprintf("leaf %d", i), "")
		jwss = append(jwss, signJWS(t, key, map[string]any{"alg": "ES256", "x5c": []string{b64(leaf.Raw), c.x5c[1], c.x5c[2]}}, payload))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				if _, err := v.VerifyNotification(jwss[(g+i)%len(jwss)]); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := v.shared.cache.len(); n > 2 {
		t.Errorf("cache grew to %d entries, bound is 2", n)
	}
}

// TestVerifyNotificationDeep verifies a notification whose data carries
// real signed transaction and renewal info.
func TestVerifyNotificationDeep(t *testing.T) {
	t.Parallel()
	c := loadTestChain(t)
	v := newTestVerifier(t, c, nil)
	jws := realisticNotification(t, c, c.sign(t, sandboxModel(t, "signedTransaction.json")), c.sign(t, sandboxModel(t, "signedRenewalInfo.json")))

	shallow, err := v.VerifyNotification(jws)
	if err != nil {
		t.Fatal(err)
	}
	deep, err := v.VerifyNotificationDeep(jws)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(deep.Payload, shallow) {
		t.Errorf("deep payload %+v differs from %+v", deep.Payload, shallow)
	}
	if deep.Transaction == nil || deep.Transaction.TransactionID != "23456" || deep.RenewalInfo == nil || deep.RenewalInfo.AutoRenewProductID != "com.example.product.2" {
		t.Errorf("inner fields %+v %+v", deep.Transaction, deep.RenewalInfo)
	}

	// A forged inner transaction passes the shallow check only.
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	forgedTx := signJWS(t, otherKey, map[string]any{"alg": "ES256", "x5c": c.x5c}, sandboxModel(t, "signedTransaction.json"))
	bad := realisticNotification(t, c, forgedTx, c.sign(t, sandboxModel(t, "signedRenewalInfo.json")))
	if _, err := v.VerifyNotification(bad); err != nil {
		t.Fatalf("shallow verification looked inside: %v", err)
	}
	_, err = v.VerifyNotificationDeep(bad)
	wantStatus(t, "forged inner transaction", err, VerificationFailure)
	if !strings.Contains(err.Error(), "data.signedTransactionInfo") {
		t.Errorf("error %q does not name the inner field", err)
	}
	// Inner renewal info of another environment.
	prodRenewal := c.sign(t, bytes.ReplaceAll(sandboxModel(t, "signedRenewalInfo.json"), []byte(`"Sandbox"`), []byte(`"Production"`)))
	_, err = v.VerifyNotificationDeep(realisticNotification(t, c, c.sign(t, sandboxModel(t, "signedTransaction.json")), prodRenewal))
	wantStatus(t, "inner renewal info environment", err, InvalidEnvironment)
	if !strings.Contains(err.Error(), "data.signedRenewalInfo") {
		t.Errorf("error %q does not name the inner field", err)
	}
	// Without data there is nothing inside to verify.
	summary, err := v.VerifyNotificationDeep(c.sign(t, sandboxModel(t, "signedSummaryNotification.json")))
	if err != nil || summary.Transaction != nil || summary.RenewalInfo != nil {
		t.Errorf("summary: %+v, %v", summary, err)
	}
}

// TestVerifyNotificationNested: a notification verified before (then
// stored) and decoded again unverified is finished by
// VerifyNotificationNested with VerifyNotificationDeep's result and inner
// checks, and its identity checks against the verifier as configured now;
// the outer signature is the one thing it leaves to its caller.
func TestVerifyNotificationNested(t *testing.T) {
	t.Parallel()
	c := loadTestChain(t)
	v := newTestVerifier(t, c, nil)
	tx, ri := c.sign(t, sandboxModel(t, "signedTransaction.json")), c.sign(t, sandboxModel(t, "signedRenewalInfo.json"))
	nested := func(v *Verifier, signed string) (*VerifiedNotification, error) {
		t.Helper()
		n, err := PeekNotification(signed)
		if err != nil {
			t.Fatalf("peek: %v", err)
		}
		return v.VerifyNotificationNested(n)
	}

	jws := realisticNotification(t, c, tx, ri)
	deep, err := v.VerifyNotificationDeep(jws)
	if err != nil {
		t.Fatal(err)
	}
	got, err := nested(v, jws)
	if err != nil || !reflect.DeepEqual(got, deep) {
		t.Fatalf("nested %+v, %v; deep %+v", got, err, deep)
	}
	summary, err := nested(v, c.sign(t, sandboxModel(t, "signedSummaryNotification.json")))
	if err != nil || summary.Payload.Summary == nil || summary.Transaction != nil || summary.RenewalInfo != nil {
		t.Errorf("summary: %+v, %v", summary, err)
	}

	// Nested JWS are verified in full: a forged transaction, renewal info
	// of another environment.
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	forgedTx := signJWS(t, otherKey, map[string]any{"alg": "ES256", "x5c": c.x5c}, sandboxModel(t, "signedTransaction.json"))
	_, err = nested(v, realisticNotification(t, c, forgedTx, ri))
	wantStatus(t, "forged nested transaction", err, VerificationFailure)
	if !strings.Contains(err.Error(), "data.signedTransactionInfo") {
		t.Errorf("error %q does not name the nested field", err)
	}
	prodRenewal := c.sign(t, bytes.ReplaceAll(sandboxModel(t, "signedRenewalInfo.json"), []byte(`"Sandbox"`), []byte(`"Production"`)))
	_, err = nested(v, realisticNotification(t, c, tx, prodRenewal))
	wantStatus(t, "nested renewal info environment", err, InvalidEnvironment)

	// The identity is checked against the verifier it is given (the
	// configuration may have changed since the signature was verified).
	_, err = nested(newTestVerifier(t, c, func(o *VerifierOptions) { o.BundleID = "com.example.x" }), jws)
	wantStatus(t, "other bundle", err, InvalidAppIdentifier)
	_, err = nested(v.WithEnvironment(Production), jws)
	wantStatus(t, "Sandbox payload, Production verifier", err, InvalidEnvironment)
	if _, err := nested(v.WithEnvironment("staging"), c.sign(t, sandboxModel(t, "signedSummaryNotification.json"))); err == nil ||
		!strings.Contains(err.Error(), "staging") {
		t.Errorf("unusable environment, nothing nested: %v", err)
	}
	if _, err := v.VerifyNotificationNested(nil); StatusOf(err) != VerificationFailure {
		t.Errorf("nil payload: %v", err)
	}

	// The outer signature is the caller's: a forged one is not looked at.
	forgedOuter := signJWS(t, otherKey, map[string]any{"alg": "ES256", "x5c": c.x5c}, sandboxModel(t, "signedSummaryNotification.json"))
	if _, err := v.VerifyNotification(forgedOuter); StatusOf(err) != VerificationFailure {
		t.Fatalf("forged outer signature verified: %v", err)
	}
	if _, err := nested(v, forgedOuter); err != nil {
		t.Errorf("VerifyNotificationNested looked at the outer signature: %v", err)
	}
	if _, err := PeekNotification("a.b.c"); StatusOf(err) != VerificationFailure {
		t.Errorf("peek garbage: %v", err)
	}
	// The payload segment already decoded (as the ledger stores it) peeks
	// the same.
	seg, err := base64.RawURLEncoding.DecodeString(strings.Split(jws, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	fromJWS, err1 := PeekNotification(jws)
	fromJSON, err2 := PeekNotificationPayload(" " + string(seg))
	if err1 != nil || err2 != nil || !reflect.DeepEqual(fromJWS, fromJSON) {
		t.Errorf("peeked payload %+v (%v) differs from %+v (%v)", fromJSON, err2, fromJWS, err1)
	}
	for _, bad := range []string{"", "  ", "[1]", "null", `{"data":1}`} {
		if _, err := PeekNotificationPayload(bad); StatusOf(err) != VerificationFailure {
			t.Errorf("peek payload %q: %v", bad, err)
		}
	}
}

// realisticNotification signs a SUBSCRIBED notification carrying the given
// inner JWS, like the ones Apple posts (~15 KB with real certificates).
func realisticNotification(t testing.TB, c *testChain, signedTx, signedRenewal string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(sandboxModel(t, "signedNotification.json"), &m); err != nil {
		t.Fatal(err)
	}
	data := m["data"].(map[string]any)
	data["signedTransactionInfo"] = signedTx
	data["signedRenewalInfo"] = signedRenewal
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return c.sign(t, b)
}

// TestWithEnvironmentAndPeek shows the webhook pattern: peek at the claimed
// environment, verify with the matching sibling.
func TestWithEnvironmentAndPeek(t *testing.T) {
	t.Parallel()
	c := loadTestChain(t)
	v := newTestVerifier(t, c, func(o *VerifierOptions) { o.Environment = Production })
	sb := v.WithEnvironment(Sandbox)
	if sb.Environment() != Sandbox || v.Environment() != Production {
		t.Fatal("WithEnvironment changed the original")
	}
	jws := c.sign(t, sandboxModel(t, "signedNotification.json"))
	env, err := PeekNotificationEnvironment(jws)
	if err != nil || env != Sandbox {
		t.Fatalf("peek: %q, %v", env, err)
	}
	if _, err := v.WithEnvironment(env).VerifyNotification(jws); err != nil {
		t.Fatal(err)
	}
	_, err = v.VerifyNotification(jws)
	wantStatus(t, "Production verifier", err, InvalidEnvironment)

	noAppID := newTestVerifier(t, c, func(o *VerifierOptions) { o.AppAppleID = 0 })
	if _, err := noAppID.WithEnvironment(Production).VerifyNotification(jws); err == nil || !strings.Contains(err.Error(), "AppAppleID") {
		t.Errorf("Production sibling without AppAppleID: %v", err)
	}
	if _, err := v.WithEnvironment("staging").VerifyTransaction(jws); err == nil || !strings.Contains(err.Error(), "staging") {
		t.Errorf("unknown environment: %v", err)
	}
	if _, err := PeekNotificationEnvironment("a.b.c"); StatusOf(err) != VerificationFailure {
		t.Errorf("peek garbage: %v", err)
	}
	if _, err := PeekNotificationEnvironment(c.sign(t, []byte(`{"notificationType":"TEST"}`))); err == nil {
		t.Error("peek without environment succeeded")
	}
}

// TestNewVerifierValidation checks the option errors name the field.
func TestNewVerifierValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		opts VerifierOptions
		want string
	}{
		{VerifierOptions{BundleID: "com.example"}, "Environment is empty"},
		{VerifierOptions{Environment: "sandbox", BundleID: "com.example"}, `Environment "sandbox"`},
		{VerifierOptions{Environment: Sandbox}, "BundleID is empty"},
		{VerifierOptions{Environment: Production, BundleID: "com.example"}, "AppAppleID is required"},
		{VerifierOptions{Environment: Sandbox, BundleID: "com.example", AppAppleID: -1}, "AppAppleID is negative"},
		{VerifierOptions{Environment: Sandbox, BundleID: "com.example", RootCertificates: [][]byte{[]byte("abc")}}, "RootCertificates"},
	} {
		_, err := NewVerifier(tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error mentioning %q", tc.opts, err, tc.want)
		}
	}
	_, err := NewVerifier(VerifierOptions{Environment: Sandbox, BundleID: "com.example", RootCertificates: [][]byte{[]byte("abc")}})
	wantStatus(t, "garbage root", err, InvalidCertificate)
	for _, env := range []Environment{Sandbox, Xcode, LocalTesting} {
		if _, err := NewVerifier(VerifierOptions{Environment: env, BundleID: "b"}); err != nil {
			t.Errorf("%s: %v", env, err)
		}
	}
}

// TestVerificationError checks Apple's status names and the error text.
func TestVerificationError(t *testing.T) {
	t.Parallel()
	names := []string{"OK", "VERIFICATION_FAILURE", "INVALID_APP_IDENTIFIER", "INVALID_CERTIFICATE",
		"INVALID_CHAIN_LENGTH", "INVALID_CHAIN", "INVALID_ENVIRONMENT", "RETRYABLE_VERIFICATION_FAILURE"}
	for i, n := range names {
		if got := VerificationStatus(i).String(); got != n {
			t.Errorf("status %d is %q, want %q", i, got, n)
		}
	}
	if got := VerificationStatus(8).String(); got != "VerificationStatus(8)" {
		t.Errorf("unknown status: %q", got)
	}
	cause := errors.New("boom")
	err := fmt.Errorf("wrapped: %w", verificationErr(RetryableVerificationFailure, "OCSP responder did not answer", cause))
	var ve *VerificationError
	if !errors.As(err, &ve) || !ve.Retryable() || !errors.Is(err, cause) {
		t.Fatalf("%v: not a retryable VerificationError wrapping its cause", err)
	}
	if want := "appstore: RETRYABLE_VERIFICATION_FAILURE: OCSP responder did not answer: boom"; ve.Error() != want {
		t.Errorf("Error() = %q, want %q", ve.Error(), want)
	}
	if verificationErr(VerificationFailure, "x", nil).Retryable() {
		t.Error("VERIFICATION_FAILURE is retryable")
	}
	if StatusOf(nil) != VerificationOK || StatusOf(cause) != VerificationFailure || StatusOf(err) != RetryableVerificationFailure {
		t.Error("StatusOf")
	}
}

// TestFastDecoderKeys keeps the fast notification decoder's key lists in
// step with the JSON tags of the payload types in payload.go: a field added
// there must be added to the fast decoder too.
func TestFastDecoderKeys(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		typ  any
		keys []string
	}{
		{NotificationPayload{}, notificationKeys},
		{NotificationData{}, notificationDataKeys},
		{NotificationSummary{}, notificationSummaryKeys},
		{ExternalPurchaseToken{}, externalPurchaseTokenKeys},
		{AppData{}, appDataKeys},
	} {
		rt := reflect.TypeOf(tc.typ)
		var tags []string
		for f := range rt.Fields() {
			tags = append(tags, strings.Split(f.Tag.Get("json"), ",")[0])
		}
		if !reflect.DeepEqual(tags, tc.keys) {
			t.Errorf("%s: JSON fields %v, fast decoder knows %v", rt.Name(), tags, tc.keys)
		}
	}
}

// TestFastDecoderMatchesEncodingJSON decodes the vectors' payloads and
// tricky variants both ways; when the fast path accepts, it must agree
// with encoding/json.
func TestFastDecoderMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	inputs := []string{
		`{"notificationType":"TEST"}`,
		` { "data" : { "appAppleId" : 12.9e0 , "status" : -0 } , "signedDate" : 1.5 } `,
		`{"data":{"bundleId":"a\"b"}}`,
		`{"Data":{"bundleId":"x"}}`,
		`{"data":{"bundleId":"x"},"data":{"environment":"Sandbox"}}`,
		`{"summary":{"storefrontCountryCodes":[]}}`,
		`{"summary":{"storefrontCountryCodes":null}}`,
		`{"unknown":{"a":[1,{"b":"}"}]},"version":"2"}`,
		`{"unknown":[}`,
		`{"data":null}`,
		`{"signedDate":"123"}`,
		`{"notificationType":"caf\u00e9"}`,
		`{"notificationType":"café"}`,
		`{"data":{"appAppleId":01}}`,
		`{"data":{}} x`,
		`{"externalPurchaseToken":{"tokenCreationDate":1e400}}`,
	}
	for _, name := range []string{"signedNotification.json", "signedSummaryNotification.json", "signedExternalPurchaseTokenNotification.json",
		"signedRescindConsentNotification.json", "signedConsumptionRequestNotification.json"} {
		inputs = append(inputs, string(applevectors.Bytes(t, "tests/resources/models/"+name)))
	}
	fastAccepted := 0
	for _, in := range inputs {
		if compareDecoders(t, []byte(in)) {
			fastAccepted++
		}
	}
	if fastAccepted < 8 {
		t.Errorf("fast path accepted only %d of %d inputs", fastAccepted, len(inputs))
	}
}

// compareDecoders fails t if the fast decoder accepts b with a result
// other than encoding/json's; it reports whether the fast path accepted.
func compareDecoders(t testing.TB, b []byte) bool {
	var fast NotificationPayload
	if !decodeNotificationFast(string(b), &fast) {
		return false
	}
	var slow NotificationPayload
	if err := json.Unmarshal(b, &slow); err != nil {
		t.Fatalf("fast path accepted %q, encoding/json rejects it: %v", b, err)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("decoders differ on %q:\nfast %+v\nslow %+v", b, fast, slow)
	}
	return true
}

// TestHasSpecialByte checks the word-at-a-time scan of the fast JSON reader
// against the byte-wise rule, for every byte value in every position.
func TestHasSpecialByte(t *testing.T) {
	t.Parallel()
	for pos := range 8 {
		for b := range 256 {
			w := uint64(0x6161616161616161) &^ (0xff << (8 * pos)) // "aaaaaaaa"
			w |= uint64(b) << (8 * pos)
			want := b == '"' || b == '\\' || b < 0x20 || b >= 0x80
			if got := hasSpecialByte(w); got != want {
				t.Errorf("byte %#x at %d: %v, want %v", b, pos, got, want)
			}
		}
	}
	r := jsonReader{s: `"` + strings.Repeat("abcdefgh", 5) + `\n"`}
	if _, ok := r.plain(); ok {
		t.Error("plain accepted an escape after a long run of plain bytes")
	}
}
