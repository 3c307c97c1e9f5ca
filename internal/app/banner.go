package app

import (
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"

	"github.com/klingfan/klingfan/internal/auth"
	"github.com/klingfan/klingfan/internal/registry"
)

func (s *server) printBanner(w io.Writer, grpcAddr, httpAddr net.Addr) {
	scheme, plaintext := "http", "-plaintext "
	if s.tlsConfig != nil {
		scheme, plaintext = "https", ""
	}
	base := fmt.Sprintf("%s://%s", scheme, displayAddr(httpAddr))
	token := "$KLINGFAN_ADMIN_TOKEN" //nolint:gosec // G101: the name of a variable for the reader's shell, not a credential
	if s.cfg.AdminToken == "" && s.cfg.TokensFile == "" {
		token = "$(cat " + filepath.Join(s.cfg.DataDir, auth.AdminTokenFile) + ")"
	}
	fmt.Fprintf(w, `
klingfan is running
  gRPC     %[1]s   (try: grpcurl %[6]s-H "authorization: Bearer %[5]s" %[1]s list)
  HTTP     %[2]s   (/healthz /readyz /metrics /openapi.json)
  ingest   %[3]s/webhooks/klingai   registration "default": %[4]s
           %[3]s/webhooks/kling/{webhook_id}   for registrations made with the API
  REST     curl -H "Authorization: Bearer %[5]s" %[2]s/v1/webhooks
  stream   curl -N -H "Authorization: Bearer %[5]s" '%[2]s/v1/events:subscribe'
  CLI      ./bin/klingctl listen      (./bin/klingctl --help for more)
  console  %[2]s/console/   (sign in with the admin token)
Stop with Ctrl-C.

`, displayAddr(grpcAddr), base, strings.TrimRight(s.cfg.PublicURL, "/"), s.defaultStatus(), token, plaintext)
}

// defaultStatus says whether POST /webhooks/klingai can accept anything.
func (s *server) defaultStatus() string {
	if s.cfg.KlingaiSecret != "" {
		return "verifies X-Kling-Signature with KLINGAI_WEBHOOK_SECRET"
	}
	if _, ok := s.registry.Get(registry.DefaultID); ok {
		return "configured"
	}
	return "not configured (set KLINGAI_WEBHOOK_SECRET and restart)"
}

// displayAddr turns a wildcard listen address into one a user can paste.
func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}
