package store_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/store"
)

func openExternal(t *testing.T, cfg store.Config) (*store.Store, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if cfg.Logger == nil {
		cfg.Logger = discard
	}
	s, err := store.Open(ctx, cfg)
	if err == nil {
		t.Cleanup(func() { _ = s.Close() })
	}
	return s, err
}

func TestOpenExternalCredentials(t *testing.T) {
	nkeyUser, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	nkeyPub, _ := nkeyUser.PublicKey()
	nkeySeed, _ := nkeyUser.Seed()
	seedFile := filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(seedFile, nkeySeed, 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		server    func(*server.Options)
		cfg       store.Config
		ok        bool
		forbidden string // must never appear in an error
	}{
		{
			name:   "user and password",
			server: func(o *server.Options) { o.Username, o.Password = "klingfan", "pw-correct-horse" },
			cfg:    store.Config{User: "klingfan", Password: "pw-correct-horse"},
			ok:     true,
		},
		{
			name:      "wrong password",
			server:    func(o *server.Options) { o.Username, o.Password = "klingfan", "pw-correct-horse" },
			cfg:       store.Config{User: "klingfan", Password: "pw-battery-staple"},
			forbidden: "pw-battery-staple",
		},
		{
			name:   "token",
			server: func(o *server.Options) { o.Authorization = "tok-s3cr3t" },
			cfg:    store.Config{Token: "tok-s3cr3t"},
			ok:     true,
		},
		{
			name:      "no credentials",
			server:    func(o *server.Options) { o.Authorization = "tok-s3cr3t" },
			forbidden: "tok-s3cr3t",
		},
		{
			name:   "nkey seed file",
			server: func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: nkeyPub}} },
			cfg:    store.Config{NKeyFile: seedFile},
			ok:     true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ns := apptest.StartNATS(t, tc.server)
			cfg := tc.cfg
			cfg.URL = ns.ClientURL()
			s, err := openExternal(t, cfg)
			if !tc.ok {
				if err == nil {
					t.Fatal("Open succeeded, want an error")
				}
				if tc.forbidden != "" && strings.Contains(err.Error(), tc.forbidden) {
					t.Errorf("error %q reveals a credential", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			mustAppend(t, s, testEvent("wh", "d1", "j"))
		})
	}
}

func TestOpenExternalMutualTLS(t *testing.T) {
	pki := apptest.NewPKI(t, "")
	ns := apptest.StartNATS(t, func(o *server.Options) {
		cert, err := tls.LoadX509KeyPair(pki.ServerCertFile, pki.ServerKeyFile)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AddCert(mustParseCA(t, pki.CAFile))
		o.TLSConfig = &tls.Config{
			Certificates: []tls.Certificate{cert},
			ClientCAs:    pool,
			ClientAuth:   tls.RequireAndVerifyClientCert,
			MinVersion:   tls.VersionTLS12,
		}
		o.TLS, o.TLSVerify, o.TLSTimeout = true, true, 2
	})

	if _, err := openExternal(t, store.Config{URL: ns.ClientURL(), TLSCAFile: pki.CAFile}); err == nil {
		t.Error("Open without a client certificate succeeded against a server that requires one")
	}
	s, err := openExternal(t, store.Config{
		URL: ns.ClientURL(), TLSCAFile: pki.CAFile, TLSCertFile: pki.ClientCertFile, TLSKeyFile: pki.ClientKeyFile,
	})
	if err != nil {
		t.Fatalf("Open over mutual TLS: %v", err)
	}
	mustAppend(t, s, testEvent("wh", "d1", "j"))
}

