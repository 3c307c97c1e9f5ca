package config_test

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/klingfan/klingfan/internal/config"
)

func env(kv map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := kv[k]
		return v, ok
	}
}

func TestParse(t *testing.T) {
	cases := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(t *testing.T, c config.Config)
	}{
		{"defaults", nil, nil, func(t *testing.T, c config.Config) {
			if c.HTTPAddr != ":8080" || c.GRPCAddr != ":9090" || c.DataDir != "./data" || c.Retention != 168*time.Hour ||
				c.Replicas != 1 || c.PublicURL != "http://localhost:8080" || c.MaxBodyBytes != 1<<20 || !c.SyncAlways {
				t.Errorf("defaults = %+v", c)
			}
		}},
		{"environment sets a flag", nil, map[string]string{"KLINGFAN_HTTP_ADDR": "127.0.0.1:8181"}, func(t *testing.T, c config.Config) {
			if c.HTTPAddr != "127.0.0.1:8181" || c.PublicURL != "http://localhost:8181" {
				t.Errorf("HTTPAddr = %q, PublicURL = %q", c.HTTPAddr, c.PublicURL)
			}
		}},
		{"command line beats environment", []string{"--retention", "24h"}, map[string]string{"KLINGFAN_RETENTION": "48h"}, func(t *testing.T, c config.Config) {
			if c.Retention != 24*time.Hour {
				t.Errorf("Retention = %s", c.Retention)
			}
		}},
		{"secrets only from the environment", nil, map[string]string{"KLINGAI_WEBHOOK_SECRET": "s", "KLINGFAN_ADMIN_TOKEN": "t"}, func(t *testing.T, c config.Config) {
			if c.KlingaiSecret != "s" || c.AdminToken != "t" {
				t.Errorf("secrets not read: %q %q", c.KlingaiSecret, c.AdminToken)
			}
		}},
		{"external cluster defaults to three replicas", []string{"--nats-url", "nats://a:4222"}, nil, func(t *testing.T, c config.Config) {
			if c.Replicas != 3 {
				t.Errorf("Replicas = %d", c.Replicas)
			}
		}},
		{"sync always", []string{"--sync", "always"}, nil, func(t *testing.T, c config.Config) {
			if !c.SyncAlways {
				t.Error("SyncAlways not set")
			}
		}},
		{"sync interval opts out", []string{"--sync", "interval"}, nil, func(t *testing.T, c config.Config) {
			if c.SyncAlways {
				t.Error("SyncAlways set with --sync interval")
			}
		}},
		{"public URL trailing slash trimmed", []string{"--public-url", "https://hooks.example.com/"}, nil, func(t *testing.T, c config.Config) {
			if c.PublicURL != "https://hooks.example.com" {
				t.Errorf("PublicURL = %q", c.PublicURL)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.Parse(tc.args, env(tc.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestParseRejects(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string // part of the error message
	}{
		{"bad log level", []string{"--log-level", "loud"}, nil, "--log-level"},
		{"bad log format", []string{"--log-format", "xml"}, nil, "--log-format"},
		{"bad address", []string{"--http-addr", "8080"}, nil, "--http-addr"},
		{"dedup window beyond retention", []string{"--retention", "1h", "--dedup-window", "2h"}, nil, "--dedup-window"},
		{"tiny body limit", []string{"--max-body-bytes", "10"}, nil, "--max-body-bytes"},
		{"key without cert", []string{"--tls-key", "k.pem"}, nil, "--tls-cert"},
		{"client CA without TLS", []string{"--tls-client-ca", "ca.pem"}, nil, "--tls-client-ca"},
		{"bad sync policy", []string{"--sync", "sometimes"}, nil, "--sync"},
		{"relative public URL", []string{"--public-url", "hooks.example.com"}, nil, "--public-url"},
		{"unparsable environment value", nil, map[string]string{"KLINGFAN_RETENTION": "soon"}, "KLINGFAN_RETENTION"},
		{"stray argument", []string{"extra"}, nil, "unexpected argument"},
		{"negative rate", []string{"--ingest-rate", "-1"}, nil, "--ingest-rate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse(tc.args, env(tc.env), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}
