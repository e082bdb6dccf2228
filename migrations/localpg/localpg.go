// Package localpg finds a Postgres for commands that must run on a machine
// with nothing configured (storesync demo): the server on 127.0.0.1:5432
// when one answers, otherwise a private throwaway cluster started with the
// installed PostgreSQL server binaries. It is the Go twin of
// .ci/with-postgres, which does the same for the test command.
package localpg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is a Postgres storesync can use. Stop stops it when this package
// started it, and does nothing otherwise.
type Server struct {
	// URL of the server's maintenance database ("postgres").
	URL string
	// Private reports whether the cluster was started here.
	Private bool
	stop    func() error
	restart func() error
}

// Restart stops and starts a private cluster (for chaos tests: every
// connection is cut, as when a database server restarts). It fails for a
// shared server, which this package must never disturb.
func (s *Server) Restart() error {
	if s.restart == nil {
		return errors.New("localpg: only a private cluster can be restarted")
	}
	return s.restart()
}

// Stop stops and deletes a private cluster; a no-op for a shared server.
func (s *Server) Stop() error {
	if s.stop == nil {
		return nil
	}
	return s.stop()
}

// DatabaseURL returns the URL of database name on the server.
func (s *Server) DatabaseURL(name string) string {
	u, err := url.Parse(s.URL)
	if err != nil {
		return s.URL
	}
	u.Path = "/" + name
	return u.String()
}

// Candidates are tried in order before starting a private cluster.
var Candidates = []string{
	"postgres://127.0.0.1:5432/postgres?sslmode=disable",
	"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
}

// Find returns a server that answers, starting a private cluster when none
// does. logf reports what it does (may be nil).
func Find(ctx context.Context, logf func(string, ...any)) (*Server, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	for _, u := range Candidates {
		if answers(ctx, u) {
			return &Server{URL: u}, nil
		}
	}
	return StartPrivate(ctx, logf)
}

func answers(ctx context.Context, url string) bool {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return false
	}
	conn.Close(ctx)
	return true
}

// binDir finds initdb and pg_ctl: on PATH, or in the version-numbered folder
// where Debian's postgresql package puts them (the newest version).
func binDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("pg_ctl"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) < versionOf(dirs[j]) })
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i], nil
		}
	}
	return "", errors.New("no PostgreSQL server binaries (initdb, pg_ctl) found: install the postgresql package (apt-get install postgresql) or set DATABASE_URL")
}

func versionOf(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

// StartPrivate starts a private throwaway cluster whatever else answers.
func StartPrivate(ctx context.Context, logf func(string, ...any)) (*Server, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	bin, err := binDir()
	if err != nil && os.Geteuid() == 0 {
		if _, lerr := exec.LookPath("apt-get"); lerr == nil {
			logf("no Postgres answers and no server binaries are installed: installing Debian's postgresql package")
			for _, args := range [][]string{{"update", "-qq"}, {"install", "-y", "-qq", "postgresql"}} {
				cmd := exec.CommandContext(ctx, "apt-get", args...)
				cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
				if out, err := cmd.CombinedOutput(); err != nil {
					return nil, fmt.Errorf("apt-get %s: %v\n%s", args[0], err, out)
				}
			}
			bin, err = binDir()
		}
	}
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "storesync-pg.")
	if err != nil {
		return nil, err
	}
	// Postgres refuses to run as root: run the cluster as the postgres user.
	var runAs []string
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			if out, err := exec.CommandContext(ctx, "useradd", "--system", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "postgres").CombinedOutput(); err != nil {
				return nil, fmt.Errorf("creating the postgres user: %v\n%s", err, out)
			}
		}
		if out, err := exec.CommandContext(ctx, "chown", "postgres", dir).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("chown %s: %v\n%s", dir, err, out)
		}
		runAs = []string{"runuser", "-u", "postgres", "--"}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	run := func(name string, args ...string) ([]byte, error) {
		full := append(append(append([]string{}, runAs...), filepath.Join(bin, name)), args...)
		return exec.CommandContext(ctx, full[0], full[1:]...).CombinedOutput()
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	logf("starting a private PostgreSQL (%s) on 127.0.0.1:%d in %s", bin, port, dir)
	if out, err := run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c max_connections=300", port, dir)
	if out, err := run("pg_ctl", "-D", data, "-l", filepath.Join(dir, "server.log"), "-w", "-t", "60", "-o", opts, "start"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pg_ctl start: %v\n%s", err, out)
	}
	s := &Server{URL: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port), Private: true}
	s.restart = func() error {
		if out, err := run("pg_ctl", "-D", data, "-m", "fast", "-w", "-t", "60", "-o", opts, "-l", filepath.Join(dir, "server.log"), "restart"); err != nil {
			return fmt.Errorf("pg_ctl restart: %v\n%s", err, out)
		}
		return nil
	}
	s.stop = func() error {
		_, err := run("pg_ctl", "-D", data, "-m", "fast", "stop")
		os.RemoveAll(dir)
		return err
	}
	return s, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