func mustParseCA(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s holds no PEM block", file)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The seed URLs may carry credentials; errors and logs show them redacted.
func TestOpenExternalRedactsURLCredentials(t *testing.T) {
	var logs bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := store.Open(ctx, store.Config{
		URL:    "nats://klingfan:pw-in-url@127.0.0.1:1,nats://tok-in-url@127.0.0.1:2",
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err == nil {
		t.Fatal("Open on unreachable URLs succeeded")
	}
	for _, secret := range []string{"pw-in-url", "tok-in-url"} {
		if strings.Contains(err.Error(), secret) || strings.Contains(logs.String(), secret) {
			t.Errorf("%q leaked: error %q, logs %q", secret, err, logs.String())
		}
	}
	if !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("error %q does not name the servers", err)
	}
}

func TestOpenExternalSettingsNeedURL(t *testing.T) {
	tests := map[string]store.Config{
		"user without URL":          {DataDir: t.TempDir(), User: "u", Password: "p"},
		"TLS CA without URL":        {DataDir: t.TempDir(), TLSCAFile: "ca.pem"},
		"password without user":     {URL: "nats://127.0.0.1:1", Password: "p"},
		"user and token":            {URL: "nats://127.0.0.1:1", User: "u", Token: "t"},
		"creds and nkey":            {URL: "nats://127.0.0.1:1", CredsFile: "a", NKeyFile: "b"},
		"client cert without a key": {URL: "nats://127.0.0.1:1", TLSCertFile: "c.pem"},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			cfg.Logger = discard
			s, err := store.Open(context.Background(), cfg)
			if err == nil {
				_ = s.Close()
				t.Fatal("Open succeeded, want an error")
			}
			if errors.Is(err, store.ErrUnavailable) {
				t.Errorf("a configuration mistake reported as unavailability: %v", err)
			}
		})
	}
}

// On an external deployment, settings that differ from the existing stream
// fail start-up with every difference listed, unless UpdateAssets applies
// them deliberately; settings that match need nothing.
func TestOpenExternalDrift(t *testing.T) {
	ns := apptest.StartNATS(t, nil)
	base := store.Config{URL: ns.ClientURL(), Retention: 24 * time.Hour, DuplicateWindow: time.Hour}
	s, err := openExternal(t, base)
	if err != nil {
		t.Fatal(err)
	}
	seq := mustAppend(t, s, testEvent("wh", "d1", "j"))
	_ = s.Close()

	changed := base
	changed.Retention, changed.DuplicateWindow = 48*time.Hour, 30*time.Minute
	_, err = openExternal(t, changed)
	var drift *store.DriftError
	if !errors.As(err, &drift) || !errors.Is(err, store.ErrConfigDrift) {
		t.Fatalf("Open with other settings = %v, want a DriftError", err)
	}
	for _, want := range []string{
		"stream KLINGFAN_EVENTS: max age (--retention) is 24h0m0s on the server, configured 48h0m0s",
		"stream KLINGFAN_EVENTS: duplicate window (--dedup-window) is 1h0m0s on the server, configured 30m0s",
		"stream KLINGFAN_EVENT_IDS: max age (--retention) is 24h0m0s on the server, configured 48h0m0s",
		"--nats-update-config",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if len(drift.Differences) != 3 {
		t.Errorf("differences = %v, want the log's retention and duplicate window and the index's retention", drift.Differences)
	}

	var logs apptest.SyncBuffer
	changed.UpdateAssets = true
	changed.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	s, err = openExternal(t, changed)
	if err != nil {
		t.Fatalf("Open with UpdateAssets: %v", err)
	}
	if !strings.Contains(logs.String(), "changed JetStream setting") {
		t.Errorf("applied changes were not logged: %s", logs.String())
	}
	if ev, err := s.Get(context.Background(), seq); err != nil || ev.GetDeliveryId() != "d1" {
		t.Errorf("the update lost data: Get(%d) = (%v, %v)", seq, ev, err)
	}
	_ = s.Close()

	changed.UpdateAssets, changed.Logger = false, nil
	if _, err := openExternal(t, changed); err != nil {
		t.Errorf("Open with the now matching settings: %v", err)
	}
}

// A difference JetStream cannot apply in place fails start-up even with
// UpdateAssets, and says how to resolve it.
func TestOpenExternalFixedDrift(t *testing.T) {
	ns := apptest.StartNATS(t, nil)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: store.StreamName, Subjects: []string{"klingfan.events.>"}, Storage: jetstream.MemoryStorage,
	}); err != nil {
		t.Fatal(err)
	}
	_, err = openExternal(t, store.Config{URL: ns.ClientURL(), UpdateAssets: true})
	if !errors.Is(err, store.ErrConfigDrift) || !strings.Contains(err.Error(), "storage is Memory on the server, configured File (cannot be changed in place)") ||
		!strings.Contains(err.Error(), "nats stream rm "+store.StreamName) {
		t.Fatalf("Open over a memory stream = %v, want a fixed DriftError", err)
	}
}

