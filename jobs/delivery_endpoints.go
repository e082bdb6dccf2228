package jobs

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/url"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/storesync/storesync/ledger"
)

// AddEndpoint validates rawURL and stores it as a change-feed receiver with
// a new random secret in the Standard Webhooks form whsec_<base64 of 32
// bytes>. The returned Endpoint's Secret is the only time it is shown.
// The URL must be https; http is accepted only for a loopback host (a
// receiver on the same machine, tests).
func AddEndpoint(ctx context.Context, l *ledger.Ledger, rawURL string) (*ledger.Endpoint, error) {
	if err := ValidateEndpointURL(rawURL); err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return l.AddEndpoint(ctx, rawURL, "whsec_"+base64.StdEncoding.EncodeToString(key))
}

// ValidateEndpointURL says what is wrong with an endpoint URL, naming the
// fix.
func ValidateEndpointURL(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return fmt.Errorf("endpoint URL %q does not parse: give an absolute URL such as https://backend.example.com/storesync", rawURL)
	}
	if u.User != nil {
		return fmt.Errorf("endpoint URL must not carry credentials: the signature authenticates storesync")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if ip := net.ParseIP(u.Hostname()); (ip != nil && ip.IsLoopback()) || u.Hostname() == "localhost" {
			return nil
		}
	}
	return fmt.Errorf("endpoint URL %q is not https: events carry customer data; use https (http only for localhost)", rawURL)
}

// RedeliverDead makes the dead deliveries of endpointID (0: all endpoints)
// pending again and enqueues their queues; it returns how many queues.
func RedeliverDead(ctx context.Context, l *ledger.Ledger, client *river.Client[pgx.Tx], endpointID int64) (int, error) {
	var n int
	err := pgx.BeginFunc(ctx, l.Pool(), func(tx pgx.Tx) error {
		keys, err := l.WithTx(tx).RedeliverDead(ctx, endpointID)
		if err != nil {
			return err
		}
		n = len(keys)
		return EnqueueDeliveries(ctx, client, tx, keys)
	})
	return n, err
}

// ReleaseImportEvents releases the held webhooks of an import run (see
// ledger.HoldImportEvents) and enqueues their queues; it returns how many.
func ReleaseImportEvents(ctx context.Context, l *ledger.Ledger, client *river.Client[pgx.Tx], runID int64) (int, error) {
	var n int
	err := pgx.BeginFunc(ctx, l.Pool(), func(tx pgx.Tx) error {
		keys, err := l.WithTx(tx).ReleaseImportEvents(ctx, runID)
		if err != nil {
			return err
		}
		n = len(keys)
		return EnqueueDeliveries(ctx, client, tx, keys)
	})
	return n, err
}
