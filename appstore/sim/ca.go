package sim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// Apple's marker extensions, which verifiers require (docs/appstore-api.md §5.2).
var (
	// OIDAppleIntermediate marks Apple's WWDR intermediate CA.
	OIDAppleIntermediate = asn1.ObjectIdentifier{1, 2, 840, 113635, 100, 6, 2, 1}
	// OIDAppleLeaf marks the App Store receipt-signing leaf.
	OIDAppleLeaf = asn1.ObjectIdentifier{1, 2, 840, 113635, 100, 6, 11, 1}
)

// CA validity: wide enough for any simulated clock Options accepts, and for
// verifiers that check the chain at wall time.
var (
	caNotBefore = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	caNotAfter  = time.Date(2045, 1, 1, 0, 0, 0, 0, time.UTC)
)

// asn1Null is the DER encoding of ASN.1 NULL, the value Apple gives its
// marker extensions.
var asn1Null = []byte{0x05, 0x00}

// CA is the simulator's three-certificate P-256 chain, shaped like Apple's:
// a self-signed root, an intermediate CA (path length 0, marker 6.2.1) and a
// receipt-signing leaf (marker 6.11.1) whose key signs every JWS.
//
// A CA is safe for concurrent use.
type CA struct {
	Root, Intermediate, Leaf *x509.Certificate

	rootKey, intermediateKey, leafKey *ecdsa.PrivateKey
	header                            string // base64url JWS header with x5c
}

// NewCA generates a fresh chain.
func NewCA() (*CA, error) {
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	interKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	rootTmpl := &x509.Certificate{
		Subject: pkix.Name{
			CommonName:         "Simulated Apple Root CA - G3",
			OrganizationalUnit: []string{"Apple Certification Authority (simulated)"},
			Organization:       []string{"storesync simulator"},
			Country:            []string{"US"},
		},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	interTmpl := &x509.Certificate{
		Subject: pkix.Name{
			CommonName:         "Simulated Apple Worldwide Developer Relations Certification Authority",
			OrganizationalUnit: []string{"G6"},
			Organization:       []string{"storesync simulator"},
			Country:            []string{"US"},
		},
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		ExtraExtensions:       []pkix.Extension{{Id: OIDAppleIntermediate, Value: asn1Null}},
	}
	leafTmpl := &x509.Certificate{
		Subject: pkix.Name{
			CommonName:         "Simulated Prod ECC Mac App Store and iTunes Store Receipt Signing",
			OrganizationalUnit: []string{"Apple Worldwide Developer Relations (simulated)"},
			Organization:       []string{"storesync simulator"},
			Country:            []string{"US"},
		},
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtraExtensions:       []pkix.Extension{{Id: OIDAppleLeaf, Value: asn1Null}},
	}
	root, err := issue(rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	if err != nil {
		return nil, err
	}
	inter, err := issue(interTmpl, root, &interKey.PublicKey, rootKey)
	if err != nil {
		return nil, err
	}
	leaf, err := issue(leafTmpl, inter, &leafKey.PublicKey, interKey)
	if err != nil {
		return nil, err
	}
	return newCA(root, inter, leaf, rootKey, interKey, leafKey)
}

// issue signs tmpl with parent's key. Subject key ids are set on every
// certificate so strict verifiers (OpenSSL X509_STRICT) find the
// authority key id they want.
func issue(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial.Add(serial, big.NewInt(1))
	tmpl.NotBefore, tmpl.NotAfter = caNotBefore, caNotAfter
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		Key       asn1.BitString
	}
	if _, err := asn1.Unmarshal(pubDER, &spki); err != nil {
		return nil, err
	}
	skid := sha1.Sum(spki.Key.Bytes)
	tmpl.SubjectKeyId = skid[:]
	if tmpl != parent {
		tmpl.AuthorityKeyId = parent.SubjectKeyId
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func newCA(root, inter, leaf *x509.Certificate, rootKey, interKey, leafKey *ecdsa.PrivateKey) (*CA, error) {
	if !leaf.PublicKey.(*ecdsa.PublicKey).Equal(&leafKey.PublicKey) {
		return nil, errors.New("sim: CA leaf certificate does not match the leaf key")
	}
	if err := leaf.CheckSignatureFrom(inter); err != nil {
		return nil, fmt.Errorf("sim: CA leaf not issued by the intermediate: %w", err)
	}
	if err := inter.CheckSignatureFrom(root); err != nil {
		return nil, fmt.Errorf("sim: CA intermediate not issued by the root: %w", err)
	}
	hdr, err := json.Marshal(struct {
		Alg string   `json:"alg"`
		X5c []string `json:"x5c"`
	}{"ES256", []string{
		base64.StdEncoding.EncodeToString(leaf.Raw),
		base64.StdEncoding.EncodeToString(inter.Raw),
		base64.StdEncoding.EncodeToString(root.Raw),
	}})
	if err != nil {
		return nil, err
	}
	return &CA{
		Root: root, Intermediate: inter, Leaf: leaf,
		rootKey: rootKey, intermediateKey: interKey, leafKey: leafKey,
		header: base64.RawURLEncoding.EncodeToString(hdr),
	}, nil
}

// RootDER returns the root certificate in DER form.
func (c *CA) RootDER() []byte { return append([]byte(nil), c.Root.Raw...) }

// RootPEM returns the root certificate in PEM form: the file a verifier
// trusts instead of Apple Root CA G3 (APPSTORE_ROOT_CERTS).
func (c *CA) RootPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Root.Raw})
}

