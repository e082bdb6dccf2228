// Package vectors finds Apple's App Store Server Library test vectors
// (../shared/vectors beside the repository) for the tests of every
// package. It imports nothing of storesync's, so appstore's own tests can
// use it too.
package vectors

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Rel is where the vectors live, relative to a directory above the
// repository.
const Rel = "shared/vectors/apple-app-store-server-library"

// Dir returns the directory of the vectors: $STORESYNC_VECTORS if set (it
// must be a directory), else the first Rel found walking up from the
// working directory. The error says how to provide them.
func Dir() (string, error) {
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
		cand := filepath.Join(d, filepath.FromSlash(Rel))
		if fi, err := os.Stat(cand); err == nil && fi.IsDir() {
			return cand, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("test vectors not found: no " + Rel + " above " + wd +
				" (clone the shared directory beside the repository, or set STORESYNC_VECTORS to the vectors directory)")
		}
	}
}

// Path returns the path of the vector file at slash-separated rel (say
// "tests/resources/mock_signed_data/testNotification"). The vectors are
// required: when they are missing the test fails, never skips.
func Path(t testing.TB, rel string) string {
	t.Helper()
	dir, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, filepath.FromSlash(rel))
}

// Bytes returns the content of the vector file at rel, failing the test
// when it cannot be read.
func Bytes(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(Path(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Text is Bytes as a string.
func Text(t testing.TB, rel string) string {
	t.Helper()
	return string(Bytes(t, rel))
}
