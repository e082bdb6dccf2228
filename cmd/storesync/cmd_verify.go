package main

import (
	"bytes"
	"context"
	"encoding/base64"
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

func init() {
	register(&command{
		name:    "verify",
		summary: "verify an App Store signed payload (JWS) and print it decoded",
		usage: `storesync verify [--root FILE]... [--at RFC3339] [--bundle-id ID] [--app-apple-id N] [--environment ENV] [--online] [--kind KIND] [JWS|-]

Verifies a notification signedPayload, a signedTransactionInfo or a
signedRenewalInfo exactly as Apple's SignedDataVerifier does, and prints its
payload as indented JSON. A notification's data.signedTransactionInfo and
data.signedRenewalInfo are verified too and printed decoded beside the raw
strings, as "transactionInfo" and "renewalInfo". The kind is detected from
the payload unless --kind says: notificationType means a notification;
autoRenewStatus or autoRenewProductId without transactionId means renewal
info; anything else is a transaction.

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
	})
}

// rootFlags collects repeated --root flags.
type rootFlags []string

func (r *rootFlags) String() string     { return strings.Join(*r, ",") }
func (r *rootFlags) Set(s string) error { *r = append(*r, s); return nil }

// payloadKind is what a JWS holds, detected from its (unverified) payload.
type payloadKind int

const (
	kindNotification payloadKind = iota
	kindTransaction
	kindRenewalInfo
)

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
	kind, claims := detectPayload(jws)
	switch strings.ToLower(*kindFlag) {
	case "":
	case "notification":
		kind = kindNotification
	case "transaction":
		kind = kindTransaction
	case "renewal", "renewalinfo":
		kind = kindRenewalInfo
	default:
		return usagef("--kind %q: use notification, transaction or renewal", *kindFlag)
	}

	opts := appstore.VerifierOptions{OnlineChecks: *online}
	if opts.RootCertificates, err = readRoots(c, roots); err != nil {
		return err
	}
	note := func(what, value string) {
		fmt.Fprintf(c.stderr, "storesync verify: note: no %s given; using the payload's own claim %q, which pins nothing\n", what, value)
	}

	envText, envSource := firstSet(*envFlag, "--environment", c.getenv("APPSTORE_ENVIRONMENT"), "APPSTORE_ENVIRONMENT")
	if envText != "" {
		if opts.Environment, err = appstore.ParseEnvironment(envText); err != nil {
			return usagef("%s: %s", envSource, err)
		}
	} else {
		opts.Environment = claims.environment
		if opts.Environment == "" {
			return usagef("the payload names no environment: give --environment")
		}
		note("environment", string(opts.Environment))
	}

	switch v, _ := firstSet(*bundleID, "", c.getenv("APPSTORE_BUNDLE_ID"), ""); {
	case v != "":
		opts.BundleID = v
	case kind == kindRenewalInfo:
		// Renewal info carries no bundle id and Apple's verifier does not
		// check one; the verifier still wants a value.
		opts.BundleID = "(not checked for renewal info)"
	case claims.bundleID != "":
		opts.BundleID = claims.bundleID
		note("bundle id", claims.bundleID)
	default:
		return usagef("the payload names no bundleId: give --bundle-id")
	}

	idText, idSource := firstSet(*appAppleID, "--app-apple-id", c.getenv("APPSTORE_APP_APPLE_ID"), "APPSTORE_APP_APPLE_ID")
	switch {
	case idText != "":
		if opts.AppAppleID, err = strconv.ParseInt(strings.TrimSpace(idText), 10, 64); err != nil || opts.AppAppleID <= 0 {
			return usagef("%s %q is not an app Apple id (a positive number)", idSource, idText)
		}
	case opts.Environment == appstore.Production && kind == kindNotification:
		if claims.appAppleID <= 0 {
			return usagef("the payload names no appAppleId: give --app-apple-id")
		}
		opts.AppAppleID = claims.appAppleID
		note("app Apple id", strconv.FormatInt(claims.appAppleID, 10))
	case opts.Environment == appstore.Production:
		// Only notifications are checked against it; the verifier still
		// requires one in Production.
		opts.AppAppleID = 1
	}
	if opts.Environment == appstore.Xcode || opts.Environment == appstore.LocalTesting {
		fmt.Fprintf(c.stderr, "storesync verify: note: in the %s environment the signature and certificate chain are not checked\n", opts.Environment)
	}

	v, err := appstore.NewVerifier(opts)
	if err != nil {
		return err
	}
	out, err := verifyAndRender(v, kind, jws, effective)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(out)
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

// payloadClaims are what a payload says about itself, before verification.
type payloadClaims struct {
	bundleID    string
	appAppleID  int64
	environment appstore.Environment
}

// detectPayload decodes the payload without verifying it, to tell its kind
// and its claims (used only as defaults). An undecodable payload is
// treated as a notification; verification then reports why it fails.
func detectPayload(jws string) (payloadKind, payloadClaims) {
	var claims payloadClaims
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		return kindNotification, claims
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return kindNotification, claims
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return kindNotification, claims
	}
	type identity struct {
		BundleID    string               `json:"bundleId"`
		AppAppleID  appstore.Int         `json:"appAppleId"`
		Environment appstore.Environment `json:"environment"`
	}
	var id identity
	kind := kindTransaction
	_, hasTx := m["transactionId"]
	switch _, n := m["notificationType"]; {
	case n:
		kind = kindNotification
		for _, k := range []string{"data", "summary", "externalPurchaseToken", "appData"} {
			if raw, ok := m[k]; ok && !bytes.Equal(raw, []byte("null")) {
				_ = json.Unmarshal(raw, &id)
				break
			}
		}
		id.Environment, _ = appstore.PeekNotificationEnvironment(jws)
	case (has(m, "autoRenewStatus") || has(m, "autoRenewProductId")) && !hasTx:
		kind = kindRenewalInfo
		_ = json.Unmarshal(b, &id)
	default:
		_ = json.Unmarshal(b, &id)
	}
	return kind, payloadClaims{bundleID: id.BundleID, appAppleID: int64(id.AppAppleID), environment: id.Environment}
}

func has(m map[string]json.RawMessage, k string) bool { _, ok := m[k]; return ok }

// verifyAndRender verifies jws as kind and returns what to print: the
// payload exactly as signed (numbers untouched), for a notification with
// the verified inner fields decoded beside their raw strings.
func verifyAndRender(v *appstore.Verifier, kind payloadKind, jws string, at time.Time) (any, error) {
	switch kind {
	case kindTransaction:
		if _, err := v.VerifyTransactionAt(jws, at); err != nil {
			return nil, err
		}
	case kindRenewalInfo:
		if _, err := v.VerifyRenewalInfoAt(jws, at); err != nil {
			return nil, err
		}
	default:
		if _, err := v.VerifyNotificationDeepAt(jws, at); err != nil {
			return nil, err
		}
	}
	// Verified: print what Apple signed, not our struct's view of it, so
	// fields storesync does not know yet show too.
	out, err := rawPayload(jws)
	if err != nil || kind != kindNotification {
		return out, err
	}
	if data, ok := out["data"].(map[string]any); ok {
		for field, name := range map[string]string{"signedTransactionInfo": "transactionInfo", "signedRenewalInfo": "renewalInfo"} {
			if s, ok := data[field].(string); ok && s != "" {
				if data[name], err = rawPayload(s); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, nil
}

// rawPayload decodes the payload of an already verified JWS, keeping
// numbers as written.
func rawPayload(jws string) (map[string]any, error) {
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a compact JWS")
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil, err
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}
