package appstore

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/storesync/storesync/appstore/applevectors"
)

// Apple's own fixtures and the answers Apple's ReceiptUtility gives for them.
func TestExtractTransactionIDFromAppReceiptAppleVectors(t *testing.T) {
	withTx := strings.TrimSpace(applevectors.Text(t, "tests/resources/xcode/xcode-app-receipt-with-transaction"))
	id, err := ExtractTransactionIDFromAppReceipt(withTx)
	if err != nil || id != "0" {
		t.Fatalf("with transaction: got %q, %v; want \"0\"", id, err)
	}
	empty := strings.TrimSpace(applevectors.Text(t, "tests/resources/xcode/xcode-app-receipt-empty"))
	id, err = ExtractTransactionIDFromAppReceipt(empty)
	if !errors.Is(err, ErrReceiptWithoutTransaction) || id != "" {
		t.Fatalf("empty receipt: got %q, %v; want ErrReceiptWithoutTransaction", id, err)
	}
	// The same receipts as companies stored them: URL-safe, unpadded, wrapped.
	mangled := strings.TrimRight(strings.NewReplacer("+", "-", "/", "_").Replace(withTx), "=")
	var wrapped strings.Builder
	for i := 0; i < len(mangled); i += 76 {
		wrapped.WriteString(mangled[i:min(i+76, len(mangled))] + "\n")
	}
	if id, err := ExtractTransactionIDFromAppReceipt(wrapped.String()); err != nil || id != "0" {
		t.Fatalf("URL-safe wrapped receipt: got %q, %v", id, err)
	}
}

func TestExtractTransactionIDFromTransactionReceiptAppleVector(t *testing.T) {
	legacy := strings.TrimSpace(applevectors.Text(t, "tests/resources/mock_signed_data/legacyTransaction"))
	id, err := ExtractTransactionIDFromTransactionReceipt(legacy)
	if err != nil || id != "33993399" {
		t.Fatalf("got %q, %v; want 33993399", id, err)
	}
	// An app receipt is not a transaction receipt, and the reverse.
	if _, err := ExtractTransactionIDFromTransactionReceipt(strings.TrimSpace(applevectors.Text(t, "tests/resources/xcode/xcode-app-receipt-empty"))); !errors.Is(err, ErrReceiptWithoutTransaction) {
		t.Fatalf("app receipt as transaction receipt: %v", err)
	}
	if _, err := ExtractTransactionIDFromAppReceipt(legacy); err == nil || errors.Is(err, ErrReceiptWithoutTransaction) {
		t.Fatalf("transaction receipt as app receipt: %v, want a format error", err)
	}
}

func TestExtractTransactionIDRejectsBadInput(t *testing.T) {
	for name, in := range map[string]string{
		"empty":        "",
		"not base64":   "%%%",
		"not ASN.1":    base64.StdEncoding.EncodeToString([]byte("hello world")),
		"truncated":    strings.TrimSpace(applevectors.Text(t, "tests/resources/xcode/xcode-app-receipt-with-transaction"))[:200],
		"too long":     strings.Repeat("A", MaxReceiptLength+4),
		"deep nesting": base64.StdEncoding.EncodeToString([]byte(strings.Repeat("\x30\x80", 10000))),
	} {
		if id, err := ExtractTransactionIDFromAppReceipt(in); err == nil || id != "" {
			t.Errorf("%s: got %q, %v; want an error", name, id, err)
		} else if !strings.Contains(err.Error(), "receipt") {
			t.Errorf("%s: error %q does not name the input", name, err)
		}
		if _, err := ExtractTransactionIDFromTransactionReceipt(in); err == nil {
			t.Errorf("%s: transaction receipt accepted", name)
		}
	}
}
