package config_test

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klingfan/klingfan/internal/config"
)

func TestParseSize(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "1048576", want: 1 << 20},
		{in: "512MiB", want: 512 << 20},
		{in: "20 GiB", want: 20 << 30},
		{in: "2gb", want: 2e9},
		{in: "64KiB", want: 64 << 10},
		{in: "10B", want: 10},
		{in: "", bad: true},
		{in: "-1MiB", bad: true},
		{in: "1.5GiB", bad: true},
		{in: "9999999TiB", bad: true},
		{in: "lots", bad: true},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := config.ParseSize(c.in)
			if c.bad {
				if err == nil {
					t.Fatalf("ParseSize(%q) = %d, want an error", c.in, got)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("ParseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
			}
		})
	}
}

func TestStorageFlags(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		wantErr string
		check   func(t *testing.T, c config.Config)
	}{
		{name: "defaults", check: func(t *testing.T, c config.Config) {
			if c.MaxStoreBytes != 0 || c.RetentionBytes != 0 || c.RetentionPolicy != config.RetentionDiscardOldest {
				t.Errorf("defaults: %d %d %q", c.MaxStoreBytes, c.RetentionBytes, c.RetentionPolicy)
			}
		}},
		{name: "set", args: []string{"--max-store-bytes", "2GiB", "--retention-bytes", "1GiB", "--retention-policy", "refuse"},
			check: func(t *testing.T, c config.Config) {
				if c.MaxStoreBytes != 2<<30 || c.RetentionBytes != 1<<30 || c.RetentionPolicy != config.RetentionRefuse {
					t.Errorf("got %d %d %q", c.MaxStoreBytes, c.RetentionBytes, c.RetentionPolicy)
				}
			}},
		{name: "unknown policy", args: []string{"--retention-policy", "drop-newest"}, wantErr: "--retention-policy"},
		{name: "budget too small", args: []string{"--max-store-bytes", "1000"}, wantErr: "at least 1MiB"},
		{name: "log above budget", args: []string{"--max-store-bytes", "1GiB", "--retention-bytes", "2GiB"}, wantErr: "exceeds --max-store-bytes"},
		{name: "budget with a cluster", args: []string{"--nats-url", "nats://n:4222", "--max-store-bytes", "1GiB"}, wantErr: "--retention-bytes"},
		{name: "cluster takes retention bytes", args: []string{"--nats-url", "nats://n:4222", "--retention-bytes", "1GiB"},
			check: func(t *testing.T, c config.Config) {
				if c.RetentionBytes != 1<<30 {
					t.Errorf("RetentionBytes = %d", c.RetentionBytes)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := config.Parse(c.args, env(nil), io.Discard)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, cfg)
		})
	}
}

// The environment file supplies KLINGFAN_* settings (and secrets), the real
// environment wins over it, and the command line over both; parsing it
// again after an edit is how SIGHUP reloads the storage limits.
func TestEnvFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "klingfan.env")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("# storage\nKLINGFAN_MAX_STORE_BYTES=1GiB\nexport KLINGFAN_RETENTION_POLICY='refuse'\n\nKLINGFAN_SECRET_KEY=\"" + strings.Repeat("k", 32) + "\"\nKLINGFAN_HTTP_ADDR=:9000\n")
	cfg, err := config.Parse([]string{"--env-file", file, "--http-addr", ":7000"}, env(map[string]string{"KLINGFAN_RETENTION_BYTES": "100MiB"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxStoreBytes != 1<<30 || cfg.RetentionPolicy != config.RetentionRefuse || cfg.RetentionBytes != 100<<20 ||
		cfg.SecretKey != strings.Repeat("k", 32) || cfg.HTTPAddr != ":7000" {
		t.Fatalf("from the env file: %+v", cfg)
	}
	write("KLINGFAN_MAX_STORE_BYTES=4GiB\n")
	cfg, err = config.Parse(nil, env(map[string]string{"KLINGFAN_ENV_FILE": file}), io.Discard)
	if err != nil || cfg.MaxStoreBytes != 4<<30 {
		t.Fatalf("after an edit, via KLINGFAN_ENV_FILE: %d, %v", cfg.MaxStoreBytes, err)
	}
	write("not a setting\n")
	if _, err := config.Parse([]string{"--env-file=" + file}, env(nil), io.Discard); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("a malformed env file: %v, want an error naming the line", err)
	}
	if _, err := config.Parse([]string{"--env-file", filepath.Join(t.TempDir(), "missing")}, env(nil), io.Discard); err == nil {
		t.Fatal("a missing env file was accepted")
	}
}
