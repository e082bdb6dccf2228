package sim

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// Files are the paths WriteFiles wrote.
type Files struct {
	// RootCertPath is the CA root (PEM): APPSTORE_ROOT_CERTS.
	RootCertPath string
	// PrivateKeyPath is the API key (.p8, mode 0600):
	// APPSTORE_PRIVATE_KEY_FILE.
	PrivateKeyPath string
}

// WriteFiles writes the root certificate (sim-root.pem) and the API key
// (AuthKey_<KeyID>.p8, like App Store Connect names it) into dir, creating
// it if needed, and remembers the paths for Env.
func (s *Simulator) WriteFiles(dir string) (Files, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Files{}, fmt.Errorf("sim: WriteFiles: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Files{}, fmt.Errorf("sim: WriteFiles: %w", err)
	}
	f := Files{
		RootCertPath:   filepath.Join(abs, "sim-root.pem"),
		PrivateKeyPath: filepath.Join(abs, "AuthKey_"+s.opts.KeyID+".p8"),
	}
	if err := os.WriteFile(f.RootCertPath, s.RootPEM(), 0o644); err != nil {
		return Files{}, fmt.Errorf("sim: WriteFiles: %w", err)
	}
	if err := os.WriteFile(f.PrivateKeyPath, s.auth.keyPEM, 0o600); err != nil {
		return Files{}, fmt.Errorf("sim: WriteFiles: %w", err)
	}
	s.mu.Lock()
	s.files = f
	s.mu.Unlock()
	return f, nil
}

// Env returns the configuration storesync needs to talk to this simulator,
// as APPSTORE_* variables. APPSTORE_BASE_URL is the production base URL;
// APPSTORE_SANDBOX_BASE_URL the sandbox one (BaseURL+"/sandbox"). The file
// variables (APPSTORE_PRIVATE_KEY_FILE, APPSTORE_ROOT_CERTS) appear after
// WriteFiles, the URLs after Start.
func (s *Simulator) Env() map[string]string {
	s.mu.Lock()
	files, base := s.files, s.baseURL
	s.mu.Unlock()
	env := map[string]string{
		"APPSTORE_ENVIRONMENT":      "production",
		"APPSTORE_KEY_ID":           s.opts.KeyID,
		"APPSTORE_ISSUER_ID":        s.opts.IssuerID,
		"APPSTORE_BUNDLE_ID":        s.opts.BundleID,
		"APPSTORE_APP_APPLE_ID":     strconv.FormatInt(s.opts.AppAppleID, 10),
		"APPSTORE_SANDBOX_FALLBACK": "true",
	}
	if base != "" {
		env["APPSTORE_BASE_URL"] = base
		env["APPSTORE_SANDBOX_BASE_URL"] = base + "/sandbox"
	}
	if files.PrivateKeyPath != "" {
		env["APPSTORE_PRIVATE_KEY_FILE"] = files.PrivateKeyPath
		env["APPSTORE_ROOT_CERTS"] = files.RootCertPath
	}
	return env
}
