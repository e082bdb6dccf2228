package appstore

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore/applevectors"
)

// TestVerifySignedDataVectors runs Apple's mock signed data through
// VerifySignedData with the settings `storesync verify` passes.
func TestVerifySignedDataVectors(t *testing.T) {
	t.Parallel()
	testCA := applevectors.Bytes(t, "tests/resources/certs/testCA.der")
	vector := func(rel string) string { return applevectors.Text(t, "tests/resources/"+rel) }
	notification := vector("mock_signed_data/testNotification")
	sandbox := VerifierOptions{RootCertificates: [][]byte{testCA}, BundleID: "com.example", Environment: Sandbox}
	with := func(edit func(*VerifierOptions)) VerifierOptions {
		o := sandbox
		edit(&o)
		return o
	}
	for _, tc := range []struct {
		name     string
		jws      string
		opts     SignedDataOptions
		status   VerificationStatus
		missing  string // MissingClaimError.Field wanted
		kind     PayloadKind
		claimed  []Claim
		field    string // a field of the payload, with want
		want     any
		errorHas string
	}{
		{name: "notification", jws: notification, opts: SignedDataOptions{Verifier: sandbox}, kind: PayloadNotification,
			field: "signedDate", want: json.Number("1681314324000")},
		{name: "Production verifier", jws: notification, kind: PayloadNotification, status: InvalidEnvironment,
			opts: SignedDataOptions{Verifier: with(func(o *VerifierOptions) { o.Environment, o.AppAppleID = Production, 1234 })}},
		{name: "Production verifier, other app id", jws: notification, kind: PayloadNotification, status: InvalidAppIdentifier, errorHas: "appAppleId 1234",
			opts: SignedDataOptions{Verifier: with(func(o *VerifierOptions) { o.Environment, o.AppAppleID = Production, 1235 })}},
		{name: "Production, app id from the claim", jws: notification, kind: PayloadNotification, status: InvalidEnvironment,
			claimed: []Claim{{"appAppleId", "1234"}},
			opts:    SignedDataOptions{Verifier: with(func(o *VerifierOptions) { o.Environment = Production })}},
		{name: "Apple's root does not trust the test chain", jws: notification, kind: PayloadNotification, status: VerificationFailure, errorHas: "trusted root",
			opts: SignedDataOptions{Verifier: with(func(o *VerifierOptions) { o.RootCertificates = nil })}},
		{name: "claims as defaults", jws: notification, kind: PayloadNotification,
			claimed: []Claim{{"environment", "Sandbox"}, {"bundleId", "com.example"}},
			opts:    SignedDataOptions{Verifier: VerifierOptions{RootCertificates: [][]byte{testCA}}}, field: "notificationType", want: "TEST"},
		{name: "no environment claimed", jws: vector("mock_signed_data/wrongBundleId"), kind: PayloadNotification, missing: "environment",
			opts: SignedDataOptions{Verifier: VerifierOptions{RootCertificates: [][]byte{testCA}}}},
		{name: "wrong bundle", jws: vector("mock_signed_data/wrongBundleId"), kind: PayloadNotification, status: InvalidAppIdentifier, errorHas: "com.example.wrong",
			opts: SignedDataOptions{Verifier: sandbox}},
		{name: "no bundle claimed", jws: vector("mock_signed_data/renewalInfo"), kind: PayloadTransaction, missing: "bundleId",
			claimed: []Claim{{"environment", "Sandbox"}},
			opts:    SignedDataOptions{Kind: PayloadTransaction, Verifier: VerifierOptions{RootCertificates: [][]byte{testCA}}}},
		// Apple's minimal renewal info (environment and signedDate only)
		// is detected as renewal info: its bundle is not checked, its
		// environment is, as Apple's SignedDataVerifier does.
		{name: "bare renewal info detected", jws: vector("mock_signed_data/renewalInfo"), kind: PayloadRenewalInfo,
			opts: SignedDataOptions{Verifier: sandbox}, field: "signedDate", want: json.Number("1672956154000")},
		{name: "bare renewal info detected, claims as defaults", jws: vector("mock_signed_data/renewalInfo"), kind: PayloadRenewalInfo,
			claimed: []Claim{{"environment", "Sandbox"}},
			opts:    SignedDataOptions{Verifier: VerifierOptions{RootCertificates: [][]byte{testCA}}}, field: "environment", want: "Sandbox"},
		{name: "bare renewal info, Production verifier", jws: vector("mock_signed_data/renewalInfo"), kind: PayloadRenewalInfo,
			status: InvalidEnvironment, errorHas: `INVALID_ENVIRONMENT: renewal info environment "Sandbox"`,
			opts: SignedDataOptions{Verifier: with(func(o *VerifierOptions) { o.Environment = Production })}},
		{name: "missing x5c", jws: vector("mock_signed_data/missingX5CHeaderClaim"), kind: PayloadNotification, status: VerificationFailure, errorHas: "x5c",
			opts: SignedDataOptions{Verifier: sandbox}},
		{name: "transaction", jws: vector("mock_signed_data/transactionInfo"), kind: PayloadTransaction, opts: SignedDataOptions{Verifier: sandbox},
			field: "bundleId", want: "com.example"},
		{name: "transaction at 2042", jws: vector("mock_signed_data/transactionInfo"), kind: PayloadTransaction, status: VerificationFailure, errorHas: "not valid at 2042",
			opts: SignedDataOptions{Verifier: sandbox, At: time.Date(2042, 4, 12, 20, 20, 46, 0, time.UTC)}},
		{name: "renewal info by kind, no bundle needed", jws: vector("mock_signed_data/renewalInfo"), kind: PayloadRenewalInfo,
			claimed: []Claim{{"environment", "Sandbox"}},
			opts:    SignedDataOptions{Kind: PayloadRenewalInfo, Verifier: VerifierOptions{RootCertificates: [][]byte{testCA}}}, field: "environment", want: "Sandbox"},
		{name: "too many parts", jws: "a.b.c.d", kind: PayloadNotification, status: VerificationFailure, opts: SignedDataOptions{Verifier: sandbox}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := VerifySignedData(tc.jws, tc.opts)
			if got == nil {
				t.Fatalf("nil result (err %v)", err)
			}
			if got.Kind != tc.kind || !reflect.DeepEqual(got.Claimed, tc.claimed) {
				t.Errorf("kind %v claimed %v, want %v %v", got.Kind, got.Claimed, tc.kind, tc.claimed)
			}
			var missing *MissingClaimError
			switch {
			case tc.missing != "":
				if !errors.As(err, &missing) || missing.Field != tc.missing {
					t.Fatalf("error %v, want a missing %s", err, tc.missing)
				}
			case tc.status != VerificationOK:
				wantStatus(t, tc.name, err, tc.status)
			case err != nil:
				t.Fatal(err)
			}
			if err != nil {
				if got.Payload != nil || got.Notification != nil || got.Transaction != nil || got.RenewalInfo != nil {
					t.Errorf("a payload despite %v", err)
				}
				if !strings.Contains(err.Error(), tc.errorHas) {
					t.Errorf("error %q lacks %q", err, tc.errorHas)
				}
				return
			}
			if v := got.Payload[tc.field]; v != tc.want {
				t.Errorf("%s = %#v, want %#v", tc.field, v, tc.want)
			}
			typed := map[PayloadKind]bool{PayloadNotification: got.Notification != nil, PayloadTransaction: got.Transaction != nil, PayloadRenewalInfo: got.RenewalInfo != nil}
			for k, set := range typed {
				if set != (k == got.Kind) {
					t.Errorf("typed payload of %v set: %v", k, set)
				}
			}
		})
	}
}

