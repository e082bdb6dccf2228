package ledger_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

// storedBytesRows is how many subscriptions BenchmarkStoredBytes stores:
// enough that page and index overheads average out.
const storedBytesRows = 2000

// BenchmarkStoredBytes reports what the ledger stores per transaction,
// renewal info and notification (the table with its indexes and TOAST,
// pg_total_relation_size of a copy written afresh, divided by rows), before and
// after certificate compaction (migration 011), for simulator-signed data
// (its x5c chain: chain-B). "Before" is the form written until 011: JWS
// with their chain, notifications in 005's decoded form. The shared
// certificate_chains table is reported apart (chains-B, all of it). Run it
// with -benchtime 1x: one iteration stores and measures everything.
func BenchmarkStoredBytes(b *testing.B) {
	for range b.N {
		storedBytes(b)
	}
}

func storedBytes(b *testing.B) {
	b.StopTimer()
	_, pool := migrationstest.NewDatabase(b)
	l := ledger.New(pool)
	ctx := context.Background()
	ca, err := sim.NewCA()
	if err != nil {
		b.Fatal(err)
	}
	var chainLen int
	const chunk = 200
	for done := 0; done < storedBytesRows; done += chunk {
		var facts ledger.Facts
		var ns []ledger.Notification
		for _, n := range signNotes(b, ca, chunk) {
			facts.Add(n.facts)
			ns = append(ns, ledger.Notification{UUID: n.note.N.NotificationUUID, Type: "DID_RENEW",
				Environment: appstore.Sandbox, SignedDate: n.note.N.SignedDate, OriginalTransactionID: n.note.Tx.OriginalTransactionID,
				TransactionID: n.note.Tx.TransactionID, SignedPayload: n.jws, Source: ledger.SourceWebhook})
			if _, _, chain, ok := ledger.CompactJWS(n.tx); ok {
				chainLen = len(chain)
			}
		}
		if _, err := l.RecordNotifications(ctx, ns); err != nil {
			b.Fatal(err)
		}
		if _, err := l.Apply(ctx, facts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(chainLen), "chain-B")

	// Before: every row back to the form stored until migration 011.
	for _, q := range []string{
		`UPDATE transactions SET jws = storesync_jws(jws, jws_chain), jws_chain = NULL`,
		`UPDATE renewal_infos SET jws = storesync_jws(jws, jws_chain), jws_chain = NULL`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	decompactNotifications(b, pool, l)
	measure := func(when string) {
		for _, t := range []struct{ table, unit string }{
			{"transactions", "tx"}, {"renewal_infos", "renewal"}, {"notifications", "notification"},
		} {
			size, rows := freshCopySize(b, pool, t.table)
			b.ReportMetric(size/rows, "B/"+t.unit+"-"+when)
		}
	}
	measure("before")

	b.StartTimer()
	if _, err := l.StartCompactionPass(ctx); err != nil {
		b.Fatal(err)
	}
	for done := false; !done; {
		if done, err = l.CompactBatch(ctx, 500); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(3*storedBytesRows/b.Elapsed().Seconds(), "rows-compacted/s")
	measure("after")
	chains, _ := freshCopySize(b, pool, "certificate_chains")
	b.ReportMetric(chains, "chains-B")
}

// freshCopySize returns the size (table, indexes and TOAST) of a copy of
// table written afresh, and its rows. Measuring a copy leaves out the dead
// row versions the rewrites left behind, which VACUUM FULL cannot always
// remove while other sessions of the server hold old snapshots.
func freshCopySize(b *testing.B, pool *pgxpool.Pool, table string) (size, rows float64) {
	ctx := context.Background()
	copyName := "stored_bytes_" + table
	for _, q := range []string{
		`DROP TABLE IF EXISTS ` + copyName,
		`CREATE TABLE ` + copyName + ` (LIKE ` + table + ` INCLUDING ALL)`,
		`INSERT INTO ` + copyName + ` SELECT * FROM ` + table,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	if err := pool.QueryRow(ctx, `SELECT pg_total_relation_size($1::regclass), (SELECT count(*) FROM `+copyName+`)`,
		copyName).Scan(&size, &rows); err != nil {
		b.Fatal(err)
	}
	return size, rows
}

// decompactNotifications rewrites every notification in 005's form: the
// payload segment decoded, the chains inside.
func decompactNotifications(b *testing.B, pool *pgxpool.Pool, l *ledger.Ledger) {
	ctx := context.Background()
	rows, err := pool.Query(ctx, `SELECT notification_uuid::text FROM notifications`)
	if err != nil {
		b.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		b.Fatal(err)
	}
	batch := &pgx.Batch{}
	for _, id := range ids {
		n, err := l.NotificationByUUID(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		parts := strings.Split(n.SignedPayload, ".")
		payload, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			b.Fatal(err)
		}
		batch.Queue(`UPDATE notifications SET signed_payload = NULL, signed_payload_decoded = $2, payload_chain = NULL
			WHERE notification_uuid = $1`, id, parts[0]+"."+string(payload)+"."+parts[2])
	}
	if err := pool.SendBatch(ctx, batch).Close(); err != nil {
		b.Fatal(err)
	}
}
