// Package applevectors gives tests Apple's own App Store Server Library
// test vectors, embedded from testdata/ (Apple's MIT licence and their
// origin are in testdata/LICENSE and testdata/README.md). Embedding makes a
// missing fixture a build failure, never a skip, and lets every package's
// tests read the same files without knowing where the repository sits.
//
// Only tests import this package.
package applevectors

import (
	"embed"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"testing"
)

//go:embed testdata
var embedded embed.FS

// FS is the vectors' file tree, rooted where Apple's library tree starts
// (so "tests/resources/certs/testCA.der" names Apple's test root).
func FS() fs.FS {
	sub, err := fs.Sub(embedded, "testdata")
	if err != nil {
		panic(err) // the directive above guarantees testdata exists
	}
	return sub
}

// Read returns the content of the vector at slash-separated rel, or an
// error naming it. Examples use it; tests use Bytes.
func Read(rel string) ([]byte, error) {
	return fs.ReadFile(FS(), rel)
}

// Bytes returns the content of the vector at rel (say
// "tests/resources/mock_signed_data/testNotification"), failing the test
// when there is no such vector.
func Bytes(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := Read(rel)
	if err != nil {
		t.Fatalf("Apple test vector %s: %v (the vectors live in appstore/applevectors/testdata)", rel, err)
	}
	return b
}

// Text is Bytes as a string.
func Text(t testing.TB, rel string) string {
	t.Helper()
	return string(Bytes(t, rel))
}

// Names lists the file names in the vector directory dir, in order,
// failing the test when dir is missing or empty.
func Names(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := fs.ReadDir(FS(), dir)
	if err != nil || len(entries) == 0 {
		t.Fatalf("Apple test vector directory %s: missing or empty (%v)", dir, err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names
}

// Path writes the vector at rel into the test's temporary directory and
// returns that file's path, for code under test that takes a file name
// (command-line flags). The file is removed when the test ends.
func Path(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), path.Base(rel))
	if err := os.WriteFile(p, Bytes(t, rel), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
