package app

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/klingfan/klingfan/internal/certpool"

	"github.com/klingfan/klingfan/internal/config"
)

// loadTLS builds the listeners' TLS configuration from --tls-cert and
// --tls-key, or returns nil without them. Every file is read now, so an
// unreadable or mismatched file fails start-up with an error naming it.
//
// The returned configuration serves HTTP as it is. With --tls-client-ca the
// HTTP listener verifies a client certificate when one is given
// (VerifyClientCertIfGiven) but does not demand one in the handshake,
// because Kling's callbacks and the health probes share that listener and
// cannot present one; requireClientCert then refuses the management paths
// (REST /v1, backup, reconcile) to a request without a verified
// certificate. The gRPC listener (grpcTLS) requires one in the handshake.
func loadTLS(cfg config.Config) (*tls.Config, error) {
	if cfg.TLSCert == "" && cfg.TLSKey == "" {
		return nil, nil
	}
	if cfg.TLSCert == "" || cfg.TLSKey == "" {
		return nil, errors.New("app: --tls-cert and --tls-key go together")
	}
	certPEM, err := os.ReadFile(cfg.TLSCert)
	if err != nil {
		return nil, fmt.Errorf("app: --tls-cert: %w", err)
	}
	keyPEM, err := os.ReadFile(cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("app: --tls-key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("app: --tls-cert %s with --tls-key %s: %w", cfg.TLSCert, cfg.TLSKey, err)
	}
	c := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
	}
	if cfg.TLSClientCA != "" {
		pool, err := certpool.Load("--tls-client-ca", cfg.TLSClientCA)
		if err != nil {
			return nil, fmt.Errorf("app: %w", err)
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return c, nil
}

// requireClientCert guards the management paths on the HTTP listener when
// --tls-client-ca is set: a request that did not present a certificate
// verified against that CA gets 401 before its token or body is looked at.
// Ingest, the probes, /metrics, the console's static files and the OpenAPI
// document stay open, as they were without mutual TLS.
func requireClientCert(c *tls.Config, next http.Handler) http.Handler {
	if c == nil || c.ClientCAs == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isManagementPath(r.URL.Path) && (r.TLS == nil || len(r.TLS.VerifiedChains) == 0) {
			writeStatus(w, status.New(codes.Unauthenticated, "a client certificate signed by --tls-client-ca is required"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// isManagementPath reports whether path is one that mutual TLS guards: the
// REST API (backup included) and the admin endpoints.
func isManagementPath(path string) bool {
	return strings.HasPrefix(path, "/v1/") || path == "/v1" || strings.HasPrefix(path, "/admin/")
}

// grpcTLS derives the gRPC listener's configuration from the shared one:
// HTTP/2 only, and client certificates verified against --tls-client-ca
// when it is set.
func grpcTLS(shared *tls.Config) *tls.Config {
	c := shared.Clone()
	c.NextProtos = []string{"h2"}
	c.ClientAuth = tls.NoClientCert
	if c.ClientCAs != nil {
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c
}

// grpcTLSListener wraps ln with the gRPC TLS configuration when c is set.
func grpcTLSListener(ln net.Listener, c *tls.Config) net.Listener {
	if c == nil {
		return ln
	}
	return tls.NewListener(ln, grpcTLS(c))
}
