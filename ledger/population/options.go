package population

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/ledger"
)

// Options shapes the ledger Fill builds.
type Options struct {
	// Subscriptions is how many subscriptions to build (required, ≥ 1).
	// About one in ten customers holds two; one in twenty has no customer
	// link (bought before the app set appAccountTokens).
	Subscriptions int
	// CA signs every JWS (required): use the simulator's, sim.NewCA(), and
	// trust its root when verifying.
	CA *sim.CA
	// BundleID and AppAppleID are what payloads claim. Empty/zero:
	// sim.DefaultBundleID and sim.DefaultAppAppleID, what a simulator with
	// default options verifies.
	BundleID   string
	AppAppleID int64
	// Now is the instant the ledger is "as of": transactions span the year
	// before it, active subscriptions expire after it. Zero: time.Now().
	Now time.Time
	// Seed varies the ledger; the same Seed and Now give the same rows.
	Seed uint64
	// Streams is how many COPY streams (and signing goroutines) run at
	// once. Zero: GOMAXPROCS+1, at most 8, so signing and Postgres overlap.
	Streams int
	// Rules are the entitlement rules the change feed's events are written
	// under (their entitlements lists and entitlement.granted events). Nil:
	// no entitlements, as a ledger without STORESYNC_ENTITLEMENTS_FILE.
	Rules ledger.EntitlementRules
}

// withDefaults returns o validated, defaults filled; every problem is
// reported at once, naming the field and the fix.
func (o Options) withDefaults() (Options, error) {
	var errs []error
	if o.Subscriptions < 1 {
		errs = append(errs, fmt.Errorf("population: Options.Subscriptions = %d: set it to the number of subscriptions to build (≥ 1)", o.Subscriptions))
	}
	if o.CA == nil {
		errs = append(errs, errors.New("population: Options.CA is nil: pass the simulator's CA (sim.NewCA(), or Simulator.CA()) so every JWS verifies against its root"))
	}
	if o.Streams < 0 || o.Streams > 64 {
		errs = append(errs, fmt.Errorf("population: Options.Streams = %d: set 1..64, or 0 for the default", o.Streams))
	}
	if len(errs) > 0 {
		return o, errors.Join(errs...)
	}
	if o.BundleID == "" {
		o.BundleID = sim.DefaultBundleID
	}
	if o.AppAppleID == 0 {
		o.AppAppleID = sim.DefaultAppAppleID
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	o.Now = o.Now.UTC().Truncate(time.Millisecond) // Apple's dates are milliseconds
	if o.Streams == 0 {
		o.Streams = min(runtime.GOMAXPROCS(0)+1, 8)
	}
	return o, nil
}

// SizeVariable names the environment variable benchmarks read the ledger
// size from.
const SizeVariable = "STORESYNC_BENCH_SUBSCRIBERS"

// DefaultSize is the benchmarks' ledger size when SizeVariable is unset:
// issue 18's million.
const DefaultSize = 1_000_000

// SizeFromEnv returns the benchmark ledger size: SizeVariable (or, for
// the reconcile benchmark's older name, STORESYNC_BENCH_SUBSCRIPTIONS),
// else DefaultSize. Underscores are allowed (200_000). A value that is not
// a positive number is an error naming the variable.
func SizeFromEnv() (int, error) {
	for _, name := range []string{SizeVariable, "STORESYNC_BENCH_SUBSCRIPTIONS"} {
		v := os.Getenv(name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(strings.ReplaceAll(v, "_", ""))
		if err != nil || n < 1 {
			return 0, fmt.Errorf("%s=%q is not a positive number of subscriptions: set it like %s=200000", name, v, SizeVariable)
		}
		return n, nil
	}
	return DefaultSize, nil
}
