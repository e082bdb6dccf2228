package jobs

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/appstore/sim"
	"github.com/storesync/storesync/appstore/sim/simtest"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/migrations/migrationstest"
)

// hookEnv is a migrated database, a River client, storesync's HTTP handler
// on an httptest server, and either a simulator or just a CA to sign with.
type hookEnv struct {
	t         testing.TB
	url       string // of the database
	pool      *pgxpool.Pool
	simulator *sim.Simulator // nil without Sim
	ca        *sim.CA
	deps      *Deps
	river     *river.Client[pgx.Tx]
	server    *httptest.Server
}

type hookEnvOptions struct {
	// Sim starts a simulator whose CA signs, and an App Store client on
	// it (production with sandbox fallback). Nil: only a CA, no client.
	Sim *sim.Options
	// Work starts River workers.
	Work bool
	// AdminToken enables the admin routes.
	AdminToken string
	// ExtraRoots are trusted besides the CA's root.
	ExtraRoots [][]byte
	// NoApple leaves Deps.Apple nil even with a simulator.
	NoApple bool
	// CA signs (and is trusted) when there is no simulator; nil: a new one.
	CA *sim.CA
	// JobTimeout bounds a job run; default 30s.
	JobTimeout time.Duration
	// HTTP configures the handler (AdminToken above wins).
	HTTP HTTPOptions
}

