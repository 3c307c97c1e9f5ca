package app_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/klingfan/klingfan/internal/app"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/store"
)

// expectBackupNeedsClientCert: against a server started with
// --tls-client-ca, `klingfan backup` without a client certificate is
// refused, saying which flags present one, and with --cert/--key (klingctl's names; --tls-cert and
// --tls-key are the same flags) writes a backup.
func expectBackupNeedsClientCert(t *testing.T) {
	pki := apptest.NewPKI(t, "")
	srv := apptest.Start(t, "", apptest.WithTLS(pki, true), apptest.WithEnv("KLINGAI_WEBHOOK_SECRET", secret))
	lookup := func(k string) (string, bool) { return apptest.AdminToken, k == "KLINGFAN_ADMIN_TOKEN" }
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"CA only", []string{"--tls-ca", pki.CAFile}, "needs a client certificate: --cert and --key"},
		{"klingctl's flag names", []string{"--ca", pki.CAFile, "--cert", pki.ClientCertFile, "--key", pki.ClientKeyFile}, ""},
		{"tls-prefixed flag names", []string{"--tls-ca", pki.CAFile, "--tls-cert", pki.ClientCertFile, "--tls-key", pki.ClientKeyFile}, ""},
		{"certificate without key", []string{"--tls-ca", pki.CAFile, "--cert", pki.ClientCertFile}, "go together"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "backup.tar")
			args := append([]string{"--to", file, "--server", srv.GRPC}, tt.args...)
			err := app.BackupCommand(context.Background(), args, lookup, io.Discard)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("backup: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("backup: %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// expectNATSListenNeedsToken: the embedded NATS server opened with
// --nats-listen ":0" listens on loopback and refuses a client without the
// token kept in the data directory (internal/store's TestNATSListenNeedsToken
// covers the cases in detail).
func expectNATSListenNeedsToken(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(context.Background(), store.Config{DataDir: dir, NATSListen: ":0"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	addr := s.NATSClientURL()
	if !strings.Contains(addr, "127.0.0.1:") {
		t.Errorf("NATS listens on %s, want loopback", addr)
	}
	if nc, err := nats.Connect(addr, nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("a client without the token connected")
	}
	raw, err := os.ReadFile(filepath.Join(dir, store.NATSTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(addr, nats.Token(strings.TrimSpace(string(raw))), nats.NoReconnect())
	if err != nil {
		t.Fatalf("a client with the token: %v", err)
	}
	nc.Close()
}
