package appstore

import (
	"bytes"
	_ "embed"
)

//go:embed AppleRootCA-G3.der
var appleRootCAG3 []byte

// AppleRootCAG3 returns (a copy of) the DER of Apple Root CA - G3 (P-384,
// valid 2014-04-30 to 2039-04-30, SHA-256
// 63343ABFB89A6A03EBB57E9B3F5FA7BE7C4F5C756F3017B3A8C488C3653E9179), the root
// that App Store signed data chains to and the default trusted root of a
// Verifier. It is public (https://www.apple.com/certificateauthority/AppleRootCA-G3.cer);
// it is embedded so verification needs no configuration, and a test pins
// its hash.
func AppleRootCAG3() []byte { return bytes.Clone(appleRootCAG3) }
