package appstore

import (
	"errors"
	"fmt"

	"github.com/storesync/storesync/appstore/applevectors"
)

// exampleVector reads one of Apple's test vectors (embedded by
// applevectors from its testdata).
func exampleVector(rel string) []byte {
	b, err := applevectors.Read(rel)
	if err != nil {
		panic(err)
	}
	return b
}

// A verifier for one app and environment. In production RootCertificates
// is left empty (the embedded Apple Root CA - G3); Apple's test payload is
// signed under its test CA.
func ExampleVerifier_VerifyNotification() {
	v, err := NewVerifier(VerifierOptions{
		RootCertificates: [][]byte{exampleVector("tests/resources/certs/testCA.der")},
		Environment:      Sandbox,
		BundleID:         "com.example",
		AppAppleID:       1234,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	n, err := v.VerifyNotification(string(exampleVector("tests/resources/mock_signed_data/testNotification")))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(n.NotificationType, n.NotificationUUID, n.Data.Environment)
	// Output: TEST 9ad56bd2-0bc6-42e0-af24-fd996d87a1e6 Sandbox
}

// A webhook receives Production and Sandbox notifications at one URL: peek
// at the (untrusted) environment to choose the verifier, which then checks
// it for real.
func ExamplePeekNotificationEnvironment() {
	production, err := NewVerifier(VerifierOptions{
		RootCertificates: [][]byte{exampleVector("tests/resources/certs/testCA.der")},
		Environment:      Production,
		BundleID:         "com.example",
		AppAppleID:       1234,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	signedPayload := string(exampleVector("tests/resources/mock_signed_data/testNotification"))

	env, err := PeekNotificationEnvironment(signedPayload)
	if err != nil || (env != Production && env != Sandbox) {
		fmt.Println("reject:", env, err)
		return
	}
	n, err := production.WithEnvironment(env).VerifyNotification(signedPayload)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(env, n.NotificationType)
	// Output: Sandbox TEST
}

// Telling a bad payload (reject it) from an online check that could not be
// completed (answer 5xx so Apple retries).
func ExampleVerificationError() {
	v, err := NewVerifier(VerifierOptions{
		RootCertificates: [][]byte{exampleVector("tests/resources/certs/testCA.der")},
		Environment:      Sandbox,
		BundleID:         "com.example.other",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = v.VerifyNotification(string(exampleVector("tests/resources/mock_signed_data/testNotification")))
	var ve *VerificationError
	if errors.As(err, &ve) {
		fmt.Println(ve.Status, ve.Retryable())
		fmt.Println(ve)
	}
	// Output:
	// INVALID_APP_IDENTIFIER false
	// appstore: INVALID_APP_IDENTIFIER: notification bundleId "com.example", verifier wants "com.example.other"
}
