package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/storesync/storesync/appstore/sim"
)

// simCommand is `storesync sim`; main.go lists it in commands.
func simCommand() *command {
	return &command{
		name:    "sim",
		summary: "run the App Store simulator (Apple's wire format, its own CA, simulated subscribers)",
		usage: `storesync simulator [--subscribers N] [--listen ADDR] [--seed S] [--webhook URL] [--drop-share F] [--dir DIR] [--start RFC3339]

Starts a simulated App Store Server API with N customers generated from the
seed, writes its root certificate and API key (.p8) into DIR, prints the
base URL and the APPSTORE_* variables to export, and serves until stopped.
The sandbox API is served under BASE_URL/sandbox. Reusing DIR keeps the CA
and key, so exported settings stay valid across restarts.

  --subscribers N   customers to generate (default 2000)
  --listen ADDR     address to listen on (default 127.0.0.1:8090; :0 picks a port)
  --seed S          world seed (default 1): same seed, same world
  --webhook URL     send App Store Server Notifications V2 here
  --drop-share F    share (0-1) of notifications dropped on purpose (default 0)
  --dir DIR         where to write simulator-root.pem and the .p8 (default: a new temp dir)
  --start T         simulated clock start, RFC 3339 (default 2026-11-01T00:00:00Z)

Control endpoints (no auth): GET /sim/token, POST /sim/advance?d=24h,
GET /sim/truth/{otid}, GET /sim/ids, POST /sim/mutate?otid=&kind=,
GET|POST /sim/faults, POST /sim/webhook?url=, GET /sim/stats.`,
		run: runSim,
	}
}

func runSim(ctx context.Context, c *cli, args []string) error {
	fset := flag.NewFlagSet("sim", flag.ContinueOnError)
	subscribers := fset.Int("subscribers", 2000, "")
	listen := fset.String("listen", "127.0.0.1:8090", "")
	seed := fset.Int64("seed", 1, "")
	webhook := fset.String("webhook", "", "")
	drop := fset.Float64("drop-share", 0, "")
	dir := fset.String("dir", "", "")
	start := fset.String("start", "", "")
	rest, err := parseFlags(fset, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("unexpected argument %q", rest[0])
	}
	if *subscribers <= 0 || *subscribers > sim.MaxSubscribers {
		return usagef("--subscribers %d: must be between 1 and %d", *subscribers, sim.MaxSubscribers)
	}
	if *drop < 0 || *drop > 1 {
		return usagef("--drop-share %v: must be between 0 and 1", *drop)
	}
	opts := sim.Options{Seed: *seed, Subscribers: *subscribers, WebhookURL: *webhook, DropShare: *drop}
	if *start != "" {
		t, err := time.Parse(time.RFC3339, *start)
		if err != nil {
			return usagef("--start %q: want an RFC 3339 time like 2026-11-01T00:00:00Z", *start)
		}
		opts.Start = t
	}
	if *dir == "" {
		if *dir, err = os.MkdirTemp("", "storesync-simulator-"); err != nil {
			return fmt.Errorf("creating a directory for the simulator's files: %w", err)
		}
	}
	if opts.CA, err = sim.LoadOrCreateCA(filepath.Join(*dir, "ca")); err != nil {
		return fmt.Errorf("simulator CA in %s: %w (delete the directory to start afresh)", *dir, err)
	}
	keyPath := filepath.Join(*dir, "AuthKey_"+sim.DefaultKeyID+".p8")
	switch key, err := os.ReadFile(keyPath); {
	case err == nil:
		opts.PrivateKeyPEM = key
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("reading the simulator's API key: %w", err)
	}

	simulator, err := sim.New(opts)
	if err != nil {
		return usagef("%v", err)
	}
	defer simulator.Close()
	files, err := simulator.WriteFiles(*dir)
	if err != nil {
		return err
	}
	base, err := simulator.Start(*listen)
	if err != nil {
		return fmt.Errorf("%w (pick another --listen address)", err)
	}
	out := c.stdout
	fmt.Fprintf(out, "App Store simulator: %d customers, seed %d, clock %s\n", *subscribers, *seed, simulator.Now().Format(time.RFC3339))
	fmt.Fprintf(out, "  base URL:     %s\n", base)
	fmt.Fprintf(out, "  sandbox URL:  %s\n", simulator.SandboxURL())
	fmt.Fprintf(out, "  root cert:    %s\n", files.RootCertPath)
	fmt.Fprintf(out, "  private key:  %s\n", files.PrivateKeyPath)
	fmt.Fprintf(out, "  key id:       %s\n", simulator.KeyID())
	fmt.Fprintf(out, "  issuer id:    %s\n", simulator.IssuerID())
	fmt.Fprintf(out, "  bundle id:    %s\n", simulator.BundleID())
	fmt.Fprintf(out, "  app apple id: %d\n", simulator.AppAppleID())
	if *webhook != "" {
		fmt.Fprintf(out, "  webhook:      %s (drop share %v)\n", *webhook, *drop)
	}
	fmt.Fprintf(out, "\nPaste to point storesync at it:\n")
	env := simulator.Env()
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(out, "export %s=%s\n", k, shellQuote(env[k]))
	}
	fmt.Fprintf(out, "\nImport file: curl -s %s/sim/ids > subscribers.csv\n", base)
	fmt.Fprintf(out, "Advance time: curl -s -X POST '%s/sim/advance?d=24h'\n", base)
	fmt.Fprintf(out, "Serving until interrupted.\n")

	<-ctx.Done()
	fmt.Fprintf(out, "simulator stopped\n")
	return nil
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '/' || r == '.' || r == ':' || r == '-' || r == '_' || r == ',') {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	return s
}
