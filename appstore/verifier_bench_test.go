package appstore

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"testing"
)

// Run: go test -run XXX -bench Verify -cpu 1 ./appstore/
//
// Each benchmark reports verifications/s. "warm" is the webhook's steady
// state (chain cached: one P-256 verification, SHA-256 of ~15 KB, a base64
// and a JSON decode); "cold" re-checks the chain every time; "bare" is one
// P-256 ECDSA verification alone, the floor for "warm".

// benchNotification is a realistic SUBSCRIBED notification (~15 KB) whose
// data carries a signed transaction and signed renewal info, all signed
// with Apple's test leaf.
func benchNotification(b *testing.B) (*testChain, string) {
	c := loadTestChain(b)
	return c, realisticNotification(b, c,
		c.sign(b, sandboxModel(b, "signedTransaction.json")),
		c.sign(b, sandboxModel(b, "signedRenewalInfo.json")))
}

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s")
}

func BenchmarkVerifyNotification(b *testing.B) {
	c, jws := benchNotification(b)
	run := func(b *testing.B, v *Verifier) {
		if _, err := v.VerifyNotification(jws); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(jws)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.VerifyNotification(jws); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b)
	}
	b.Run("warm", func(b *testing.B) { run(b, newTestVerifier(b, c, nil)) })
	b.Run("cold", func(b *testing.B) {
		run(b, newTestVerifier(b, c, func(o *VerifierOptions) { o.ChainCacheSize = -1 }))
	})
	b.Run("warm_parallel", func(b *testing.B) {
		v := newTestVerifier(b, c, nil)
		b.SetBytes(int64(len(jws)))
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := v.VerifyNotification(jws); err != nil {
					b.Error(err)
					return
				}
			}
		})
		reportRate(b)
	})
}

// BenchmarkVerifyNotificationDeep verifies the notification and both inner
// JWS (three ECDSA verifications).
func BenchmarkVerifyNotificationDeep(b *testing.B) {
	c, jws := benchNotification(b)
	v := newTestVerifier(b, c, nil)
	if _, err := v.VerifyNotificationDeep(jws); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.VerifyNotificationDeep(jws); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

// BenchmarkVerifyBareP256 is one P-256 ECDSA verification, for reference.
func BenchmarkVerifyBareP256(b *testing.B) {
	c := loadTestChain(b)
	sum := sha256.Sum256([]byte("payload"))
	sig, err := ecdsa.SignASN1(rand.Reader, c.leafKey, sum[:])
	if err != nil {
		b.Fatal(err)
	}
	pub := &c.leafKey.PublicKey
	b.ReportAllocs()
	for b.Loop() {
		if !ecdsa.VerifyASN1(pub, sum[:], sig) {
			b.Fatal("signature does not verify")
		}
	}
	reportRate(b)
}
