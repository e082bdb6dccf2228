package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/storesync/storesync/appstore"
)

// Faults are failures injected into API answers. They apply to requests
// that passed authentication and the rate limit, so every fault costs the
// client a rate-limit token as a real failure would. Change them at any
// time with SetFaults (or POST /sim/faults).
//
// Decisions are seeded: every API request draws the same number of random
// numbers whatever the faults, so N requests with the same seed give the
// same number of each fault, even when requests run concurrently.
type Faults struct {
	// InternalErrorShare (0–1) of requests answer 500 with 5000000
	// (GeneralInternalError).
	InternalErrorShare float64
	// RetryableErrorShare (0–1) of requests answer 500 with 5000001
	// (GeneralInternalRetryableError).
	RetryableErrorShare float64
	// Retryable404Share (0–1) of requests answer 404 with one of
	// 4040002, 4040004, 4040006 (the retryable not-found errors).
	Retryable404Share float64
	// HangShare (0–1) of requests are held until the client gives up or
	// HangMax passes (then 500/5000001).
	HangShare float64
	// HangMax bounds a hang; 0 means 30 s.
	HangMax time.Duration
	// Latency is added to every request, plus up to LatencyJitter more.
	Latency       time.Duration
	LatencyJitter time.Duration
	// FailHistoryPage N > 0 answers 500/5000001 to page N of every
	// transaction-history paging sequence (page 1 is the call without a
	// revision), once per distinct request: the retry succeeds.
	FailHistoryPage int
	// RateLimitStorm, when SetFaults is called with it, answers 429 to
	// every API request for that long (Retry-After = the storm's end).
	RateLimitStorm time.Duration
	// Endpoints limits the faults above (not the storm) to these
	// endpoints; empty means all.
	Endpoints []appstore.Endpoint
}

func (f Faults) validate() error {
	for _, s := range []struct {
		name string
		v    float64
	}{{"InternalErrorShare", f.InternalErrorShare}, {"RetryableErrorShare", f.RetryableErrorShare},
		{"Retryable404Share", f.Retryable404Share}, {"HangShare", f.HangShare}} {
		if !(s.v >= 0 && s.v <= 1) {
			return fmt.Errorf("Faults.%s = %v: must be between 0 and 1", s.name, s.v)
		}
	}
	if sum := f.InternalErrorShare + f.RetryableErrorShare + f.Retryable404Share + f.HangShare; sum > 1+1e-9 {
		return fmt.Errorf("the fault shares add up to %v: their sum must be at most 1", sum)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"HangMax", f.HangMax}, {"Latency", f.Latency}, {"LatencyJitter", f.LatencyJitter}, {"RateLimitStorm", f.RateLimitStorm}} {
		if d.v < 0 {
			return fmt.Errorf("Faults.%s = %s: must be >= 0", d.name, d.v)
		}
	}
	if f.FailHistoryPage < 0 {
		return fmt.Errorf("Faults.FailHistoryPage = %d: must be >= 0 (0 = off)", f.FailHistoryPage)
	}
	for _, ep := range f.Endpoints {
		if !slices.Contains(simEndpoints, ep) {
			return fmt.Errorf("Faults.Endpoints: unknown endpoint %q: use one of %v", ep, simEndpoints)
		}
	}
	return nil
}

// faultsJSON is the JSON form of Faults: durations as Go duration strings
// ("250ms"), so curl users can write them.
type faultsJSON struct {
	InternalErrorShare  float64             `json:"internalErrorShare,omitempty"`
	RetryableErrorShare float64             `json:"retryableErrorShare,omitempty"`
	Retryable404Share   float64             `json:"retryable404Share,omitempty"`
	HangShare           float64             `json:"hangShare,omitempty"`
	HangMax             string              `json:"hangMax,omitempty"`
	Latency             string              `json:"latency,omitempty"`
	LatencyJitter       string              `json:"latencyJitter,omitempty"`
	FailHistoryPage     int                 `json:"failHistoryPage,omitempty"`
	RateLimitStorm      string              `json:"rateLimitStorm,omitempty"`
	Endpoints           []appstore.Endpoint `json:"endpoints,omitempty"`
}