// Xcode payloads verify without a signature check, and say so.
func TestVerifySignedDataXcode(t *testing.T) {
	t.Parallel()
	tx := applevectors.Text(t, "tests/resources/xcode/xcode-signed-transaction")
	got, err := VerifySignedData(tx, SignedDataOptions{Verifier: VerifierOptions{Environment: Xcode, BundleID: "com.example.naturelab.backyardbirds.example"}})
	if err != nil {
		t.Fatal(err)
	}
	if !got.SignatureUnchecked || got.Environment != Xcode || got.Payload["purchaseDate"] != json.Number("1697679936049.7297") || got.Payload["transactionId"] != "0" {
		t.Fatalf("%+v", got)
	}
	renewal := applevectors.Text(t, "tests/resources/xcode/xcode-signed-renewal-info")
	got, err = VerifySignedData(renewal, SignedDataOptions{Verifier: VerifierOptions{Environment: Xcode}})
	if err != nil || got.Kind != PayloadRenewalInfo || got.RenewalInfo == nil || got.Payload["autoRenewProductId"] != "pass.premium" {
		t.Fatalf("%+v, %v", got, err)
	}
}

// A notification's inner signed fields are verified and shown decoded
// beside the raw strings; a forged inner field fails naming it.
func TestVerifySignedDataInnerFields(t *testing.T) {
	t.Parallel()
	c := loadTestChain(t)
	tx := c.sign(t, sandboxModel(t, "signedTransaction.json"))
	renewal := c.sign(t, sandboxModel(t, "signedRenewalInfo.json"))
	opts := SignedDataOptions{Verifier: VerifierOptions{RootCertificates: [][]byte{c.caDER}, BundleID: "com.example", Environment: Sandbox}}

	got, err := VerifySignedData(realisticNotification(t, c, tx, renewal), opts)
	if err != nil {
		t.Fatal(err)
	}
	data := got.Payload["data"].(map[string]any)
	txInfo, _ := data["transactionInfo"].(map[string]any)
	renewalInfo, _ := data["renewalInfo"].(map[string]any)
	if data["signedTransactionInfo"] != tx || data["signedRenewalInfo"] != renewal {
		t.Error("raw inner strings not kept")
	}
	if txInfo["transactionId"] != "23456" || txInfo["expiresDate"] != json.Number("1698149000000") {
		t.Errorf("transactionInfo %v", txInfo)
	}
	if renewalInfo["autoRenewProductId"] != "com.example.product.2" || renewalInfo["environment"] != "Sandbox" {
		t.Errorf("renewalInfo %v", renewalInfo)
	}
	if got.Payload["notificationType"] != "SUBSCRIBED" || got.Notification.Transaction.TransactionID != "23456" {
		t.Errorf("notification %v", got.Payload["notificationType"])
	}

	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	forged := signJWS(t, otherKey, map[string]any{"alg": "ES256", "x5c": c.x5c}, sandboxModel(t, "signedTransaction.json"))
	_, err = VerifySignedData(realisticNotification(t, c, forged, renewal), opts)
	wantStatus(t, "forged inner transaction", err, VerificationFailure)
	if !strings.Contains(err.Error(), "data.signedTransactionInfo") {
		t.Errorf("error %q does not name the inner field", err)
	}

	// Alone, each inner JWS is detected as what it is.
	if got, err := VerifySignedData(tx, opts); err != nil || got.Kind != PayloadTransaction || got.Payload["transactionId"] != "23456" {
		t.Fatalf("transaction: %+v, %v", got, err)
	}
	if got, err := VerifySignedData(renewal, opts); err != nil || got.Kind != PayloadRenewalInfo || got.Payload["autoRenewStatus"] != json.Number("1") {
		t.Fatalf("renewal info: %+v, %v", got, err)
	}
}
