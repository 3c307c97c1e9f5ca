package app

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/klingfan/klingfan/internal/certpool"

	"github.com/klingfan/klingfan/internal/config"
)

// loadTLS builds the listeners' TLS configuration from --tls-cert and
// --tls-key, or returns nil without them. Every file is read now, so an
// unreadable or mismatched file fails start-up with an error naming it.
//
// The returned configuration serves HTTP as it is. With --tls-client-ca its
// ClientCAs holds that pool, but ClientAuth stays NoClientCert: only the
// gRPC listener (grpcTLS) requires client certificates, because Kling's
// callbacks and the health probes cannot present one.
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
	}
	return c, nil
}

// grpcTLS derives the gRPC listener's configuration from the shared one:
// HTTP/2 only, and client certificates verified against --tls-client-ca
// when it is set.
func grpcTLS(shared *tls.Config) *tls.Config {
	c := shared.Clone()
	c.NextProtos = []string{"h2"}
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
