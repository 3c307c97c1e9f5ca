package cli_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/klingfan/klingfan/internal/apptest"
)

// TestConnectionErrors: each way of failing to talk to the gateway ends
// with one clear line on stderr and exit status 1, quickly.
func TestConnectionErrors(t *testing.T) {
	srv := startServer(t, "")
	down := closedAddr(t)
	emptyDir := t.TempDir()
	cases := []struct {
		name       string
		opts       runOpts
		args       []string
		wantStderr string // a regexp for the whole of stderr
	}{
		{
			name:       "unreachable server",
			args:       []string{"--server", down, "--token", apptest.AdminToken, "events", "list"},
			wantStderr: `^klingctl: cannot reach ` + regexp.QuoteMeta(down) + `: connection refused\n$`,
		},
		{
			name:       "unreachable server from KLINGFAN_SERVER, listen fails fast",
			opts:       runOpts{vars: map[string]string{"KLINGFAN_SERVER": down, "KLINGFAN_TOKEN": apptest.AdminToken}},
			args:       []string{"listen"},
			wantStderr: `^klingctl: cannot reach ` + regexp.QuoteMeta(down) + `: connection refused\n$`,
		},
		{
			name:       "bad token",
			args:       []string{"--server", srv.GRPC, "--token", "wrong-token-0123456789", "webhooks", "list"},
			wantStderr: `^klingctl: the server refused the token from --token \(UNAUTHENTICATED\)\n$`,
		},
		{
			name:       "bad token from KLINGFAN_TOKEN, listen",
			opts:       runOpts{vars: map[string]string{"KLINGFAN_TOKEN": "wrong-token-0123456789"}},
			args:       []string{"--server", srv.GRPC, "listen"},
			wantStderr: `^klingctl: the server refused the token from \$KLINGFAN_TOKEN \(UNAUTHENTICATED\)\n$`,
		},
		{
			name:       "no token anywhere",
			args:       []string{"--server", srv.GRPC, "--data-dir", emptyDir, "events", "list"},
			wantStderr: `^klingctl: the server needs a token: .*--token.*KLINGFAN_TOKEN.*--data-dir.* \(UNAUTHENTICATED\)\n$`,
		},
		{
			name:       "unresolvable host",
			args:       []string{"--server", "nosuch.invalid:9090", "--token", apptest.AdminToken, "--insecure", "events", "list"},
			wantStderr: `^klingctl: cannot reach nosuch\.invalid:9090: the host name does not resolve\n$`,
		},
		{
			name:       "plaintext client, TLS expected by the user",
			args:       []string{"--server", srv.GRPC, "--token", apptest.AdminToken, "--tls", "events", "list"},
			wantStderr: `^klingctl: cannot reach .*TLS.*\n$`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r := klingctlWith(t, tc.opts, tc.args...)
			if r.code != 1 {
				t.Errorf("exit %d, want 1", r.code)
			}
			if !regexp.MustCompile(tc.wantStderr).MatchString(r.stderr) {
				t.Errorf("stderr %q does not match %s", r.stderr, tc.wantStderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s to fail", d)
			}
		})
	}
}

// TestTokenSources: the token is taken from --token, KLINGFAN_TOKEN, or
// the admin-token file of a local server's data directory, in that order.
func TestTokenSources(t *testing.T) {
	srv := startServer(t, "")
	dataDir := t.TempDir()
	writeFile(t, dataDir, "admin-token", apptest.AdminToken+"\n")
	cases := []struct {
		name string
		opts runOpts
		args []string
	}{
		{name: "--token", args: []string{"--token", apptest.AdminToken}},
		{name: "KLINGFAN_TOKEN", opts: runOpts{vars: map[string]string{"KLINGFAN_TOKEN": apptest.AdminToken}}},
		{name: "--data-dir admin-token file", args: []string{"--data-dir", dataDir}},
		{name: "KLINGFAN_DATA_DIR admin-token file", opts: runOpts{vars: map[string]string{"KLINGFAN_DATA_DIR": dataDir}}},
		{name: "--token wins over a wrong KLINGFAN_TOKEN", opts: runOpts{vars: map[string]string{"KLINGFAN_TOKEN": "wrong-token-0123456789"}}, args: []string{"--token", apptest.AdminToken}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := klingctlWith(t, tc.opts, with([]string{"--server", srv.GRPC}, append(tc.args, "webhooks", "list")...)...).must(t)
			if !strings.Contains(r.stdout, "default") {
				t.Errorf("list printed %q", r.stdout)
			}
		})
	}
}

