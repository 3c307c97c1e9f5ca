// Package auth guards the management and subscription APIs with bearer
// tokens and scopes.
//
// Every call to kling.gateway.v1.EventService and WebhookService must carry
// `authorization: Bearer <token>` (gRPC metadata, or the HTTP header on the
// REST side, which grpc-gateway forwards). A token has a name and a scope:
// [ScopeAdmin] may call everything, [ScopeSubscribe] only EventService and
// JobService, and ConsumerGroupService's Consume and AckEvents.
// The standard health and reflection services stay open. A missing,
// malformed or unknown token is UNAUTHENTICATED; a valid token without the
// scope a method needs is PERMISSION_DENIED.
//
// Tokens come from three places (see [New]): KLINGFAN_ADMIN_TOKEN, a tokens
// file, and, when neither is configured, an admin token generated on first
// start and kept in <data dir>/admin-token.
package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/tap"

	"github.com/klingfan/klingfan/internal/errkind"
)

// Scope is what a token may do.
type Scope string

// The scopes. Admin includes everything Subscribe may do.
const (
	ScopeAdmin     Scope = "admin"
	ScopeSubscribe Scope = "subscribe"
)

// allows reports whether a token with scope s may call a method that needs
// need.
func (s Scope) allows(need Scope) bool {
	return s == ScopeAdmin || s == need || need == scopeAny
}

// MinTokenLength is the shortest token accepted from any source. Generated
// tokens are 43 characters.
const MinTokenLength = 16

// AdminTokenName names the admin token that does not come from the tokens
// file: the one set by KLINGFAN_ADMIN_TOKEN, or the generated one.
const AdminTokenName = "admin"

// Config says where tokens come from.
type Config struct {
	// AdminToken is KLINGFAN_ADMIN_TOKEN: an admin token named "admin".
	AdminToken string
	// TokensFile names a file of named tokens; see ParseTokens for the
	// format.
	TokensFile string
	// DataDir holds the generated admin token when neither AdminToken nor
	// TokensFile is set.
	DataDir string
	// Out receives the generated admin token, printed once, on first start.
	Out io.Writer
	// Logger receives authentication failures (never a token).
	Logger *slog.Logger
}

// Token is one accepted bearer token. Only its digest is kept.
type Token struct {
	Name  string
	Scope Scope
	// Line is where the token was defined in the tokens file; 0 otherwise.
	Line   int
	digest [sha256.Size]byte
}

func newToken(name string, scope Scope, value string, line int) Token {
	return Token{Name: name, Scope: scope, Line: line, digest: sha256.Sum256([]byte(value))}
}

// Authenticator checks bearer tokens on every guarded RPC. It is immutable
// after New and safe for concurrent use.
type Authenticator struct {
	tokens []Token
	log    *slog.Logger
}

// New loads the tokens: the admin token from cfg.AdminToken, the named
// tokens of cfg.TokensFile, and, when neither is configured, the admin token
// kept in <DataDir>/admin-token, generating it (and printing it once to
// cfg.Out) on first start.
func New(cfg Config) (*Authenticator, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Authenticator{log: log}
	if cfg.AdminToken != "" {
		if err := checkTokenValue(cfg.AdminToken); err != nil {
			return nil, fmt.Errorf("auth: KLINGFAN_ADMIN_TOKEN: %w", err)
		}
		a.tokens = append(a.tokens, newToken(AdminTokenName, ScopeAdmin, cfg.AdminToken, 0))
	}
	if cfg.TokensFile != "" {
		fileTokens, err := LoadTokensFile(cfg.TokensFile)
		if err != nil {
			return nil, err
		}
		for _, t := range fileTokens {
			if cfg.AdminToken != "" && t.Name == AdminTokenName {
				return nil, fmt.Errorf("auth: %s:%d: token name %q is taken by KLINGFAN_ADMIN_TOKEN", cfg.TokensFile, t.Line, t.Name)
			}
			for _, prev := range a.tokens {
				if prev.digest == t.digest {
					return nil, fmt.Errorf("auth: %s:%d: token %q has the same value as KLINGFAN_ADMIN_TOKEN", cfg.TokensFile, t.Line, t.Name)
				}
			}
		}
		a.tokens = append(a.tokens, fileTokens...)
		log.Info("loaded API tokens", "file", cfg.TokensFile, "count", len(fileTokens))
		if fi, err := os.Stat(cfg.TokensFile); err == nil && runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
			log.Warn("tokens file is accessible to group or others; chmod 600 it", "file", cfg.TokensFile, "mode", fmt.Sprintf("%04o", fi.Mode().Perm()))
		}
	}
	if cfg.AdminToken == "" && cfg.TokensFile == "" {
		tok, err := generatedAdminToken(cfg.DataDir, cfg.Out, log)
		if err != nil {
			return nil, err
		}
		a.tokens = append(a.tokens, newToken(AdminTokenName, ScopeAdmin, tok, 0))
	}
	return a, nil
}