// MarshalJSON writes durations as strings like "250ms".
func (f Faults) MarshalJSON() ([]byte, error) {
	ds := func(d time.Duration) string {
		if d == 0 {
			return ""
		}
		return d.String()
	}
	return json.Marshal(faultsJSON{
		InternalErrorShare: f.InternalErrorShare, RetryableErrorShare: f.RetryableErrorShare,
		Retryable404Share: f.Retryable404Share, HangShare: f.HangShare, HangMax: ds(f.HangMax),
		Latency: ds(f.Latency), LatencyJitter: ds(f.LatencyJitter), FailHistoryPage: f.FailHistoryPage,
		RateLimitStorm: ds(f.RateLimitStorm), Endpoints: f.Endpoints,
	})
}

// UnmarshalJSON reads durations written as strings like "250ms".
func (f *Faults) UnmarshalJSON(b []byte) error {
	var j faultsJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("faults: %w", err)
	}
	var errs []error
	pd := func(name, s string) time.Duration {
		if s == "" {
			return 0
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("faults: %s %q: want a duration like 250ms", name, s))
		}
		return d
	}
	*f = Faults{
		InternalErrorShare: j.InternalErrorShare, RetryableErrorShare: j.RetryableErrorShare,
		Retryable404Share: j.Retryable404Share, HangShare: j.HangShare, HangMax: pd("hangMax", j.HangMax),
		Latency: pd("latency", j.Latency), LatencyJitter: pd("latencyJitter", j.LatencyJitter),
		FailHistoryPage: j.FailHistoryPage, RateLimitStorm: pd("rateLimitStorm", j.RateLimitStorm),
		Endpoints: j.Endpoints,
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// faultKind is what the injector decided for one request.
type faultKind int

const (
	faultNone faultKind = iota
	faultInternal
	faultRetryable
	fault404
	faultHang
)

type faultDecision struct {
	kind    faultKind
	code    int // for fault404
	latency time.Duration
	hangMax time.Duration
}

// faultInjector holds the current Faults and the seeded generator.
type faultInjector struct {
	mu          sync.Mutex
	f           Faults
	rng         *rand.Rand
	stormUntil  time.Time
	failedPages map[string]bool
}

func newFaultInjector(seed int64, f Faults) *faultInjector {
	fi := &faultInjector{rng: rand.New(rand.NewPCG(uint64(seed), 0x6661_756c_7473)), failedPages: map[string]bool{}}
	fi.set(f, time.Now())
	return fi
}

func (fi *faultInjector) set(f Faults, now time.Time) {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	f.Endpoints = slices.Clone(f.Endpoints)
	fi.f = f
	fi.stormUntil = time.Time{}
	if f.RateLimitStorm > 0 {
		fi.stormUntil = now.Add(f.RateLimitStorm)
	}
	fi.failedPages = map[string]bool{}
}

func (fi *faultInjector) get() Faults {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	f := fi.f
	f.Endpoints = slices.Clone(f.Endpoints)
	return f
}

// storm reports whether a 429 storm is on at wall time now, and its end.
func (fi *faultInjector) storm(now time.Time) (time.Time, bool) {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	return fi.stormUntil, now.Before(fi.stormUntil)
}

var retryable404Codes = [3]int{4040002, 4040004, 4040006}

// decide draws the fault for one request to ep.
func (fi *faultInjector) decide(ep appstore.Endpoint) faultDecision {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	u := fi.rng.Float64()
	j := fi.rng.Float64()
	f := fi.f
	d := faultDecision{latency: f.Latency + time.Duration(j*float64(f.LatencyJitter)), hangMax: f.HangMax}
	if d.hangMax == 0 {
		d.hangMax = 30 * time.Second
	}
	if len(f.Endpoints) > 0 && !slices.Contains(f.Endpoints, ep) {
		return faultDecision{}
	}
	switch {
	case u < f.InternalErrorShare:
		d.kind = faultInternal
	case u < f.InternalErrorShare+f.RetryableErrorShare:
		d.kind = faultRetryable
	case u < f.InternalErrorShare+f.RetryableErrorShare+f.Retryable404Share:
		d.kind = fault404
		x := (u - f.InternalErrorShare - f.RetryableErrorShare) / f.Retryable404Share
		d.code = retryable404Codes[min(int(x*3), 2)]
	case u < f.InternalErrorShare+f.RetryableErrorShare+f.Retryable404Share+f.HangShare:
		d.kind = faultHang
	}
	return d
}

// failPage reports whether this history request (identified by key) is
// page FailHistoryPage answered for the first time.
func (fi *faultInjector) failPage(key string, page int) bool {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	if fi.f.FailHistoryPage == 0 || page != fi.f.FailHistoryPage || fi.failedPages[key] {
		return false
	}
	fi.failedPages[key] = true
	return true
}
