package registry_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/registry"
	"github.com/klingfan/klingfan/internal/store"
	"github.com/klingfan/klingfan/internal/verify"
)

const (
	keyA = "key-a-0123456789abcdefghijklmnopqrstuvwxyz"
	keyB = "key-b-0123456789abcdefghijklmnopqrstuvwxyz"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func openRegistry(t *testing.T, st *store.Store, key string) *registry.Registry {
	t.Helper()
	cfg := registry.Config{KV: st.KV(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Schemes: verify.SchemeTable{}}
	if key != "" {
		s, err := registry.NewSealer(key)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Sealer = s
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r, err := registry.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSecretsSealedAtRest(t *testing.T) {
	st := openStore(t)
	secret := "whsec_" + strings.Repeat("c2VjcmV0", 4)
	r := openRegistry(t, st, keyA)
	now := time.Unix(1781080794, 0)
	_, err := r.Create(context.Background(), &registry.Webhook{
		ID: "sealed", Scheme: gatewayv1.SignatureScheme_SIGNATURE_SCHEME_STANDARD_WEBHOOKS, Active: true,
		Secrets: []registry.Secret{{Value: secret}}, CreateTime: now, UpdateTime: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := st.KV().Get(context.Background(), "sealed")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw.Value(), []byte(secret)) || bytes.Contains(raw.Value(), []byte("c2VjcmV0")) {
		t.Fatalf("the bucket holds the secret in plain text: %s", raw.Value())
	}

	cases := []struct {
		name     string
		key      string
		readable bool
	}{
		{"same key", keyA, true},
		{"rotated: new key first, old key kept", keyB + "," + keyA, true},
		{"wrong key", keyB, false},
		{"no key", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			other := openRegistry(t, st, tc.key)
			w, ok := other.Get("sealed")
			if ok != tc.readable {
				t.Fatalf("readable = %v, want %v", ok, tc.readable)
			}
			if ok && (len(w.Secrets) != 1 || w.Secrets[0].Value != secret || len(w.Keys(now)) != 1) {
				t.Errorf("secret not recovered: %d secrets", len(w.Secrets))
			}
		})
	}

	t.Run("a rewrite re-seals with the new key", func(t *testing.T) {
		rotated := openRegistry(t, st, keyB+","+keyA)
		if _, err := rotated.Update(context.Background(), "sealed", func(w *registry.Webhook) error { w.DisplayName = "touched"; return nil }); err != nil {
			t.Fatal(err)
		}
		onlyNew := openRegistry(t, st, keyB)
		if _, ok := onlyNew.Get("sealed"); !ok {
			t.Error("after a rewrite the old key should no longer be needed")
		}
	})
}

func TestNewSealerRejectsShortKeys(t *testing.T) {
	for _, spec := range []string{"", "short", keyA + ",short"} {
		if _, err := registry.NewSealer(spec); err == nil {
			t.Errorf("NewSealer(%q) accepted a short key", spec)
		}
	}
}

// A registration sealed with a key this process lacks is reported by
// Unreadable (the server then refuses to start or to be ready), and
// SealAll seals plain-text secrets with the current key, leaving it alone.
func TestUnreadableAndSealAll(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	plain := openRegistry(t, st, "")
	if _, err := plain.Create(ctx, &registry.Webhook{ID: "plain", Scheme: gatewayv1.SignatureScheme_SIGNATURE_SCHEME_KLING_SIGNATURE,
		Secrets: []registry.Secret{{Value: "plain-secret-0123456789"}}, Active: true}); err != nil {
		t.Fatal(err)
	}
	a := openRegistry(t, st, keyA)
	sealed, err := a.SealAll(ctx)
	if err != nil || len(sealed) != 1 || sealed[0] != "plain" {
		t.Fatalf("SealAll = %v, %v; want [plain]", sealed, err)
	}
	if again, err := a.SealAll(ctx); err != nil || len(again) != 0 {
		t.Fatalf("a second SealAll = %v, %v; want nothing to do", again, err)
	}
	e, err := st.KV().Get(ctx, "plain")
	if err != nil || bytes.Contains(e.Value(), []byte("plain-secret-0123456789")) {
		t.Fatalf("the stored registration still holds the secret in plain text (%v)", err)
	}
	if got := a.Unreadable(); len(got) != 0 {
		t.Fatalf("Unreadable with the right key = %v", got)
	}
	b := openRegistry(t, st, keyB)
	if got := b.Unreadable(); len(got) != 1 || got[0] != "plain" {
		t.Fatalf("Unreadable with the wrong key = %v, want [plain]", got)
	}
	if sealedB, err := b.SealAll(ctx); err != nil || len(sealedB) != 0 {
		t.Fatalf("SealAll with the wrong key = %v, %v; want nothing overwritten", sealedB, err)
	}
	if after, err := st.KV().Get(ctx, "plain"); err != nil || after.Revision() != e.Revision() {
		t.Fatalf("SealAll with the wrong key rewrote the registration (%v)", err)
	}
}