// Tokens returns the names and scopes of the accepted tokens.
func (a *Authenticator) Tokens() []Token {
	return append([]Token(nil), a.tokens...)
}

// Principal is the caller a request was authenticated as.
type Principal struct {
	// TokenName is the name of the token the caller presented.
	TokenName string
	Scope     Scope
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p. The interceptors do this; tests and
// in-process callers may too.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the caller of an authenticated request.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// TokenName returns the name of the token the request was authenticated
// with, or "" for an unauthenticated (open) method.
func TokenName(ctx context.Context) string {
	p, _ := PrincipalFrom(ctx)
	return p.TokenName
}

// openMethods need no token: the unary health check, for load balancers
// and orchestrators. It ends as soon as it answers, so it cannot hold a
// stream open. Health Watch and List and reflection are streams a client
// may hold for as long as it likes, so they need a token like everything
// else (any scope).
var openMethods = map[string]bool{
	"/grpc.health.v1.Health/Check": true,
}

// anyScopeServices may be called with a token of any scope: they reveal
// nothing a subscriber may not know.
var anyScopeServices = map[string]bool{
	"grpc.health.v1.Health":                    true,
	"grpc.reflection.v1.ServerReflection":      true,
	"grpc.reflection.v1alpha.ServerReflection": true,
}

// serviceScopes says which scope each guarded service needs. A service in
// neither table needs admin, so a newly registered service is never open
// by accident.
var serviceScopes = map[string]Scope{
	"kling.gateway.v1.EventService":   ScopeSubscribe,
	"kling.gateway.v1.JobService":     ScopeSubscribe,
	"kling.gateway.v1.WebhookService": ScopeAdmin,
}

// scopeAny is the requirement of anyScopeServices: a known token.
const scopeAny Scope = "any"

// methodScopes overrides serviceScopes for single methods: consumer group
// members consume and ack with a subscribe token, while managing groups
// needs admin; creating a Kling task spends the account's money, which a
// token that may only read must not.
var methodScopes = map[string]Scope{
	"/kling.gateway.v1.ConsumerGroupService/Consume":   ScopeSubscribe,
	"/kling.gateway.v1.ConsumerGroupService/AckEvents": ScopeSubscribe,
	"/kling.gateway.v1.JobService/CreateJob":           ScopeAdmin,
}

// requiredScope returns the scope fullMethod ("/pkg.Service/Method") needs,
// or "" when it is open.
func requiredScope(fullMethod string) Scope {
	if openMethods[fullMethod] {
		return ""
	}
	if s, ok := methodScopes[fullMethod]; ok {
		return s
	}
	service, _, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	if anyScopeServices[service] {
		return scopeAny
	}
	if s, ok := serviceScopes[service]; ok {
		return s
	}
	return ScopeAdmin
}

// errors returned to callers, of kind Unauthenticated; the messages name
// no token.
var (
	errMissing   = errkind.New(errkind.Unauthenticated, "auth", `missing bearer token: send "authorization: Bearer <token>"`)
	errMalformed = errkind.New(errkind.Unauthenticated, "auth", `malformed authorization: want "Bearer <token>"`)
	errMultiple  = errkind.New(errkind.Unauthenticated, "auth", "more than one authorization value")
	errUnknown   = errkind.New(errkind.Unauthenticated, "auth", "invalid bearer token")
)

// Authorize authenticates the caller of fullMethod from the incoming
// metadata in ctx and checks its scope. It returns ctx carrying the
// Principal, or an error of kind Unauthenticated or PermissionDenied,
// which the API's one error mapping turns into a status.
func (a *Authenticator) Authorize(ctx context.Context, fullMethod string) (context.Context, error) {
	need := requiredScope(fullMethod)
	if need == "" {
		return ctx, nil
	}
	tok, err := bearer(ctx)
	if err != nil {
		a.deny(ctx, fullMethod, "", err)
		return nil, err
	}
	t, ok := a.lookup(tok)
	if !ok {
		a.deny(ctx, fullMethod, "", errUnknown)
		return nil, errUnknown
	}
	if !t.Scope.allows(need) {
		err := errkind.New(errkind.PermissionDenied, "auth", fmt.Sprintf("token %q has scope %q; %s needs scope %q", t.Name, t.Scope, fullMethod, need))
		a.deny(ctx, fullMethod, t.Name, err)
		return nil, err
	}
	return WithPrincipal(ctx, Principal{TokenName: t.Name, Scope: t.Scope}), nil
}

// Recognize checks the bearer token of an HTTP request without looking at
// scopes. The REST gateway calls it before reading a request body, so an
// unauthenticated client cannot make the server buffer one; the gRPC
// interceptor still makes the full decision. It returns the same errors
// as Authorize.
func (a *Authenticator) Recognize(ctx context.Context, h http.Header) error {
	ctx = metadata.NewIncomingContext(ctx, metadata.MD{"authorization": h.Values("Authorization")})
	tok, err := bearer(ctx)
	if err != nil {
		return err
	}
	if _, ok := a.lookup(tok); !ok {
		return errUnknown
	}
	return nil
}

// bearer extracts the token from the single authorization value.
func bearer(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	switch len(vals) {
	case 0:
		return "", errMissing
	case 1:
	default:
		return "", errMultiple
	}
	scheme, tok, ok := strings.Cut(strings.TrimSpace(vals[0]), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", errMalformed
	}
	return tok, nil
}

// lookup finds the token with value tok. It compares SHA-256 digests in
// constant time against every token, without stopping at a match, so
// neither the value nor the position of a token leaks through timing.
func (a *Authenticator) lookup(tok string) (Token, bool) {
	d := sha256.Sum256([]byte(tok))
	found := -1
	for i := range a.tokens {
		eq := subtle.ConstantTimeCompare(d[:], a.tokens[i].digest[:])
		found = subtle.ConstantTimeSelect(eq, i, found)
	}
	if found < 0 {
		return Token{}, false
	}
	return a.tokens[found], true
}

// deny logs a refused call: the method, the token's name when known, the
// peer and the reason, never the token.
func (a *Authenticator) deny(ctx context.Context, method, tokenName string, err error) {
	attrs := []any{"method", method, "reason", errkind.Of(err).Message}
	if tokenName != "" {
		attrs = append(attrs, "token", tokenName)
	}
	// The remote is the connection's real peer: x-forwarded-for is whatever
	// the client chose to send, so it is logged only as a claim beside it.
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		attrs = append(attrs, "remote", p.Addr.String())
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get("x-forwarded-for")) > 0 {
		attrs = append(attrs, "forwarded_for", md.Get("x-forwarded-for")[0])
	}
	a.log.InfoContext(ctx, "request denied", attrs...)
}

