package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/storesync/storesync/appstore"
)

// verifyCommand is `storesync verify`; main.go lists it in commands.
func verifyCommand() *command {
	return &command{
		name:    "verify",
		summary: "verify an App Store signed payload (JWS) and print it decoded",
		usage: `storesync verify [--root FILE]... [--at RFC3339] [--bundle-id ID] [--app-apple-id N] [--environment ENV] [--online] [--kind KIND] [JWS|-]

Verifies a notification signedPayload, a signedTransactionInfo or a
signedRenewalInfo exactly as Apple's SignedDataVerifier does, and prints its
payload as indented JSON. A notification's data.signedTransactionInfo and
data.signedRenewalInfo are verified too and printed decoded beside the raw
strings, as "transactionInfo" and "renewalInfo". The kind is detected from
the payload unless --kind says: notificationType means a notification;
transactionId or bundleId (every transaction carries it, renewal info never)
means a transaction; anything else is renewal info, whose environment is
checked (INVALID_ENVIRONMENT) but not its bundle id.

The JWS is the argument, or is read from standard input when the argument is
"-" or absent. On failure storesync exits 1 with Apple's status name
(VERIFICATION_FAILURE, INVALID_APP_IDENTIFIER, ...) and the failed check.

  --root FILE          trusted root certificate, PEM or DER; repeatable
                       (default $APPSTORE_ROOT_CERTS, comma-separated, else
                       the embedded Apple Root CA - G3)
  --at RFC3339         effective time for certificate validity (default the
                       payload's signedDate; with --online, now)
  --bundle-id ID       required bundle id (default $APPSTORE_BUNDLE_ID)
  --app-apple-id N     required app Apple id in Production (default
                       $APPSTORE_APP_APPLE_ID)
  --environment ENV    required environment, any case: production, sandbox,
                       xcode, localtesting (default $APPSTORE_ENVIRONMENT)
  --online             also ask OCSP whether the certificates are revoked
  --kind KIND          notification, transaction or renewal (default: detect)

When bundle id, app Apple id or environment is given neither as a flag nor
in the environment, the payload's own (unverified) claim is used, with a
note on standard error: the signature and chain are still verified, but the
payload is then not pinned to your app. In the Xcode and LocalTesting
environments Apple's verifier does not check signatures at all.`,
		run: runVerify,
	}
}

// rootFlags collects repeated --root flags.
type rootFlags []string

func (r *rootFlags) String() string     { return strings.Join(*r, ",") }
func (r *rootFlags) Set(s string) error { *r = append(*r, s); return nil }

func runVerify(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	var roots rootFlags
	fs.Var(&roots, "root", "trusted root certificate (PEM or DER); repeatable")
	at := fs.String("at", "", "effective time, RFC 3339")
	bundleID := fs.String("bundle-id", "", "required bundle id")
	appAppleID := fs.String("app-apple-id", "", "required app Apple id (Production)")
	envFlag := fs.String("environment", "", "required environment")
	online := fs.Bool("online", false, "check revocation with OCSP")
	kindFlag := fs.String("kind", "", "notification, transaction or renewal")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 1 {
		return usagef("expected at most one JWS argument, got %d", len(rest))
	}

	var effective time.Time
	if *at != "" {
		if effective, err = time.Parse(time.RFC3339, *at); err != nil {
			return usagef("--at %q is not an RFC 3339 time (e.g. 2025-11-01T02:09:35Z)", *at)
		}
	}
	jws, err := readJWS(c, rest)
	if err != nil {
		return err
	}
	kind, err := appstore.ParsePayloadKind(*kindFlag)
	if err != nil {
		return usagef("--kind %q: use notification, transaction or renewal", *kindFlag)
	}

	opts := appstore.SignedDataOptions{Kind: kind, At: effective, Verifier: appstore.VerifierOptions{OnlineChecks: *online}}
	if opts.Verifier.RootCertificates, err = readRoots(c, roots); err != nil {
		return err
	}
	if envText, envSource := firstSet(*envFlag, "--environment", c.getenv("APPSTORE_ENVIRONMENT"), "APPSTORE_ENVIRONMENT"); envText != "" {
		if opts.Verifier.Environment, err = appstore.ParseEnvironment(envText); err != nil {
			return usagef("%s: %s", envSource, err)
		}
	}
	opts.Verifier.BundleID, _ = firstSet(*bundleID, "", c.getenv("APPSTORE_BUNDLE_ID"), "")
	if idText, idSource := firstSet(*appAppleID, "--app-apple-id", c.getenv("APPSTORE_APP_APPLE_ID"), "APPSTORE_APP_APPLE_ID"); idText != "" {
		if opts.Verifier.AppAppleID, err = strconv.ParseInt(strings.TrimSpace(idText), 10, 64); err != nil || opts.Verifier.AppAppleID <= 0 {
			return usagef("%s %q is not an app Apple id (a positive number)", idSource, idText)
		}
	}

	data, err := appstore.VerifySignedData(jws, opts)
	for _, claim := range data.Claimed {
		fmt.Fprintf(c.stderr, "storesync verify: note: no %s given; using the payload's own claim %q, which pins nothing\n", claimNames[claim.Field].what, claim.Value)
	}
	if data.SignatureUnchecked {
		fmt.Fprintf(c.stderr, "storesync verify: note: in the %s environment the signature and certificate chain are not checked\n", data.Environment)
	}
	var missing *appstore.MissingClaimError
	if errors.As(err, &missing) {
		return usagef("the payload names no %s: give %s", missing.Field, claimNames[missing.Field].flag)
	}
	if err != nil {
		return err
	}
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(data.Payload)
}

// claimNames are, by payload field, how a note names a setting taken from
// the payload and the flag that gives it instead.
var claimNames = map[string]struct{ what, flag string }{
	"environment": {"environment", "--environment"},
	"bundleId":    {"bundle id", "--bundle-id"},
	"appAppleId":  {"app Apple id", "--app-apple-id"},
}

// firstSet returns the first non-empty value and the name of its source.
func firstSet(flagValue, flagName, envValue, envName string) (string, string) {
	if flagValue != "" {
		return flagValue, flagName
	}
	return envValue, envName
}

// readJWS takes the JWS from the argument, or from stdin for "-" or no
// argument.
func readJWS(c *cli, rest []string) (string, error) {
	if len(rest) == 1 && rest[0] != "-" {
		return strings.TrimSpace(rest[0]), nil
	}
	b, err := io.ReadAll(io.LimitReader(c.stdin, 16<<20))
	if err != nil {
		return "", fmt.Errorf("reading the JWS from standard input: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", usagef("no JWS: give it as the argument or on standard input")
	}
	return s, nil
}

// readRoots reads --root files, else those of $APPSTORE_ROOT_CERTS; none
// means the embedded Apple root.
func readRoots(c *cli, roots rootFlags) ([][]byte, error) {
	paths := []string(roots)
	if len(paths) == 0 {
		for _, p := range strings.Split(c.getenv("APPSTORE_ROOT_CERTS"), ",") {
			if p = strings.TrimSpace(p); p != "" {
				paths = append(paths, p)
			}
		}
	}
	var out [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("trusted root: %w", err)
		}
		out = append(out, b)
	}
	return out, nil
}
