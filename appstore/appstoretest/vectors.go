package appstoretest

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// VectorsRel is where Apple's App Store Server Library test vectors live,
// relative to a directory above the repository (../shared beside it).
const VectorsRel = "shared/vectors/apple-app-store-server-library"

// VectorText returns the text of the vector file at slash-separated rel
// (say "tests/resources/mock_signed_data/testNotification") under
// VectorsDir. The vectors are required: when they are missing the test
// fails, never skips, saying how to provide them.
func VectorText(t testing.TB, rel string) string {
	t.Helper()
	b, err := os.ReadFile(VectorPath(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// VectorPath returns the path of the vector file at slash-separated rel
// under VectorsDir, failing the test when the vectors are missing.
func VectorPath(t testing.TB, rel string) string {
	t.Helper()
	dir, err := VectorsDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, filepath.FromSlash(rel))
}

// VectorsDir returns the directory of Apple's test vectors:
// $STORESYNC_VECTORS if set (it must be a directory), else the first
// VectorsRel found walking up from the working directory.
func VectorsDir() (string, error) {
	if dir := os.Getenv("STORESYNC_VECTORS"); dir != "" {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return "", errors.New("STORESYNC_VECTORS=" + dir + " is not a directory holding Apple's test vectors")
		}
		return dir, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		cand := filepath.Join(d, filepath.FromSlash(VectorsRel))
		if fi, err := os.Stat(cand); err == nil && fi.IsDir() {
			return cand, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("test vectors not found: no " + VectorsRel + " above " + wd +
				" (clone the shared directory beside the repository, or set STORESYNC_VECTORS to the vectors directory)")
		}
	}
}
