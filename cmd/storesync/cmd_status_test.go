package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/storesync/storesync/migrations/migrationstest"
)

// A fresh database: every section says it has nothing; sections print in
// order, and a failing section does not hide the others.
func TestStatusSectionsOnEmptyDatabase(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": migrationstest.NewDatabaseURL(t)}
	code, stdout, stderr := runCLI(t, env, "status")
	if code != 0 {
		t.Fatalf("code %d\n%s%s", code, stdout, stderr)
	}
	order := []string{"== Job queue ==", "no jobs", "== Imports ==", "no import runs", "== Apple rate budget ==", "no calls to Apple in the last hour"}
	at := 0
	for _, want := range order {
		i := strings.Index(stdout[at:], want)
		if i < 0 {
			t.Fatalf("status lacks %q after offset %d:\n%s", want, at, stdout)
		}
		at += i
	}
	if code, _, stderr := runCLI(t, env, "status", "--runs", "0"); code != 2 || !strings.Contains(stderr, "--runs") {
		t.Fatalf("--runs 0: code %d %q", code, stderr)
	}
}

func TestStatusSectionErrorIsShownInPlace(t *testing.T) {
	t.Parallel()
	write := func(text string) func(context.Context, *statusContext, io.Writer) error {
		return func(_ context.Context, _ *statusContext, w io.Writer) error {
			_, err := fmt.Fprintln(w, text)
			return err
		}
	}
	sections := []statusSection{
		{Order: 30, Title: "Third", Write: write("three")},
		{Order: 10, Title: "First", Write: write("one")},
		{Order: 20, Title: "Broken", Write: func(context.Context, *statusContext, io.Writer) error { return errors.New("boom") }},
	}
	var b strings.Builder
	if failed := writeStatus(context.Background(), &statusContext{}, &b, sections); failed != 1 {
		t.Fatalf("%d sections failed, want 1", failed)
	}
	want := "== First ==\none\n\n== Broken ==\n(unavailable: boom)\n\n== Third ==\nthree\n"
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}
