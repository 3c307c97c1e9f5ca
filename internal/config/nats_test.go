package config_test

import (
	"io"
	"strings"
	"testing"

	"github.com/klingfan/klingfan/internal/config"
)

func parseNATS(args []string, env map[string]string) (config.Config, error) {
	return config.Parse(args, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, io.Discard)
}

func TestNATSFlags(t *testing.T) {
	c, err := parseNATS([]string{
		"--nats-url", "nats://a:4222,nats://b:4222", "--nats-user", "kf",
		"--nats-tls-ca", "ca.pem", "--nats-tls-cert", "c.pem", "--nats-tls-key", "k.pem", "--nats-update-config",
	}, map[string]string{"KLINGFAN_NATS_PASSWORD": "pw"})
	if err != nil {
		t.Fatal(err)
	}
	if c.NATSURL != "nats://a:4222,nats://b:4222" || c.NATSUser != "kf" || c.NATSPassword != "pw" ||
		c.NATSTLSCA != "ca.pem" || c.NATSTLSCert != "c.pem" || c.NATSTLSKey != "k.pem" || !c.NATSUpdateConfig {
		t.Errorf("parsed %+v", c)
	}
	if c.Replicas != 3 {
		t.Errorf("replicas with --nats-url = %d, want 3", c.Replicas)
	}

	c, err = parseNATS(nil, map[string]string{
		"KLINGFAN_NATS_URL": "nats://a:4222", "KLINGFAN_NATS_TOKEN": "tok", "KLINGFAN_REPLICAS": "5", "KLINGFAN_NATS_UPDATE_CONFIG": "true",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.NATSToken != "tok" || c.Replicas != 5 || !c.NATSUpdateConfig {
		t.Errorf("from the environment: %+v", c)
	}

	c, err = parseNATS([]string{"--nats-url", "nats://a:4222", "--nats-creds", "user.creds"}, nil)
	if err != nil || c.NATSCreds != "user.creds" {
		t.Errorf("--nats-creds: %+v, %v", c, err)
	}
	c, err = parseNATS([]string{"--nats-url", "nats://a:4222", "--nats-nkey", "user.nk"}, nil)
	if err != nil || c.NATSNKey != "user.nk" {
		t.Errorf("--nats-nkey: %+v, %v", c, err)
	}
	c, err = parseNATS(nil, nil)
	if err != nil || c.Replicas != 1 {
		t.Errorf("embedded default replicas = %d, %v; want 1", c.Replicas, err)
	}
}

func TestNATSFlagsInvalid(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"credentials without a URL", []string{"--nats-user", "kf"}, "--nats-user needs --nats-url"},
		{"TLS without a URL", []string{"--nats-tls-ca", "ca.pem"}, "--nats-tls-ca needs --nats-url"},
		{"replicas without a URL", []string{"--replicas", "3"}, "--replicas 3 needs --nats-url"},
		{"password without user", []string{"--nats-url", "nats://a", "--nats-password", "pw"}, "--nats-password needs --nats-user"},
		{"user and token", []string{"--nats-url", "nats://a", "--nats-user", "kf", "--nats-token", "t"}, "--nats-user and --nats-token exclude each other"},
		{"creds and nkey", []string{"--nats-url", "nats://a", "--nats-creds", "a", "--nats-nkey", "b"}, "--nats-creds and --nats-nkey exclude each other"},
		{"creds and user", []string{"--nats-url", "nats://a", "--nats-creds", "a", "--nats-user", "kf"}, "replace --nats-user and --nats-token"},
		{"cert without key", []string{"--nats-url", "nats://a", "--nats-tls-cert", "c.pem"}, "--nats-tls-cert and --nats-tls-key go together"},
		{"too many replicas", []string{"--nats-url", "nats://a", "--replicas", "7"}, "--replicas 7: want 1 to 5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseNATS(tc.args, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
