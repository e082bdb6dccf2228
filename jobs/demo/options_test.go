package demo

import (
	"context"
	"strings"
	"testing"
)

// Bad options fail before anything starts, every problem at once, each
// naming its field.
func TestRunRejectsBadOptions(t *testing.T) {
	t.Parallel()
	rep, err := Run(context.Background(), Options{Subscribers: 5, Days: 0, DropShare: 2, SilentChanges: -1})
	if err == nil || rep == nil || rep.DatabaseURL != "" {
		t.Fatalf("report %+v, error %v", rep, err)
	}
	for _, want := range []string{"Options.Subscribers = 5", "Options.Days = 0", "Options.DropShare = 2", "Options.SilentChanges = -1", "Options.Wiring"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
