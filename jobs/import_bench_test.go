package jobs

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

// BenchmarkImporterEnqueue measures the Importer alone: b.N generated CSV
// rows (token and customer id included) stored as import rows with their
// jobs, in rows per second.
func BenchmarkImporterEnqueue(b *testing.B) {
	_, pool := migrationstest.NewDatabase(b)
	deps := &Deps{Ledger: ledger.New(pool)}
	client, err := NewRiverClient(deps, ClientOptions{})
	if err != nil {
		b.Fatal(err)
	}
	run, err := deps.Ledger.CreateImportRun(context.Background(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	im, err := NewImporter(ImporterOptions{Ledger: deps.Ledger, River: client})
	if err != nil {
		b.Fatal(err)
	}
	pr, pw := io.Pipe()
	go func() { _ = pw.CloseWithError(writeBenchCSV(pw, b.N)) }()
	b.ResetTimer()
	start := time.Now()
	counts, err := im.Import(context.Background(), run, pr)
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if counts.Enqueued != int64(b.N) {
		b.Fatalf("enqueued %d of %d", counts.Enqueued, b.N)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "rows/s")
}

// writeBenchCSV writes an import file of n distinct rows.
func writeBenchCSV(w io.Writer, n int) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	fmt.Fprintln(bw, "original_transaction_id,app_account_token,customer_id")
	for i := range n {
		fmt.Fprintf(bw, "%d,%08x-0000-4000-8000-%012x,customer-%d\n", 3_000_000_000_000_000+i, i, i, i)
	}
	return bw.Flush()
}

// BenchmarkImportCommandMillionRows is the measurement: the
// storesync binary importing a generated 1,000,000-row CSV into a fresh
// database, run under /usr/bin/time -v for its peak RSS. Goal: at least
// 40,000 rows/s with a peak RSS of at most 150 MiB. Run it with
// `make bench-import`.
func BenchmarkImportCommandMillionRows(b *testing.B) {
	const rows = 1_000_000
	bin := buildStoresync(b)
	file := filepath.Join(b.TempDir(), "subscribers.csv")
	f, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	if err := writeBenchCSV(f, rows); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	for range b.N {
		env := []string{"DATABASE_URL=" + migrationstest.NewDatabaseURL(b)}
		cmd := exec.Command("/usr/bin/time", "-v", bin, "import", file)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("storesync import: %v\n%s", err, out)
		}
		rate := matchFloat(b, out, `\(([\d,]+) rows/s\)`)
		rssKiB := matchFloat(b, out, `Maximum resident set size \(kbytes\): (\d+)`)
		if !strings.Contains(string(out), "1,000,000 enqueued") {
			b.Fatalf("not every row was enqueued:\n%s", out)
		}
		b.ReportMetric(rate, "rows/s")
		b.ReportMetric(rssKiB/1024, "peak-RSS-MiB")
	}
}

func matchFloat(b *testing.B, out []byte, pattern string) float64 {
	b.Helper()
	m := regexp.MustCompile(pattern).FindSubmatch(out)
	if m == nil {
		b.Fatalf("no %s in:\n%s", pattern, out)
	}
	v, err := strconv.ParseFloat(strings.ReplaceAll(string(m[1]), ",", ""), 64)
	if err != nil {
		b.Fatal(err)
	}
	return v
}

var (
	storesyncOnce sync.Once
	storesyncBin  string
	storesyncErr  error
)

// buildStoresync builds the storesync binary once per test binary.
func buildStoresync(b testing.TB) string {
	b.Helper()
	storesyncOnce.Do(func() {
		dir, err := os.MkdirTemp("", "storesync-bench-")
		if err != nil {
			storesyncErr = err
			return
		}
		storesyncBin = filepath.Join(dir, "storesync")
		out, err := exec.Command("go", "build", "-o", storesyncBin, "github.com/storesync/storesync/cmd/storesync").CombinedOutput()
		if err != nil {
			storesyncErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if storesyncErr != nil {
		b.Fatal(storesyncErr)
	}
	return storesyncBin
}