// The embedded server belongs to this process: a changed retention is
// applied (and logged) as before, not refused.
func TestOpenEmbeddedAppliesChanges(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(context.Background(), store.Config{DataDir: dir, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	var logs apptest.SyncBuffer
	s, err = store.Open(context.Background(), store.Config{DataDir: dir, Retention: 24 * time.Hour, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("reopen with another retention: %v", err)
	}
	defer s.Close()
	if !strings.Contains(logs.String(), `setting="max age (--retention)" was=168h0m0s now=24h0m0s`) {
		t.Errorf("the change was not logged: %s", logs.String())
	}
}

// Every asset follows the one policy, not only the log: a setting of
// another owner's asset that JetStream cannot change in place fails
// EnsureStream even with UpdateAssets, naming that stream and the steps.
func TestEnsureStreamFixedDriftNamesTheStream(t *testing.T) {
	ns := apptest.StartNATS(t, nil)
	s, err := openExternal(t, store.Config{URL: ns.ClientURL(), UpdateAssets: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.JetStream().CreateStream(context.Background(), jetstream.StreamConfig{
		Name: store.GroupsStreamName, Subjects: []string{store.GroupsSubjectPrefix + ">"}, Storage: jetstream.MemoryStorage,
	}); err != nil {
		t.Fatal(err)
	}
	_, err = s.EnsureStream(context.Background(), store.GroupsStreamName)
	var drift *store.DriftError
	if !errors.As(err, &drift) || !strings.Contains(err.Error(), "stream KLINGFAN_GROUPS: storage is Memory on the server, configured File (cannot be changed in place)") ||
		!strings.Contains(err.Error(), "nats stream rm "+store.GroupsStreamName) || strings.Contains(err.Error(), "nats stream rm "+store.StreamName) {
		t.Fatalf("EnsureStream over a memory groups stream = %v, want a fixed DriftError naming it", err)
	}
}

// On a cluster a size cap klingfan does not set is its operator's: a cap
// put on the job states' bucket is neither drift nor overwritten, while a
// setting klingfan does own still is.
func TestEnsureBucketLeavesAnOperatorsCap(t *testing.T) {
	ns := apptest.StartNATS(t, nil)
	s, err := openExternal(t, store.Config{URL: ns.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.EnsureBucket(ctx, store.JobsBucketName); err != nil {
		t.Fatal(err)
	}
	js := s.JetStream()
	update := func(change func(*jetstream.StreamConfig)) {
		t.Helper()
		st, err := js.Stream(ctx, "KV_"+store.JobsBucketName)
		if err != nil {
			t.Fatal(err)
		}
		cfg := st.CachedInfo().Config
		change(&cfg)
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	update(func(c *jetstream.StreamConfig) { c.MaxBytes, c.Discard = 64<<20, jetstream.DiscardOld })
	if _, err := s.EnsureBucket(ctx, store.JobsBucketName); err != nil {
		t.Fatalf("EnsureBucket over an operator's cap: %v", err)
	}
	st, err := js.Stream(ctx, "KV_"+store.JobsBucketName)
	if err != nil {
		t.Fatal(err)
	}
	if c := st.CachedInfo().Config; c.MaxBytes != 64<<20 || c.Discard != jetstream.DiscardOld {
		t.Errorf("the operator's cap became %d %s", c.MaxBytes, c.Discard)
	}
	update(func(c *jetstream.StreamConfig) { c.MaxMsgsPerSubject = 4 })
	if _, err := s.EnsureBucket(ctx, store.JobsBucketName); !errors.Is(err, store.ErrConfigDrift) ||
		!strings.Contains(err.Error(), "key-value bucket klingfan-jobs: history is 4 on the server, configured 1") {
		t.Errorf("EnsureBucket over another history = %v, want a DriftError naming it", err)
	}
}
