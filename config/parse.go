package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/storesync/storesync/appstore"
)

// parseRateLimits parses "statuses=50,history=50" into per-endpoint limits.
func parseRateLimits(s string) (map[appstore.Endpoint]float64, []string) {
	limits := map[appstore.Endpoint]float64{}
	var problems []string
	known := make([]string, 0, len(appstore.Endpoints))
	for _, e := range appstore.Endpoints {
		known = append(known, string(e))
	}
	sort.Strings(known)
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, value, ok := strings.Cut(part, "=")
		if !ok {
			problems = append(problems, fmt.Sprintf("APPSTORE_RATE_LIMITS entry %q has no '=': write endpoint=requests-per-second, e.g. statuses=50", part))
			continue
		}
		ep := appstore.Endpoint(strings.ToLower(strings.TrimSpace(name)))
		if appstore.ProductionRateLimit(ep) == 0 {
			problems = append(problems, fmt.Sprintf("APPSTORE_RATE_LIMITS names unknown endpoint %q: use one of %s", name, strings.Join(known, ", ")))
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil || f <= 0 || f > 10000 {
			problems = append(problems, fmt.Sprintf("APPSTORE_RATE_LIMITS %s=%q is not a rate in (0, 10000] requests/s", ep, value))
			continue
		}
		limits[ep] = f
	}
	return limits, problems
}

// ParseBudget parses "25%" (a share of a day's budget) or "50000" (calls).
func ParseBudget(s string) (Budget, error) {
	s = strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || f <= 0 || f > 100 {
			return Budget{}, errors.New("is not a percentage in (0, 100]")
		}
		return Budget{Fraction: f / 100}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return Budget{}, errors.New("is neither a percentage nor a positive number of calls")
	}
	return Budget{Calls: n}, nil
}

// ParseDuration accepts Go durations ("72h") and whole days ("7d").
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("bad day count %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

func splitHostPort(addr string) (string, string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", "", err
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "", "", fmt.Errorf("bad port %q", port)
	}
	return host, port, nil
}

// unwrapPathError drops the path from an fs error: the caller names it.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
