// Package migrationstest gives each test its own migrated database on the
// real Postgres server named by TEST_DATABASE_URL (default: the local
// server), cloned from a template so a fresh database costs milliseconds.
package migrationstest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/storesync/storesync/migrations"
)

// DefaultServerURL is used when TEST_DATABASE_URL is unset.
const DefaultServerURL = "postgres://127.0.0.1:5432/postgres?sslmode=disable"

// ServerURL returns the URL of the test server's maintenance database.
func ServerURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultServerURL
}

var (
	templateOnce sync.Once
	templateName string
	templateErr  error
)

// NewDatabase creates a fresh, fully migrated database for t and returns its
// URL and a pool on it. Both are closed and the database dropped when t ends.
func NewDatabase(t testing.TB) (string, *pgxpool.Pool) {
	t.Helper()
	url := NewDatabaseURL(t)
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatalf("migrationstest: connecting to %s: %v", url, err)
	}
	t.Cleanup(pool.Close)
	return url, pool
}

// NewDatabaseURL is NewDatabase without the pool, for tests that start
// processes of their own.
func NewDatabaseURL(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	templateOnce.Do(func() { templateName, templateErr = ensureTemplate(ctx) })
	if templateErr != nil {
		t.Fatalf("migrationstest: preparing the template database on %s (set TEST_DATABASE_URL, or run `make test`, which starts a private Postgres): %v", redact(ServerURL()), templateErr)
	}
	name := "storesync_test_" + randomHex(6)
	admin, err := pgx.Connect(ctx, ServerURL())
	if err != nil {
		t.Fatalf("migrationstest: %v", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, templateName)); err != nil {
		t.Fatalf("migrationstest: creating %s: %v", name, err)
	}
	t.Cleanup(func() { DropDatabase(t, name) })
	return DatabaseURL(name)
}

// NewEmptyDatabaseName returns a database name that does not exist yet and
// is dropped, if something created it, when t ends.
func NewEmptyDatabaseName(t testing.TB) string {
	name := "storesync_test_" + randomHex(6)
	t.Cleanup(func() { DropDatabase(t, name) })
	return name
}

// DatabaseURL returns the URL of database name on the test server.
func DatabaseURL(name string) string {
	u, err := url.Parse(ServerURL())
	if err != nil {
		panic(fmt.Sprintf("migrationstest: TEST_DATABASE_URL is not a URL: %v", err))
	}
	u.Path = "/" + name
	return u.String()
}

// DropDatabase drops name, disconnecting whoever still uses it.
func DropDatabase(t testing.TB, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, ServerURL())
	if err != nil {
		t.Errorf("migrationstest: dropping %s: %v", name, err)
		return
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Errorf("migrationstest: dropping %s: %v", name, err)
	}
}

// ensureTemplate creates, once per server and schema version, a migrated
// database to clone. Its name carries a hash of the migrations, so a changed
// schema gets a new template and stale ones are never reused.
func ensureTemplate(ctx context.Context) (string, error) {
	all, err := migrations.All()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write([]byte(riverVersion))
	for _, m := range all {
		h.Write([]byte(m.Name))
		h.Write([]byte(m.SQL))
	}
	name := "storesync_tmpl_" + hex.EncodeToString(h.Sum(nil))[:16]

	admin, err := pgx.Connect(ctx, ServerURL())
	if err != nil {
		return "", err
	}
	defer admin.Close(ctx)
	// Test binaries of several packages run at once: one builds the template.
	if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock(hashtext($1))", name); err != nil {
		return "", err
	}
	defer admin.Exec(ctx, "SELECT pg_advisory_unlock(hashtext($1))", name) //nolint:errcheck
	var ready bool
	err = admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1 AND datistemplate)", name).Scan(&ready)
	if err != nil || ready {
		return name, err
	}
	building := name + "_build"
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+building+" WITH (FORCE)"); err != nil {
		return "", err
	}
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return "", err
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+building); err != nil {
		return "", err
	}
	if _, err := migrations.Migrate(ctx, DatabaseURL(building)); err != nil {
		return "", fmt.Errorf("migrating the template: %w", err)
	}
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+building+" RENAME TO "+name); err != nil {
		return "", err
	}
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+name+" WITH IS_TEMPLATE true"); err != nil {
		return "", err
	}
	return name, nil
}

// riverVersion is part of the template hash so a River upgrade rebuilds it.
const riverVersion = "river v0.51.1"

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func redact(u string) string {
	if i := strings.Index(u, "@"); i >= 0 {
		if j := strings.Index(u, "://"); j >= 0 && j < i {
			return u[:j+3] + "…" + u[i:]
		}
	}
	return u
}
