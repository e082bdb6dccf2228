// Package simtest starts the App Store simulator (package sim) inside a
// test. Only tests import it: it is what keeps package testing out of the
// shipping simulator.
package simtest

import (
	"testing"

	"github.com/storesync/storesync/appstore/sim"
)

// StartTest starts a simulator for t on a loopback port; it is closed when
// the test ends. Invalid options fail the test.
func StartTest(t testing.TB, opts sim.Options) *sim.Simulator {
	t.Helper()
	s, err := sim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