// Sign returns payload marshalled to JSON as a compact ES256 JWS with
// header {"alg":"ES256","x5c":[leaf,intermediate,root]}; the signature is
// raw r||s as JWS requires.
func (c *CA) Sign(payload any) (string, error) {
	body, err := json.Marshal(payload)
	if err != nil {
		return "", err
	}
	return c.SignJSON(body)
}

// SignJSON is Sign for an already encoded JSON payload.
func (c *CA) SignJSON(body []byte) (string, error) {
	n := len(c.header) + 1 + base64.RawURLEncoding.EncodedLen(len(body))
	buf := make([]byte, n, n+1+86)
	copy(buf, c.header)
	buf[len(c.header)] = '.'
	base64.RawURLEncoding.Encode(buf[len(c.header)+1:], body)
	sig, err := signES256(c.leafKey, buf)
	if err != nil {
		return "", err
	}
	buf = append(buf, '.')
	buf = base64.RawURLEncoding.AppendEncode(buf, sig)
	return string(buf), nil
}

// SignJWS returns payload (JSON) as a compact JWS with the given header,
// signed ES256 by key whatever the header claims. Tests use it to sign
// with keys and chains the CA does not hold: Apple's test vectors, a chain
// without Apple's markers, a forger's key.
func SignJWS(key *ecdsa.PrivateKey, header any, payload []byte) (string, error) {
	h, err := json.Marshal(header)
	if err != nil {
		return "", err
	}
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(payload)
	sig, err := signES256(key, []byte(input))
	if err != nil {
		return "", err
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// signES256 signs input as JWS ES256: SHA-256, then raw 32-byte r||s.
func signES256(key *ecdsa.PrivateKey, input []byte) ([]byte, error) {
	digest := sha256.Sum256(input)
	r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		return nil, err
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return sig, nil
}

// CA files written by Save and read by LoadCA.
const (
	caRootFile  = "sim-ca-root.pem"
	caInterFile = "sim-ca-intermediate.pem"
	caLeafFile  = "sim-ca-leaf.pem"
	caKeysFile  = "sim-ca-keys.pem"
)

// Save writes the chain and its keys to dir (keys with mode 0600), so a
// restarted simulator keeps the root a client already trusts.
func (c *CA) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, cert := range map[string]*x509.Certificate{caRootFile: c.Root, caInterFile: c.Intermediate, caLeafFile: c.Leaf} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644); err != nil {
			return err
		}
	}
	var keys []byte
	for _, k := range []*ecdsa.PrivateKey{c.rootKey, c.intermediateKey, c.leafKey} {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return err
		}
		keys = append(keys, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})...)
	}
	return os.WriteFile(filepath.Join(dir, caKeysFile), keys, 0o600)
}

// LoadCA reads a chain written by Save. It returns an error wrapping
// fs.ErrNotExist when dir holds no CA.
func LoadCA(dir string) (*CA, error) {
	var certs []*x509.Certificate
	for _, name := range []string{caRootFile, caInterFile, caLeafFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		blk, _ := pem.Decode(b)
		if blk == nil || blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("sim: %s: no PEM certificate", filepath.Join(dir, name))
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("sim: %s: %w", filepath.Join(dir, name), err)
		}
		certs = append(certs, cert)
	}
	b, err := os.ReadFile(filepath.Join(dir, caKeysFile))
	if err != nil {
		return nil, err
	}
	var keys []*ecdsa.PrivateKey
	for len(keys) < 3 {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("sim: %s: %w", filepath.Join(dir, caKeysFile), err)
		}
		ek, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("sim: %s: not an EC key", filepath.Join(dir, caKeysFile))
		}
		keys = append(keys, ek)
	}
	if len(keys) != 3 {
		return nil, fmt.Errorf("sim: %s: want 3 keys (root, intermediate, leaf), found %d", filepath.Join(dir, caKeysFile), len(keys))
	}
	return newCA(certs[0], certs[1], certs[2], keys[0], keys[1], keys[2])
}

// LoadOrCreateCA loads the CA saved in dir, or creates and saves a new one
// when dir holds none.
func LoadOrCreateCA(dir string) (*CA, error) {
	ca, err := LoadCA(dir)
	if err == nil {
		return ca, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if ca, err = NewCA(); err != nil {
		return nil, err
	}
	return ca, ca.Save(dir)
}
