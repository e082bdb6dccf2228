package appstore

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// ParsePrivateKey parses the In-App Purchase key App Store Connect hands out
// as a .p8 file: a PEM "PRIVATE KEY" block holding a PKCS#8 EC P-256 key.
//
// For convenience it also accepts a SEC1 "EC PRIVATE KEY" block, leading and
// trailing text around the block (CRLF line ends included), and PEM text
// whose newlines were flattened to the two characters `\n`, which is what a
// key pasted into an environment variable often looks like.
//
// Errors say what is wrong and how to fix it but never contain any of the
// key's bytes.
func ParsePrivateKey(pemBytes []byte) (*ecdsa.PrivateKey, error) {
	if len(bytes.TrimSpace(pemBytes)) == 0 {
		return nil, errors.New("appstore: private key is empty: pass the contents of the .p8 file downloaded from App Store Connect")
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil && bytes.Contains(pemBytes, []byte(`\n`)) {
		block, _ = pem.Decode(bytes.ReplaceAll(pemBytes, []byte(`\n`), []byte("\n")))
	}
	if block == nil {
		return nil, errors.New("appstore: private key is not PEM: expected the .p8 file from App Store Connect, starting with -----BEGIN PRIVATE KEY-----")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("appstore: private key PEM block is %q: expected \"PRIVATE KEY\" (the .p8 file from App Store Connect)", block.Type)
	}
	if err != nil {
		// x509's messages describe the structure, never the key material.
		return nil, fmt.Errorf("appstore: private key does not parse as %s: %w", block.Type, err)
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("appstore: private key is a %T, not an EC key: App Store Server API keys are EC P-256 (.p8 from App Store Connect)", key)
	}
	if ec.Curve != elliptic.P256() {
		return nil, fmt.Errorf("appstore: private key uses curve %s: App Store Server API keys are EC P-256", ec.Curve.Params().Name)
	}
	return ec, nil
}