// TapHandle refuses a call to a guarded method whose bearer token is
// missing or unknown before the server creates its stream, so an
// unauthenticated client costs no handler goroutine and holds no stream
// slot, however many it opens. Scopes are still checked by the
// interceptors, which see the full method context. grpc-go sends a tap
// handle's error as it is, so the server wraps it in api.TapErrors.
func (a *Authenticator) TapHandle() tap.ServerInHandle {
	return func(ctx context.Context, info *tap.Info) (context.Context, error) {
		if requiredScope(info.FullMethodName) == "" {
			return ctx, nil
		}
		tctx := metadata.NewIncomingContext(ctx, metadata.MD{"authorization": info.Header.Get("authorization")})
		tok, err := bearer(tctx)
		if err == nil {
			if _, ok := a.lookup(tok); !ok {
				err = errUnknown
			}
		}
		if err != nil {
			a.deny(ctx, info.FullMethodName, "", err)
			return nil, err
		}
		return ctx, nil
	}
}

// UnaryInterceptor guards unary RPCs.
func (a *Authenticator) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := a.Authorize(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamInterceptor guards streaming RPCs.
func (a *Authenticator) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := a.Authorize(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &authedStream{ServerStream: ss, ctx: ctx})
	}
}

// authedStream hands the handler the context carrying the Principal.
type authedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *authedStream) Context() context.Context { return s.ctx }

// checkTokenValue rejects tokens too short to be safe or that cannot travel
// in an authorization header.
func checkTokenValue(v string) error {
	if len(v) < MinTokenLength {
		return fmt.Errorf("token is %d characters; at least %d are required", len(v), MinTokenLength)
	}
	for _, r := range v {
		if r <= ' ' || r > '~' {
			return errors.New("token must be printable ASCII without spaces")
		}
	}
	return nil
}
