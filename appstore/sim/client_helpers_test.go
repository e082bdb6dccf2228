package sim

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/storesync/storesync/appstore"
)

// noBudget lets every request go at once: the simulator's own limits are
// what these tests exercise, and the Client's 1 request/s budget of some
// endpoints would only make them slow.
type noBudget struct{}

func (noBudget) Wait(ctx context.Context, _ appstore.Environment, _ appstore.Endpoint) error {
	return ctx.Err()
}
func (noBudget) Throttle(appstore.Environment, appstore.Endpoint, time.Time) {}

// newClient returns storesync's own App Store client pointed at s in env,
// with sandbox fallback in production, as storesync configures it.
func newClient(t testing.TB, s *Simulator, env appstore.Environment) *appstore.Client {
	t.Helper()
	key, err := appstore.ParsePrivateKey(s.PrivateKeyPEM())
	if err != nil {
		t.Fatal(err)
	}
	base := s.BaseURL()
	if env == appstore.Sandbox {
		base = s.SandboxURL()
	}
	c, err := appstore.NewClient(appstore.ClientOptions{
		KeyID: s.KeyID(), IssuerID: s.IssuerID(), BundleID: s.BundleID(), PrivateKey: key,
		Environment: env, BaseURL: base, SandboxBaseURL: s.SandboxURL(), SandboxFallback: env == appstore.Production,
		Budget: noBudget{},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newVerifier returns storesync's verifier for env trusting only the
// simulator's root.
func newVerifier(t testing.TB, s *Simulator, env appstore.Environment) *appstore.Verifier {
	t.Helper()
	v, err := appstore.NewVerifier(appstore.VerifierOptions{
		RootCertificates: [][]byte{s.RootDER()}, Environment: env, BundleID: s.BundleID(), AppAppleID: s.AppAppleID(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// historyOf returns the notifications of type typ (every type when "")
// that env's Get Notification History holds from since to now, read with
// the client and verified in full (inner JWS too), oldest first.
func historyOf(t testing.TB, s *Simulator, env appstore.Environment, typ string, since time.Time) []*appstore.VerifiedNotification {
	t.Helper()
	req := appstore.NotificationHistoryRequest{
		StartDate: appstore.MillisOf(since), EndDate: appstore.MillisOf(s.Now().Add(time.Millisecond)), NotificationType: typ,
	}
	v := newVerifier(t, s, env)
	var out []*appstore.VerifiedNotification
	for page, err := range newClient(t, s, env).NotificationHistory(context.Background(), req) {
		if err != nil {
			t.Fatal(err)
		}
		for _, item := range page.NotificationHistory {
			vn, err := v.VerifyNotificationDeep(item.SignedPayload)
			if err != nil {
				t.Fatalf("notification does not verify: %v", err)
			}
			out = append(out, vn)
		}
	}
	return out
}

// newUUID is a fresh random UUID for request identifiers.
func newUUID() string {
	return uuidFrom(rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())))
}

// lastNotification returns the newest notification about subscription
// otid, signed as the webhook got it and verified in full (inner JWS too)
// with storesync's verifier; it fails the test when there is none.
func lastNotification(t testing.TB, s *Simulator, otid string) *appstore.VerifiedNotification {
	t.Helper()
	tr, ok := s.TruthOf(otid)
	if !ok || len(tr.Notifications) == 0 {
		t.Fatalf("no notification about %s", otid)
	}
	uuid := tr.Notifications[len(tr.Notifications)-1]
	w := s.world
	w.mu.RLock()
	var n *notification
	for _, x := range w.env(tr.Environment).log {
		if x.uuid == uuid {
			n = x
		}
	}
	w.mu.RUnlock()
	if n == nil {
		t.Fatalf("notification %s is not in the %s log", uuid, tr.Environment)
	}
	signed, err := n.signedPayload(w)
	if err != nil {
		t.Fatal(err)
	}
	vn, err := newVerifier(t, s, tr.Environment).VerifyNotificationDeep(signed)
	if err != nil {
		t.Fatalf("notification %s does not verify: %v", uuid, err)
	}
	if vn.Payload.NotificationUUID != uuid || vn.Transaction == nil || vn.RenewalInfo == nil ||
		vn.Transaction.OriginalTransactionID != otid || int(vn.Payload.Data.Status) != tr.StatusCode {
		t.Fatalf("notification %s: %+v, data %+v; truth status %d", uuid, vn.Payload, vn.Payload.Data, tr.StatusCode)
	}
	return vn
}

// pickTruth returns the first production subscription ok accepts; it
// fails the test when none does.
func pickTruth(t testing.TB, s *Simulator, what string, ok func(SubscriptionTruth) bool) SubscriptionTruth {
	t.Helper()
	for _, tr := range s.Truth() {
		if tr.Environment == appstore.Production && ok(tr) {
			return tr
		}
	}
	t.Fatalf("no %s subscription", what)
	return SubscriptionTruth{}
}

// activePurchase accepts active, auto-renewing, purchased subscriptions
// of s with more than a day left and no offer running.
func activePurchase(s *Simulator) func(SubscriptionTruth) bool {
	return func(tr SubscriptionTruth) bool {
		return tr.Status == "active" && tr.AutoRenewStatus && tr.InAppOwnershipType == "PURCHASED" &&
			tr.OfferType == 0 && tr.ExpiresDate.Sub(s.Now()) > day
	}
}