// TestUsageErrors: a wrong command line exits 2 with the reason and a hint,
// before contacting any server.
func TestUsageErrors(t *testing.T) {
	cases := []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{"unknown command", []string{"lisen"}, `unknown command "lisen"`},
		{"unknown flag", []string{"events", "list", "--bogus"}, "unknown flag: --bogus"},
		{"exclusive start flags", []string{"listen", "--since", "10m", "--from-beginning"}, "--since and --from-beginning are mutually exclusive"},
		{"bad --since", []string{"listen", "--since", "yesterday"}, "--since"},
		{"bad --after", []string{"listen", "--after", "-1"}, "--after"},
		{"unknown event type", []string{"listen", "--type", "exploded"}, `unknown event type "exploded"`},
		{"bad view", []string{"listen", "--view", "huge"}, `unknown view "huge"`},
		{"missing argument", []string{"webhooks", "get"}, "accepts 1 arg"},
		{"nothing to update", []string{"webhooks", "update", "x"}, "nothing to update"},
		{"unknown scheme", []string{"webhooks", "create", "--scheme", "hmac"}, `unknown signature scheme "hmac"`},
		{"unknown example format", []string{"example", "completed", "--format", "v3"}, `unknown format "v3"`},
		{"unknown example type", []string{"example", "exploded"}, `unknown event type "exploded"`},
		{"raw with json", []string{"events", "get", "1", "--raw", "--json"}, "mutually exclusive"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := klingctlWith(t, runOpts{vars: map[string]string{"KLINGFAN_SERVER": closedAddr(t)}}, tc.args...)
			if r.code != 2 {
				t.Errorf("exit %d, want 2 (stderr %q)", r.code, r.stderr)
			}
			if !strings.HasPrefix(r.stderr, "klingctl: ") || !strings.Contains(r.stderr, tc.wantStderr) || !strings.Contains(r.stderr, "--help' for usage") {
				t.Errorf("stderr %q lacks %q", r.stderr, tc.wantStderr)
			}
		})
	}
	t.Run("help exits 0", func(t *testing.T) {
		r := klingctl(t, "listen", "--help").must(t)
		if !strings.Contains(r.stdout, "--cursor-file") {
			t.Errorf("help lacks --cursor-file: %s", r.stdout)
		}
	})
}

// TestTLS: --ca verifies the server, --cert/--key satisfy a server that
// requires client certificates.
func TestTLS(t *testing.T) {
	pki := apptest.NewPKI(t, "")
	cases := []struct {
		name       string
		mutual     bool
		args       []string
		wantCode   int
		wantStderr string
	}{
		{name: "--ca", args: []string{"--ca", pki.CAFile}},
		{name: "--tls without the CA fails verification", args: []string{"--tls"}, wantCode: 1, wantStderr: "certificate"},
		{name: "--insecure-skip-verify", args: []string{"--insecure-skip-verify"}},
		{name: "mutual TLS without a client certificate", mutual: true, args: []string{"--ca", pki.CAFile}, wantCode: 1, wantStderr: "--cert and --key"},
		{name: "mutual TLS with --cert and --key", mutual: true, args: []string{"--ca", pki.CAFile, "--cert", pki.ClientCertFile, "--key", pki.ClientKeyFile}},
		{name: "--cert without --key", mutual: true, args: []string{"--ca", pki.CAFile, "--cert", pki.ClientCertFile}, wantCode: 2, wantStderr: "--cert and --key go together"},
	}
	servers := map[bool]*apptest.Server{
		false: startServer(t, "", apptest.WithTLS(pki, false)),
		true:  startServer(t, "", apptest.WithTLS(pki, true)),
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := servers[tc.mutual]
			r := klingctl(t, with(tc.args, "--server", srv.GRPC, "--token", apptest.AdminToken, "events", "list")...)
			if r.code != tc.wantCode || !strings.Contains(r.stderr, tc.wantStderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", r.code, r.stderr, tc.wantCode, tc.wantStderr)
			}
		})
	}
}

// A token is not sent in plaintext to a server on another machine unless
// --insecure says the network is trusted; loopback needs no flag.
func TestPlaintextTokenRefusedOffLoopback(t *testing.T) {
	r := klingctl(t, "--server", "192.0.2.1:9090", "--token", apptest.AdminToken, "events", "list")
	if r.code == 0 || !strings.Contains(r.stderr, "refusing to send a token in plaintext to 192.0.2.1:9090") {
		t.Fatalf("exit %d, stderr %q: want a refusal naming the server", r.code, r.stderr)
	}
}
