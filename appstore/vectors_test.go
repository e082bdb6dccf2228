package appstore

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// vectorsRel is where Apple's test vectors live relative to a directory
// above the repository (../shared beside the repo in CI).
const vectorsRel = "shared/vectors/apple-app-store-server-library"

// vectorsDir returns the directory of Apple's App Store Server Library test
// vectors: $STORESYNC_VECTORS if set, else the first
// shared/vectors/apple-app-store-server-library found walking up from the
// working directory. The vectors are required: if they are missing the test
// fails (it never skips), saying how to provide them.
func vectorsDir(t testing.TB) string {
	t.Helper()
	dir, err := findVectorsDir()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// vectorPath joins slash-separated rel to vectorsDir.
func vectorPath(t testing.TB, rel string) string {
	t.Helper()
	return filepath.Join(vectorsDir(t), filepath.FromSlash(rel))
}

// vectorBytes returns the bytes of the vector file at slash-separated rel.
func vectorBytes(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(vectorPath(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// findVectorsDir is vectorsDir without a testing.TB, for examples.
func findVectorsDir() (string, error) {
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
	for d := wd; ; {
		cand := filepath.Join(d, filepath.FromSlash(vectorsRel))
		if fi, err := os.Stat(cand); err == nil && fi.IsDir() {
			return cand, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	return "", errors.New("test vectors not found: no " + vectorsRel + " above " + wd +
		" (clone the shared directory beside the repository, or set STORESYNC_VECTORS to the vectors directory)")
}
