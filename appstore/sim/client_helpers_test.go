package sim

import (
	"testing"

	"github.com/storesync/storesync/appstore"
)

// newClient returns storesync's own App Store client pointed at s in env,
// with sandbox fallback in production, as storesync configures it.
func newClient(t testing.TB, s *Simulator, env appstore.Environment) *appstore.Client {
	t.Helper()
	key, err := appstore.ParsePrivateKey(s.PrivateKeyPEM())
	if err != nil {
		t.Fatal(err)
	}
	base := s.BaseURL()
	if env == appstore.Sandbox {
		base = s.SandboxURL()
	}
	c, err := appstore.NewClient(appstore.ClientOptions{
		KeyID: s.KeyID(), IssuerID: s.IssuerID(), BundleID: s.BundleID(), PrivateKey: key,
		Environment: env, BaseURL: base, SandboxBaseURL: s.SandboxURL(), SandboxFallback: env == appstore.Production,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newVerifier returns storesync's verifier for env trusting only the
// simulator's root.
func newVerifier(t testing.TB, s *Simulator, env appstore.Environment) *appstore.Verifier {
	t.Helper()
	v, err := appstore.NewVerifier(appstore.VerifierOptions{
		RootCertificates: [][]byte{s.RootDER()}, Environment: env, BundleID: s.BundleID(), AppAppleID: s.AppAppleID(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}
