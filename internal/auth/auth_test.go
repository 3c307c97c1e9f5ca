package auth_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/klingfan/klingfan/internal/api"
	"github.com/klingfan/klingfan/internal/auth"
)

const (
	adminTok     = "admin-token-0123456789abcdef"
	subscribeTok = "subscribe-token-0123456789"
	opsTok       = "ops-admin-token-0123456789"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestParseTokens(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string // name:scope:line
		wantErr []string // substrings of the error
	}{
		{
			name: "names, scopes, comments and blank lines",
			in:   "# name scope token\n\nops admin " + opsTok + "\n  renderer\tsubscribe\t" + subscribeTok + "  \n",
			want: []string{"ops:admin:3", "renderer:subscribe:4"},
		},
		{name: "unknown scope", in: "ops admin " + opsTok + "\nx read " + subscribeTok + "\n", wantErr: []string{"tokens:2:", `unknown scope "read"`}},
		{name: "duplicate name", in: "ops admin " + opsTok + "\nops subscribe " + subscribeTok + "\n", wantErr: []string{"tokens:2:", `duplicate token name "ops" (first on line 1)`}},
		{name: "short token", in: "# c\nops admin short-token\n", wantErr: []string{"tokens:2:", "at least 16"}},
		{name: "too few fields", in: "ops admin\n", wantErr: []string{"tokens:1:", "want 3 fields"}},
		{name: "too many fields", in: "ops admin " + opsTok + " extra\n", wantErr: []string{"tokens:1:", "got 4"}},
		{name: "bad name", in: "-ops admin " + opsTok + "\n", wantErr: []string{"tokens:1:", "token name"}},
		{name: "duplicate value", in: "a admin " + opsTok + "\nb subscribe " + opsTok + "\n", wantErr: []string{"tokens:2:", `same value as token "a" (line 1)`}},
		{name: "every bad line reported", in: "a nope " + opsTok + "\nb admin short\n", wantErr: []string{"tokens:1:", "tokens:2:"}},
		{name: "empty", in: "# nothing\n", wantErr: []string{"defines no tokens"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			toks, err := auth.ParseTokens(strings.NewReader(tt.in), "tokens")
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error, want %q", tt.wantErr)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				for _, secret := range []string{opsTok, subscribeTok, "short-token"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error reveals a token: %q", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, tk := range toks {
				got = append(got, tk.Name+":"+string(tk.Scope)+":"+strconv.Itoa(tk.Line))
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNewSources(t *testing.T) {
	tests := []struct {
		name    string
		cfg     func(t *testing.T) auth.Config
		want    []string // name:scope
		wantErr string
	}{
		{
			name: "env admin token",
			cfg:  func(*testing.T) auth.Config { return auth.Config{AdminToken: adminTok} },
			want: []string{"admin:admin"},
		},
		{
			name: "env and file",
			cfg: func(t *testing.T) auth.Config {
				return auth.Config{AdminToken: adminTok, TokensFile: writeFile(t, "ops admin "+opsTok+"\nrenderer subscribe "+subscribeTok+"\n")}
			},
			want: []string{"admin:admin", "ops:admin", "renderer:subscribe"},
		},
		{
			name:    "short env token",
			cfg:     func(*testing.T) auth.Config { return auth.Config{AdminToken: "too-short"} },
			wantErr: "KLINGFAN_ADMIN_TOKEN: token is 9 characters; at least 16",
		},
		{
			name: "file name clashes with the env token",
			cfg: func(t *testing.T) auth.Config {
				return auth.Config{AdminToken: adminTok, TokensFile: writeFile(t, "admin subscribe "+subscribeTok+"\n")}
			},
			wantErr: `tokens:1: token name "admin" is taken by KLINGFAN_ADMIN_TOKEN`,
		},
		{
			name: "file value equals the env token",
			cfg: func(t *testing.T) auth.Config {
				return auth.Config{AdminToken: adminTok, TokensFile: writeFile(t, "ops subscribe "+adminTok+"\n")}
			},
			wantErr: "same value as KLINGFAN_ADMIN_TOKEN",
		},
		{
			name:    "missing file",
			cfg:     func(t *testing.T) auth.Config { return auth.Config{TokensFile: filepath.Join(t.TempDir(), "nope")} },
			wantErr: "nope: no such file",
		},
		{
			name:    "nowhere to keep a generated token",
			cfg:     func(*testing.T) auth.Config { return auth.Config{} },
			wantErr: "no API token configured",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := auth.New(tt.cfg(t))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), adminTok) || strings.Contains(err.Error(), subscribeTok) {
					t.Errorf("error reveals a token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, tk := range a.Tokens() {
				got = append(got, tk.Name+":"+string(tk.Scope))
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("tokens %v, want %v", got, tt.want)
			}
		})
	}
}

// With no token configured, the first start generates one, keeps it with
// mode 0600 and prints it once; later starts reuse it silently.
func TestGeneratedAdminToken(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	var out, logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	a, err := auth.New(auth.Config{DataDir: dir, Out: &out, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, auth.AdminTokenFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o, want 0600", fi.Mode().Perm())
	}
	raw, _ := os.ReadFile(path)
	tok := strings.TrimSpace(string(raw))
	if len(tok) != 43 {
		t.Errorf("generated token has %d characters, want 43 (32 bytes base64url)", len(tok))
	}
	// Not a terminal: the path, never the token (container logs keep stdout).
	if want := "Admin token generated in " + path + " (read it from there; it is shown only on a terminal)\n"; out.String() != want {
		t.Errorf("printed %q, want %q", out.String(), want)
	}
	if strings.Contains(logs.String(), tok) {
		t.Errorf("the token was logged: %s", logs.String())
	}
	if _, err := a.Authorize(withAuth("Bearer "+tok), "/kling.gateway.v1.WebhookService/ListWebhooks"); err != nil {
		t.Errorf("generated token refused: %v", err)
	}

	out.Reset()
	b, err := auth.New(auth.Config{DataDir: dir, Out: &out, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 {
		t.Errorf("second start printed %q, want nothing", out.String())
	}
	if _, err := b.Authorize(withAuth("Bearer "+tok), "/kling.gateway.v1.WebhookService/ListWebhooks"); err != nil {
		t.Errorf("kept token refused after restart: %v", err)
	}

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = auth.New(auth.Config{DataDir: dir, Out: &out, Logger: log})
	if err == nil || !strings.Contains(err.Error(), "mode 0644") || !strings.Contains(err.Error(), path) {
		t.Errorf("world-readable token file: error %v, want one naming the file and its mode", err)
	}
}

func withAuth(vals ...string) context.Context {
	md := metadata.MD{}
	for _, v := range vals {
		md.Append("authorization", v)
	}
	return metadata.NewIncomingContext(context.Background(), md)
}

func TestAuthorize(t *testing.T) {
	a, err := auth.New(auth.Config{AdminToken: adminTok, TokensFile: writeFile(t, "renderer subscribe "+subscribeTok+"\nops admin "+opsTok+"\n")})
	if err != nil {
		t.Fatal(err)
	}
	const (
		subscribe = "/kling.gateway.v1.EventService/Subscribe"
		create    = "/kling.gateway.v1.WebhookService/CreateWebhook"
		health    = "/grpc.health.v1.Health/Check"
		reflect   = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
		other     = "/some.other.v1.Service/Method"
	)
	tests := []struct {
		name     string
		ctx      context.Context
		method   string
		want     codes.Code
		wantName string
	}{
		{"health needs no token", context.Background(), health, codes.OK, ""},
		{"reflection needs a token", context.Background(), reflect, codes.Unauthenticated, ""},
		{"reflection takes a subscribe token", withAuth("Bearer " + subscribeTok), reflect, codes.OK, "renderer"},
		{"health watch needs a token", context.Background(), "/grpc.health.v1.Health/Watch", codes.Unauthenticated, ""},
		{"no metadata", context.Background(), subscribe, codes.Unauthenticated, ""},
		{"no authorization", withAuth(), create, codes.Unauthenticated, ""},
		{"basic scheme", withAuth("Basic " + adminTok), create, codes.Unauthenticated, ""},
		{"bearer without token", withAuth("Bearer "), create, codes.Unauthenticated, ""},
		{"bare token", withAuth(adminTok), create, codes.Unauthenticated, ""},
		{"unknown token", withAuth("Bearer not-a-known-token-at-all"), subscribe, codes.Unauthenticated, ""},
		{"prefix of a token", withAuth("Bearer " + adminTok[:20]), subscribe, codes.Unauthenticated, ""},
		{"two values", withAuth("Bearer "+adminTok, "Bearer "+adminTok), create, codes.Unauthenticated, ""},
		{"subscribe token on EventService", withAuth("Bearer " + subscribeTok), subscribe, codes.OK, "renderer"},
		{"subscribe token on WebhookService", withAuth("Bearer " + subscribeTok), create, codes.PermissionDenied, ""},
		{"subscribe token on an unlisted service", withAuth("Bearer " + subscribeTok), other, codes.PermissionDenied, ""},
		{"admin token on EventService", withAuth("Bearer " + adminTok), subscribe, codes.OK, "admin"},
		{"admin token on WebhookService", withAuth("Bearer " + adminTok), create, codes.OK, "admin"},
		{"file admin token", withAuth("Bearer " + opsTok), create, codes.OK, "ops"},
		{"scheme is case-insensitive", withAuth("bearer " + opsTok), create, codes.OK, "ops"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, err := a.Authorize(tt.ctx, tt.method)
			if got := code(err); got != tt.want {
				t.Fatalf("code %v (%v), want %v", got, err, tt.want)
			}
			if err != nil {
				for _, tok := range []string{adminTok, subscribeTok, opsTok} {
					if strings.Contains(err.Error(), tok) {
						t.Errorf("error reveals a token: %v", err)
					}
				}
				return
			}
			if got := auth.TokenName(ctx); got != tt.wantName {
				t.Errorf("TokenName = %q, want %q", got, tt.wantName)
			}
		})
	}
}

// The interceptors refuse before the handler runs and hand it the caller.
func TestInterceptors(t *testing.T) {
	var logs bytes.Buffer
	a, err := auth.New(auth.Config{AdminToken: adminTok, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	info := &grpc.UnaryServerInfo{FullMethod: "/kling.gateway.v1.WebhookService/GetWebhook"}
	var seen string
	handler := func(ctx context.Context, _ any) (any, error) { seen = auth.TokenName(ctx); return "ok", nil }
	if _, err := a.UnaryInterceptor()(withAuth("Bearer wrong-token-0123456789"), nil, info, handler); code(err) != codes.Unauthenticated {
		t.Fatalf("wrong token: %v", err)
	}
	if seen != "" {
		t.Fatal("handler ran for a refused call")
	}
	if _, err := a.UnaryInterceptor()(withAuth("Bearer "+adminTok), nil, info, handler); err != nil || seen != "admin" {
		t.Fatalf("admin: err %v, token name %q", err, seen)
	}

	sinfo := &grpc.StreamServerInfo{FullMethod: "/kling.gateway.v1.EventService/Subscribe", IsServerStream: true}
	shandler := func(_ any, ss grpc.ServerStream) error { seen = auth.TokenName(ss.Context()); return nil }
	seen = ""
	if err := a.StreamInterceptor()(nil, fakeStream{ctx: context.Background()}, sinfo, shandler); code(err) != codes.Unauthenticated || seen != "" {
		t.Fatalf("stream without token: err %v, handler saw %q", err, seen)
	}
	if err := a.StreamInterceptor()(nil, fakeStream{ctx: withAuth("Bearer " + adminTok)}, sinfo, shandler); err != nil || seen != "admin" {
		t.Fatalf("stream with admin token: err %v, token name %q", err, seen)
	}
	if !strings.Contains(logs.String(), "request denied") || strings.Contains(logs.String(), "wrong-token") {
		t.Errorf("denials should be logged without the token:\n%s", logs.String())
	}
}

// code is the status code the API's one error mapping gives err.
func code(err error) codes.Code {
	mapErrors := api.UnaryErrors(slog.New(slog.DiscardHandler))
	_, err = mapErrors(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/test/Method"}, func(context.Context, any) (any, error) { return nil, err })
	return status.Code(err)
}

type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (f fakeStream) Context() context.Context { return f.ctx }
