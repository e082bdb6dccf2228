package appstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Millis is a UNIX time in milliseconds, as Apple writes every date.
//
// It decodes leniently: StoreKit Testing in Xcode writes fractional
// milliseconds (1697679936049.7297), which are truncated to the integer part,
// and a JSON string holding a number is accepted too. Zero means absent.
type Millis int64

// MillisOf returns t as Millis; the zero time gives 0.
func MillisOf(t time.Time) Millis {
	if t.IsZero() {
		return 0
	}
	return Millis(t.UnixMilli())
}

// Time returns m as a UTC time; 0 gives the zero time.
func (m Millis) Time() time.Time {
	if m == 0 {
		return time.Time{}
	}
	return time.UnixMilli(int64(m)).UTC()
}

// IsZero reports whether m is absent.
func (m Millis) IsZero() bool { return m == 0 }

// UnmarshalJSON accepts integers, fractional numbers and numeric strings.
func (m *Millis) UnmarshalJSON(b []byte) error {
	v, err := parseLenientInt(b)
	if err != nil {
		return fmt.Errorf("appstore: date %s: %w", b, err)
	}
	*m = Millis(v)
	return nil
}

// Int is an integer field of an Apple payload (status, offerType, price in
// milliunits, ...). It decodes leniently like Millis, so a payload written by
// a tool that emits 1.0 or "1" is not rejected.
type Int int64

// UnmarshalJSON accepts integers, fractional numbers and numeric strings.
func (n *Int) UnmarshalJSON(b []byte) error {
	v, err := parseLenientInt(b)
	if err != nil {
		return fmt.Errorf("appstore: number %s: %w", b, err)
	}
	*n = Int(v)
	return nil
}

func parseLenientInt(b []byte) (int64, error) {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return 0, nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return 0, err
		}
		b = []byte(s)
	}
	if v, err := strconv.ParseInt(string(b), 10, 64); err == nil {
		return v, nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return 0, fmt.Errorf("not a number")
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || f > math.MaxInt64 || f < math.MinInt64 {
		return 0, fmt.Errorf("out of range")
	}
	return int64(math.Trunc(f)), nil
}
