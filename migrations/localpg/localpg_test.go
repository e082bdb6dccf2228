package localpg_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/storesync/storesync/migrations/localpg"
)

func TestFindReturnsAServerThatAnswers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := localpg.Find(ctx, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	conn, err := pgx.Connect(ctx, s.URL)
	if err != nil {
		t.Fatalf("Find returned %s, which does not answer: %v", s.URL, err)
	}
	defer conn.Close(ctx)
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1: %d, %v", one, err)
	}
}

func TestPrivateClusterStartsAndStops(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := localpg.StartPrivate(ctx, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, s.URL)
	if err != nil {
		s.Stop()
		t.Fatalf("private cluster %s does not answer: %v", s.URL, err)
	}
	conn.Close(ctx)
	if err := s.Restart(); err != nil {
		s.Stop()
		t.Fatal(err)
	}
	conn, err = pgx.Connect(ctx, s.URL)
	if err != nil {
		s.Stop()
		t.Fatalf("private cluster does not answer after Restart: %v", err)
	}
	conn.Close(ctx)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := pgx.Connect(ctx, s.URL); err == nil {
		t.Fatal("the private cluster still answers after Stop")
	}
}
