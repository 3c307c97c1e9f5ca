package store_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/klingfan/klingfan/internal/store"
)

// TestNATSListenNeedsToken opens the embedded server to clients and proves
// that a client without the generated token is refused, one with it gets
// in, the server listens on loopback when only a port is given, and the
// token survives a restart.
func TestNATSListenNeedsToken(t *testing.T) {
	dir := t.TempDir()
	open := func() (*store.Store, string) {
		t.Helper()
		s, err := store.Open(context.Background(), store.Config{DataDir: dir, NATSListen: ":0", Logger: discard})
		if err != nil {
			t.Fatalf("Open with NATSListen: %v", err)
		}
		if err := s.Ready(context.Background()); err != nil {
			t.Fatalf("Ready: %v (the in-process connection must present the token)", err)
		}
		return s, s.NATSClientURL()
	}
	s, addr := open()
	u, err := url.Parse(addr)
	if err != nil {
		t.Fatal(err)
	}
	if h := u.Hostname(); h != "127.0.0.1" {
		t.Errorf("listening on %q, want loopback when only a port is given", h)
	}

	path := filepath.Join(dir, store.NATSTokenFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("no token file: %v", err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("token file mode %04o, want 0600", perm)
	}
	raw, _ := os.ReadFile(path)
	tok := strings.TrimSpace(string(raw))

	tests := map[string]struct {
		opts    []nats.Option
		wantErr bool
	}{
		"no credential":    {wantErr: true},
		"wrong token":      {opts: []nats.Option{nats.Token("x" + tok)}, wantErr: true},
		"generated token":  {opts: []nats.Option{nats.Token(tok)}},
		"user as password": {opts: []nats.Option{nats.UserInfo("klingfan", tok)}, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			nc, err := nats.Connect(addr, append(tc.opts, nats.NoReconnect())...)
			if tc.wantErr {
				if err == nil {
					nc.Close()
					t.Fatal("connected without the token")
				}
				if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization") {
					t.Fatalf("err = %v, want an authorization violation", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Connect with the token: %v", err)
			}
			defer nc.Close()
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
		})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2, addr2 := open()
	defer s2.Close()
	nc, err := nats.Connect(addr2, nats.Token(tok), nats.NoReconnect())
	if err != nil {
		t.Fatalf("the token kept in the data directory no longer works after a restart: %v", err)
	}
	nc.Close()
}

// TestNATSTokenFileRefusedWhenShared refuses to start on a token file that
// others may have read.
func TestNATSTokenFileRefusedWhenShared(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, store.NATSTokenFile), []byte("0123456789abcdefghijkl\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(context.Background(), store.Config{DataDir: dir, NATSListen: "127.0.0.1:0", Logger: discard})
	if err == nil {
		s.Close()
		t.Fatal("Open accepted a world-readable NATS token file")
	}
	if !strings.Contains(err.Error(), "mode 0644") {
		t.Fatalf("err = %v, want it to name the mode", err)
	}
}