func newHookEnv(t testing.TB, o hookEnvOptions) *hookEnv {
	t.Helper()
	url, pool := migrationstest.NewDatabase(t)
	e := &hookEnv{t: t, url: url, pool: pool}
	now := time.Now
	if o.Sim != nil {
		e.simulator = simtest.StartTest(t, *o.Sim)
		e.ca = e.simulator.CA()
		now = e.simulator.Now
	} else if o.CA != nil {
		e.ca = o.CA
	} else {
		ca, err := sim.NewCA()
		if err != nil {
			t.Fatal(err)
		}
		e.ca = ca
	}
	roots := append([][]byte{e.ca.RootDER()}, o.ExtraRoots...)
	v, err := appstore.NewVerifier(appstore.VerifierOptions{
		RootCertificates: roots, Environment: appstore.Production,
		BundleID: sim.DefaultBundleID, AppAppleID: sim.DefaultAppAppleID,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.deps = &Deps{
		Pool: pool, Ledger: ledger.New(pool), Verifier: v, Metrics: NewMetrics(), Now: now,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Settings: Settings{RetryBase: 20 * time.Millisecond},
	}
	if e.simulator != nil && !o.NoApple {
		key, err := appstore.ParsePrivateKey(e.simulator.PrivateKeyPEM())
		if err != nil {
			t.Fatal(err)
		}
		budget := appstore.NewRateBudget(appstore.DefaultRateLimits(appstore.Production, 1, nil), 1)
		budget.SetLimits(appstore.Sandbox, appstore.DefaultRateLimits(appstore.Sandbox, 1, nil))
		e.deps.Apple, err = appstore.NewClient(appstore.ClientOptions{
			KeyID: e.simulator.KeyID(), IssuerID: e.simulator.IssuerID(), BundleID: e.simulator.BundleID(), PrivateKey: key,
			Environment: appstore.Production, BaseURL: e.simulator.BaseURL(), SandboxBaseURL: e.simulator.SandboxURL(),
			SandboxFallback: true, Budget: budget,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	timeout := orDuration(o.JobTimeout, 30*time.Second)
	e.river, err = NewRiverClient(e.deps, ClientOptions{Work: o.Work, JobTimeout: timeout, RescueStuckJobsAfter: timeout + 10*time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if o.Work {
		if err := e.river.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = e.river.Stop(ctx)
		})
	}
	httpOpts := o.HTTP
	if o.AdminToken != "" {
		httpOpts.AdminToken = o.AdminToken
	}
	e.server = httptest.NewServer(NewHTTPHandler(e.deps, e.river, httpOpts))
	t.Cleanup(e.server.Close)
	return e
}

// post sends body to the webhook and returns the status code.
func (e *hookEnv) post(body []byte) int {
	e.t.Helper()
	resp, err := http.Post(e.server.URL+"/webhooks/appstore", "application/json", strings.NewReader(string(body)))
	if err != nil {
		e.t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// postSigned wraps a signedPayload in the webhook body and posts it.
func (e *hookEnv) postSigned(signed string) int {
	e.t.Helper()
	body, _ := json.Marshal(map[string]string{"signedPayload": signed})
	return e.post(body)
}

// count returns SELECT count(*) of a query.
func (e *hookEnv) count(q string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// waitIdle waits until no job of kinds is waiting, running or retrying,
// then fails the test if any of them ended other than completed.
func (e *hookEnv) waitIdle(timeout time.Duration, kinds ...string) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		busy := e.count(`SELECT count(*) FROM river_job WHERE kind = ANY($1)
			AND state IN ('available', 'running', 'retryable', 'scheduled', 'pending')`, kinds)
		if busy == 0 {
			break
		}
		if time.Now().After(deadline) {
			rows, _ := e.pool.Query(context.Background(), `SELECT kind, state, attempt, errors::text FROM river_job
				WHERE kind = ANY($1) AND state <> 'completed' LIMIT 5`, kinds)
			var lines []string
			for rows.Next() {
				var kind, state, errs string
				var attempt int
				_ = rows.Scan(&kind, &state, &attempt, &errs)
				lines = append(lines, fmt.Sprintf("%s %s attempt %d %.300s", kind, state, attempt, errs))
			}
			e.t.Fatalf("jobs %v still busy after %s (%d): %v", kinds, timeout, busy, lines)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if bad := e.count(`SELECT count(*) FROM river_job WHERE kind = ANY($1) AND state <> 'completed'`, kinds); bad > 0 {
		var kind, state, errs string
		_ = e.pool.QueryRow(context.Background(), `SELECT kind, state, errors::text FROM river_job
			WHERE kind = ANY($1) AND state <> 'completed' LIMIT 1`, kinds).Scan(&kind, &state, &errs)
		e.t.Fatalf("%d jobs did not complete; e.g. %s %s: %.500s", bad, kind, state, errs)
	}
}

// noteSeq makes transaction ids and UUIDs of built notifications distinct.
var noteSeq atomic.Int64

// testNote is a notification to sign, with its inner payloads.
type testNote struct {
	N  appstore.NotificationPayload
	Tx *appstore.TransactionPayload
	RI *appstore.RenewalInfoPayload
}

// newTestNote returns a DID_RENEW notification of a fresh subscription in
// env, signed at signed.
func newTestNote(env appstore.Environment, signed time.Time) *testNote {
	seq := noteSeq.Add(1)
	otid := fmt.Sprintf("%d", 3000000000000000+seq)
	ms := appstore.MillisOf(signed)
	return &testNote{
		N: appstore.NotificationPayload{
			NotificationType: "DID_RENEW", NotificationUUID: testUUID(seq), Version: "2.0", SignedDate: ms,
			Data: &appstore.NotificationData{
				AppAppleID: sim.DefaultAppAppleID, BundleID: sim.DefaultBundleID,
				BundleVersion: "1.0", Environment: env, Status: appstore.StatusActive,
			},
		},
		Tx: &appstore.TransactionPayload{
			TransactionID: otid, OriginalTransactionID: otid, WebOrderLineItemID: otid,
			BundleID: sim.DefaultBundleID, ProductID: "com.example.monthly", SubscriptionGroupIdentifier: "21000001",
			PurchaseDate: ms, OriginalPurchaseDate: ms, ExpiresDate: appstore.MillisOf(signed.Add(30 * 24 * time.Hour)),
			Quantity: 1, Type: autoRenewable, InAppOwnershipType: "PURCHASED", SignedDate: ms, Environment: env,
			TransactionReason: "PURCHASE", Storefront: "USA", Currency: "USD", Price: 9990,
		},
		RI: &appstore.RenewalInfoPayload{
			OriginalTransactionID: otid, AutoRenewProductID: "com.example.monthly", ProductID: "com.example.monthly",
			AutoRenewStatus: 1, SignedDate: ms, Environment: env, RenewalDate: appstore.MillisOf(signed.Add(30 * 24 * time.Hour)),
		},
	}
}

func testUUID(seq int64) string {
	var b [16]byte
	_, _ = rand.Read(b[:8])
	for i := 0; i < 8; i++ {
		b[8+i] = byte(seq >> (8 * (7 - i)))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// sign signs the inner payloads and the notification with ca.
func (n *testNote) sign(t testing.TB, ca *sim.CA) string {
	t.Helper()
	p := n.N
	if p.Data != nil {
		d := *p.Data
		p.Data = &d
		var err error
		if n.Tx != nil {
			if d.SignedTransactionInfo, err = ca.Sign(n.Tx); err != nil {
				t.Fatal(err)
			}
		}
		if n.RI != nil {
			if d.SignedRenewalInfo, err = ca.Sign(n.RI); err != nil {
				t.Fatal(err)
			}
		}
	}
	s, err := ca.Sign(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testChain is a three-certificate chain built by a test, to sign JWS that
// the simulator's CA cannot produce (no Apple markers, an OCSP responder).
type testChain struct {
	root    *x509.Certificate
	x5c     []string
	leafKey *ecdsa.PrivateKey
}

func newTestChain(t testing.TB, markers bool, ocspURL string) *testChain {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	rootKey, interKey, leafKey := key(), key(), key()
	nb, na := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2045, 1, 1, 0, 0, 0, 0, time.UTC)
	null := []byte{0x05, 0x00}
	serial := int64(1)
	issue := func(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) *x509.Certificate {
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore, tmpl.NotAfter = nb, na
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	rootT := &x509.Certificate{Subject: pkix.Name{CommonName: "test root"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, SubjectKeyId: []byte{1}}
	root := issue(rootT, rootT, &rootKey.PublicKey, rootKey)
	interT := &x509.Certificate{Subject: pkix.Name{CommonName: "test intermediate"}, IsCA: true, BasicConstraintsValid: true,
		MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign, SubjectKeyId: []byte{2}}
	leafT := &x509.Certificate{Subject: pkix.Name{CommonName: "test leaf"}, KeyUsage: x509.KeyUsageDigitalSignature, SubjectKeyId: []byte{3}}
	if markers {
		interT.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 2, 840, 113635, 100, 6, 2, 1}, Value: null}}
		leafT.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 2, 840, 113635, 100, 6, 11, 1}, Value: null}}
	}
	if ocspURL != "" {
		interT.OCSPServer = []string{ocspURL}
		leafT.OCSPServer = []string{ocspURL}
	}
	inter := issue(interT, root, &interKey.PublicKey, rootKey)
	leaf := issue(leafT, inter, &leafKey.PublicKey, interKey)
	enc := base64.StdEncoding.EncodeToString
	return &testChain{root: root, x5c: []string{enc(leaf.Raw), enc(inter.Raw), enc(root.Raw)}, leafKey: leafKey}
}

// sign returns payload as an ES256 JWS with header {alg, x5c}.
func (c *testChain) sign(t testing.TB, alg string, payload any) string {
	t.Helper()
	body, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := sim.SignJWS(c.leafKey, map[string]any{"alg": alg, "x5c": c.x5c}, body)
	if err != nil {
		t.Fatal(err)
	}
	return jws
}

// signNote signs a test notification (inner payloads too) with the chain.
func (c *testChain) signNote(t testing.TB, n *testNote) string {
	p := n.N
	d := *p.Data
	p.Data = &d
	d.SignedTransactionInfo = c.sign(t, "ES256", n.Tx)
	d.SignedRenewalInfo = c.sign(t, "ES256", n.RI)
	return c.sign(t, "ES256", p)
}
